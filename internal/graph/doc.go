// Package graph draws the machines of a spec and exports them to other formats.
//
// It renders machines as Graphviz DOT (built as a gographviz AST), SVG and PNG
// (DOT laid out by Graphviz), Mermaid state diagrams and the seed's "Lambda Calls" listing with [Render], and
// turns a machine into Amazon States Language for Step Functions mode with [ASL].
// The λ numbers come from package lambdanum, which the runtime shares.
//
// SVG and PNG are laid out by a separate program, gvrender (this package's
// subdirectory, on the Graphviz WebAssembly build of github.com/goccy/go-graphviz),
// which Render builds with the Go toolchain on first use into lfsm's cache
// directory and runs as a subprocess: go-graphviz compiles its WebAssembly in
// package init, so a binary that links it pays about a second at every start,
// and lfsm does not link it. Without Go, a system Graphviz dot is used
// (GraphvizEnv chooses). The PNG is drawn by this package from Graphviz's xdot
// layout; the SVG is Graphviz's, with its text drawn in the label font.
//
// Every output is deterministic: machines, states and transitions are written in
// spec order and nothing depends on map iteration order. Graph tools run on specs
// that only have the right shape: a transition to an unknown state is drawn, not
// rejected, so that a diagram can help find the mistake.
package graph

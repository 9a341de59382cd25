// Package graph draws the machines of a spec and exports them to other formats.
//
// It renders machines as Graphviz DOT (built as a gographviz AST), SVG and PNG
// (DOT laid out by the Graphviz WebAssembly build of github.com/goccy/go-graphviz),
// Mermaid state diagrams and the seed's "Lambda Calls" listing with [Render], and
// turns a machine into Amazon States Language for Step Functions mode with [ASL].
// The λ numbers come from package lambdanum, which the runtime shares.
//
// Every output is deterministic: machines, states and transitions are written in
// spec order and nothing depends on map iteration order. Graph tools run on specs
// that only have the right shape: a transition to an unknown state is drawn, not
// rejected, so that a diagram can help find the mistake.
package graph

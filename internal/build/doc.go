// Package build turns a user's Go module and its fsm.yaml into an executable.
//
// CheckActions type-checks the spec's action references (Go symbols
// "import/path.Identifier") and says how each becomes an fsm.Action;
// Generate writes the main package (.lfsm/gen/main.go) that maps references
// to values, compiles the spec in and calls host.Main; EnsureProxy lays out
// the lfsm module, embedded in the lfsm binary, as a file-based module proxy so
// that builds work offline with an ordinary require in the user's go.mod; and
// Build does all of it and runs go build reproducibly, skipping the work when
// its inputs have not changed. See docs/build.md.
package build

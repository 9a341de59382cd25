// Package ui is lfsm ui: a local web console over an execution store. It
// serves a small JSON API under /api/ (docs/ui.md) and a page, embedded in
// the binary, that uses only that API: each machine's diagram with live
// counts of executions per state and status, a paged table of executions,
// and one execution's record and history with the operator calls of lfsm
// stop, resume and send.
//
// The package knows nothing of targets: the CLI gives it the store, the
// spec and the Operator that runs exactly what lfsm stop, resume and send
// run.
package ui

// Package lfsm carries the lfsm module's own source code, so that the lfsm
// binary can build user projects offline: internal/build lays this source out
// as a file-based Go module proxy (see docs/build.md). Nothing else lives here.
package lfsm

import "embed"

// ModulePath is the module path of lfsm, as user projects require it.
const ModulePath = "github.com/lfsm/lfsm"

// Source holds go.mod, go.sum, the root package and the fsm and internal trees.
// go:embed cannot exclude files, so tests and testdata are embedded too;
// internal/build filters them out when it writes the module zip.
//
//go:embed go.mod go.sum embed.go fsm internal
var Source embed.FS

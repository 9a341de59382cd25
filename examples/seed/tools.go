//go:build tools

// Package seed is the root of the seed example's module. This file is never
// compiled: it imports fsm/host, as the main package lfsm build generates in
// .lfsm/gen does, so that go mod tidy (which skips dot directories) keeps the
// modules host needs in go.mod and go.sum, and the build works offline.
package seed

import _ "github.com/lfsm/lfsm/fsm/host"

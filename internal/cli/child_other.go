//go:build !unix

package cli

import "os/exec"

// ownProcessGroup does nothing where process groups are not available: the
// child gets terminal signals itself.
func ownProcessGroup(*exec.Cmd) {}

// watchedByChild does nothing where a child cannot inherit a pipe.
func watchedByChild(*exec.Cmd) (started, done func(), err error) {
	return func() {}, func() {}, nil
}

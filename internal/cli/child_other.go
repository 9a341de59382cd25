//go:build !unix

package cli

import "os/exec"

// ownProcessGroup does nothing where process groups are not available: the
// child gets terminal signals itself.
func ownProcessGroup(*exec.Cmd) {}

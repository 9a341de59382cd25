//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup keeps terminal signals away from the child (lfsm forwards
// them) and, where the system can, has the child stopped when lfsm dies
// without forwarding anything (kill -9): see parentDeathSignal.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	parentDeathSignal(cmd.SysProcAttr)
}

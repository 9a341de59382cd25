//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// ownProcessGroup keeps terminal signals away from the child: lfsm forwards them.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

//go:build unix

package cli

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/lfsm/lfsm/internal/config"
)

// ownProcessGroup keeps terminal signals away from the child (lfsm forwards
// them) and, where the system can, has the child stopped when lfsm dies
// without forwarding anything (kill -9): see parentDeathSignal.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	parentDeathSignal(cmd.SysProcAttr)
}

// watchedByChild gives the child the read end of a pipe whose write end only
// lfsm holds (config.ParentPipeEnv): when lfsm dies, however it dies, the
// child reads end of file and stops as on SIGTERM. It works where there is
// no parent-death signal (macOS). Call started after Start (it closes lfsm's
// copy of the read end) and done once the child has exited.
func watchedByChild(cmd *exec.Cmd) (started, done func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("pipe to the child: %w", err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	fd := 3 + len(cmd.ExtraFiles) - 1
	cmd.Env = append(cmd.Environ(), fmt.Sprintf("%s=%d", config.ParentPipeEnv, fd))
	return func() { r.Close() }, func() { r.Close(); w.Close() }, nil
}

package esm

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the child when the process that started it dies
// (kill -9 of lfsm dev included), so no emulator or function outlives it.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

package cli

import "syscall"

// parentDeathSignal asks Linux to send the child SIGTERM (a graceful stop: the
// steps in flight finish) when its parent dies. The kernel sends it when the
// OS thread that started the child exits, not the process, so runChild
// starts the child from a locked thread and keeps it until the child is gone.
func parentDeathSignal(a *syscall.SysProcAttr) {
	a.Pdeathsig = syscall.SIGTERM
}

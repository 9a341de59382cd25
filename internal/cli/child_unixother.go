//go:build unix && !linux

package cli

import "syscall"

// parentDeathSignal does nothing: only Linux has a parent-death signal. A
// kill -9 of lfsm leaves the child running there (a SIGHUP is forwarded).
func parentDeathSignal(*syscall.SysProcAttr) {}

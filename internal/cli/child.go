package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
)

// runChild runs a project's binary with the command's streams and returns
// nil when it exits 0, else an *ExitError with its status (it has explained
// itself on stderr).
//
// The child runs in its own process group, so a Ctrl-C at the terminal
// reaches only lfsm, which forwards it: the first interrupt (or the
// cancellation of ctx) lets the child finish its current step and stop; a
// second one is forwarded too, and the child aborts. A SIGHUP (the terminal
// closed) is forwarded as SIGTERM, which stops the child gracefully too: the
// child does not handle SIGHUP. If lfsm dies anyway (kill -9), the child is
// sent SIGTERM by the kernel on Linux (see parentDeathSignal), and on every
// Unix it reads end of file on a pipe only lfsm held (watchedByChild) and
// stops as on SIGTERM, so it does not keep running, reparented to init.
func runChild(ctx context.Context, ios *IOStreams, dir, bin string, args ...string) error {
	return runChildEnv(ctx, ios, dir, bin, nil, args...)
}

// runChildEnv is runChild with env added to the child's environment.
func runChildEnv(ctx context.Context, ios *IOStreams, dir, bin string, env []string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ios.In, ios.Out, ios.ErrOut
	ownProcessGroup(cmd)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	// The parent-death signal fires when the starting thread exits: keep this
	// goroutine, which outlives the child, on it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	started, exited, err := watchedByChild(cmd)
	if err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	defer exited()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	started()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctxDone := ctx.Done()
	forwarded := 0
	// The signal that cancelled ctx also arrives on sigs: it is not a second one.
	echo := false
	for {
		select {
		case err := <-done:
			return childStatus(err)
		case <-ctxDone:
			ctxDone = nil
			if forwarded == 0 {
				cmd.Process.Signal(os.Interrupt)
				forwarded, echo = 1, true
			}
		case s := <-sigs:
			if echo {
				echo = false
				continue
			}
			ctxDone = nil
			if s == syscall.SIGHUP {
				s = syscall.SIGTERM
			}
			cmd.Process.Signal(s)
			forwarded++
		}
	}
}

func childStatus(err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("wait for child: %w", err)
	}
	code := ee.ExitCode()
	if code < 0 { // killed by a signal
		code = ExitInterrupted
	}
	return &ExitError{Code: code}
}

//go:build linux

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/config"
)

// TestChildProcessHelper is the parent and the child of TestChildDiesWithParent
// when run by it (LFSM_TEST_CHILD_ROLE set); it skips otherwise.
func TestChildProcessHelper(t *testing.T) {
	if flag.Arg(0) == "child" {
		var pipe *os.File
		if os.Getenv("LFSM_TEST_CHILD_MODE") == "pipe" {
			// Only the pipe can end this child: SIGTERM (the parent-death
			// signal) is ignored.
			signal.Ignore(syscall.SIGTERM)
			fd, err := strconv.Atoi(os.Getenv(config.ParentPipeEnv))
			if err != nil {
				os.Exit(5)
			}
			pipe = os.NewFile(uintptr(fd), "parent pipe")
		}
		pidFile := os.Getenv("LFSM_TEST_CHILD_PIDFILE")
		if err := os.WriteFile(pidFile+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			os.Exit(3)
		}
		os.Rename(pidFile+".tmp", pidFile)
		if pipe != nil {
			io.Copy(io.Discard, pipe) // until the parent is gone
			os.Exit(0)
		}
		select {} // a worker that never finishes on its own
	}
	if os.Getenv("LFSM_TEST_CHILD_ROLE") != "parent" {
		t.Skip("helper process of TestChildDiesWithParent")
	}
	ios, _, _, _ := TestIOStreams()
	err := runChild(context.Background(), ios, ".", os.Args[0], "-test.run=^TestChildProcessHelper$", "--", "child")
	os.Exit(ExitCode(err))
}

// TestChildDiesWithParent runs runChild in a real process whose child (lfsm
// dev's worker) blocks forever, then kills the parent with SIGKILL or SIGHUP:
// the child must exit too instead of running on, reparented to init.
func TestChildDiesWithParent(t *testing.T) {
	// mode "signal": the child stops on SIGTERM (the parent-death signal, or
	// SIGHUP forwarded); mode "pipe": it ignores SIGTERM and stops when the
	// pipe from its parent ends, as on systems without a parent-death signal.
	for _, tc := range []struct {
		mode string
		sig  syscall.Signal
	}{{"signal", syscall.SIGKILL}, {"signal", syscall.SIGHUP}, {"pipe", syscall.SIGKILL}} {
		sig := tc.sig
		t.Run(tc.mode+"/"+sig.String(), func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "child.pid")
			parent := exec.Command(os.Args[0], "-test.run=^TestChildProcessHelper$")
			parent.Env = append(os.Environ(), "LFSM_TEST_CHILD_ROLE=parent", "LFSM_TEST_CHILD_PIDFILE="+pidFile,
				"LFSM_TEST_CHILD_MODE="+tc.mode)
			if err := parent.Start(); err != nil {
				t.Fatal(err)
			}
			defer parent.Process.Kill()
			waited := make(chan error, 1)
			go func() { waited <- parent.Wait() }()

			var child int
			deadline := time.Now().Add(30 * time.Second)
			for child == 0 {
				if b, err := os.ReadFile(pidFile); err == nil {
					child, _ = strconv.Atoi(string(b))
				} else if time.Now().After(deadline) {
					t.Fatal("the child did not start within 30 s")
				} else {
					time.Sleep(5 * time.Millisecond) // polling for the child's pid file
				}
			}
			defer syscall.Kill(child, syscall.SIGKILL)
			if err := parent.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := <-waited
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Logf("parent exited: %v", err)
			}
			deadline = time.Now().Add(10 * time.Second)
			for alive(child) {
				if time.Now().After(deadline) {
					t.Fatalf("after %s of its parent, the child %d still runs after 10 s", sig, child)
				}
				time.Sleep(5 * time.Millisecond) // polling for the child's exit
			}
		})
	}
}

// alive reports whether pid runs (a zombie nobody reaped yet has exited).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

//go:build unix

package host

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/config"
)

// TestParentPipeHelper is the child of TestParentPipe when run by it.
func TestParentPipeHelper(t *testing.T) {
	if os.Getenv("LFSM_TEST_PIPE_CHILD") == "" {
		t.Skip("helper process of TestParentPipe")
	}
	r := parentPipe()
	if r == nil {
		os.Exit(5)
	}
	watchParent(r, func() { os.Exit(7) })
	os.Exit(6)
}

// TestParentPipe starts a real child with the pipe lfsm dev gives it and
// closes the parent's end, as the parent's death does: the child sees it and
// stops (here, exits 7).
func TestParentPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestParentPipeHelper$")
	child.ExtraFiles = []*os.File{r}
	child.Env = append(os.Environ(), "LFSM_TEST_PIPE_CHILD=1", config.ParentPipeEnv+"=3")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	// The child can only read end of file, and exit 7, once this end closes.
	w.Close()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Errorf("child exited with %v, want status 7 (the pipe ended)", err)
		}
	case <-time.After(30 * time.Second):
		child.Process.Kill()
		t.Fatal("the child did not notice its parent's end closing within 30 s")
	}
	if parentPipeFromEnv(t, "") || parentPipeFromEnv(t, "x") || parentPipeFromEnv(t, "2") {
		t.Error("parentPipe accepted a missing, malformed or standard descriptor")
	}
}

func parentPipeFromEnv(t *testing.T, v string) bool {
	t.Setenv(config.ParentPipeEnv, v)
	return parentPipe() != nil
}

package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/engine"
)

// crashProject is a project whose step 1 blocks (Two's entry action waits for
// a file to appear) and whose actions append what they ran to a file.
var crashProject = map[string]string{
	"go.mod": "module example.com/crash\n\ngo 1.26\n",
	"fsm.yaml": `machines:
- name: Crash
  max_retries: 0
  states:
  - name: One
    initial: true
    do_action: example.com/crash/actions.Record
    transitions:
    - target: Two
      event: next
  - name: Two
    entry_action: example.com/crash/actions.Block
    do_action: example.com/crash/actions.Record
    transitions:
    - target: Three
      event: next
  - name: Three
    final: true
    do_action: example.com/crash/actions.Record
`,
	"actions/actions.go": `// Package actions records every action run in the file named by the
// context's "runs", and blocks in Block until the file "release" exists.
package actions

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/lfsm/lfsm/fsm"
)

func record(c *fsm.Context, what string) error {
	runs, _ := c.String("runs")
	f, err := os.OpenFile(runs, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s step=%d fence=%d\n", what, c.Steps(), c.Fence())
	return err
}

// Record records the run; do actions of non-final states go on with "next".
func Record(ctx context.Context, c *fsm.Context) (string, error) {
	if err := record(c, c.State()+"."+string(c.Facts().Kind)); err != nil {
		return "", err
	}
	if c.State() == "Three" {
		return "", nil
	}
	return "next", nil
}

// Block records the run, then waits until the release file exists.
func Block(ctx context.Context, c *fsm.Context) (string, error) {
	if err := record(c, "Two.block"); err != nil {
		return "", err
	}
	release, _ := c.String("release")
	for {
		if _, err := os.Stat(release); err == nil {
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
`,
}

// TestWorkerKilledMidStep kills a worker with SIGKILL while it runs a step.
// A second worker takes the step over once the message's visibility timeout
// and the step's lease have run out, and finishes the execution: the step
// that was committed before the crash does not run again, the interrupted
// one runs again (actions are at least once), nothing is lost.
func TestWorkerKilledMidStep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a project")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	for name, body := range crashProject {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, diags, err := build.Build(ctx, build.BuildOptions{Dir: dir, CacheDir: filepath.Join(t.TempDir(), "proxy")})
	if err != nil || diags.HasErrors() {
		t.Fatalf("build: %v %v", err, diags)
	}

	db := filepath.Join(dir, ".lfsm", "lfsm.db")
	runs, release := filepath.Join(dir, "runs.txt"), filepath.Join(dir, "release")
	const id = "0000000000000000000000000000c0de"
	ios, _, out, errOut := TestIOStreams()
	args := []string{"start", "-f", filepath.Join(dir, "fsm.yaml"), "--db", db, "--correlation-id", id,
		"--context", `{"runs":"` + filepath.ToSlash(runs) + `","release":"` + filepath.ToSlash(release) + `"}`}
	if err := Execute(ctx, ios, args); err != nil {
		t.Fatalf("lfsm start: %v\n%s%s", err, out, errOut)
	}

	// The first worker runs step 0, then blocks in step 1.
	worker := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, res.Binary, append([]string{"worker", "--db", db, "--workers", "1",
			"--visibility", "2s", "--lease-timeout", "2s"}, extra...)...)
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		return cmd, &stderr
	}
	w1, w1err := worker()
	if err := w1.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, func() bool {
		b, _ := os.ReadFile(runs)
		return strings.Contains(string(b), "Two.block")
	})
	if err := w1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w1.Wait()
	t.Logf("first worker killed; its output:\n%s", w1err)

	// The second worker finds the message again after its visibility timeout
	// and takes over the expired lease.
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w2, w2err := worker("--until-idle")
	if err := w2.Run(); err != nil {
		t.Fatalf("second worker: %v\n%s", err, w2err)
	}

	store, err := sqlite.Open(ctx, db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	x, err := store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != engine.StatusDone || x.State != "Three" {
		t.Errorf("execution %s in %s, want done in Three (last error %q)", x.Status, x.State, x.LastError)
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		counts[strings.Fields(line)[0]]++
	}
	want := map[string]int{"One.do_action": 1, "Two.block": 2, "Two.do_action": 1, "Three.do_action": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s ran %d times, want %d", k, counts[k], n)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("actions run: %v, want %v", counts, want)
	}
	if t.Failed() {
		t.Logf("runs:\n%s\nsecond worker:\n%s", b, w2err)
	}
	hist, err := store.History(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[int]int{}
	for _, h := range hist {
		steps[h.Step]++
	}
	for s := range 3 {
		if steps[s] != 1 {
			t.Errorf("step %d has %d history entries, want 1 (history %+v)", s, steps[s], hist)
		}
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s", timeout)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

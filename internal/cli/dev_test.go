package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/engine"
)

// TestDevSteps: lfsm dev prints a λ line per step. On a terminal the lines
// are sampled under a live summary, so a burst of steps cannot make the
// terminal the bottleneck; with -v (or off a terminal) every step has one.
func TestDevSteps(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("..", "..", "examples", "seed", "fsm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		terminal bool
		verbose  bool
		sampled  bool
	}{
		{"terminal", true, false, true},
		{"terminal -v", true, true, false},
		{"pipe", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := testFactory(t, map[string]string{"fsm.yaml": string(seed)})
			file, db := filepath.Join(f.WorkDir, "fsm.yaml"), filepath.Join(f.WorkDir, "lfsm.db")
			var out, errOut bytes.Buffer
			f.IOStreams.Out, f.IOStreams.ErrOut = &out, &errOut
			root := NewRootCmd(f)
			root.SetArgs([]string{"start", "-f", file, "--db", db, "-m", "Example", "--count", "300"})
			if err := root.ExecuteContext(t.Context()); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			errOut.Reset()
			ios := &IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, OutIsTerminal: tc.terminal}
			opts := &DevOptions{IO: ios, WorkDir: f.WorkDir, File: file, DB: db, Workers: 4, UntilIdle: true, Simulate: true,
				Log: logFlags{Verbose: tc.verbose}}
			if err := runDev(t.Context(), opts, &engine.SimulateOptions{}); err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^dev: (\d+) λ in \S+, 300 done, 0 failed`).FindStringSubmatch(errOut.String())
			if m == nil {
				t.Fatalf("no final summary of 300 executions on stderr:\n%s", errOut.String())
			}
			steps, _ := strconv.Atoi(m[1])
			lines := regexp.MustCompile(`(?m)[0-9a-f]{32} Example step \d+  λ\d`).FindAllString(out.String(), -1)
			redrawn := strings.Contains(out.String(), "\r\x1b[K")
			switch {
			case tc.sampled && (len(lines) >= steps || !redrawn):
				t.Errorf("%d λ lines for %d steps, summary redrawn: %v; want a sample under a live summary", len(lines), steps, redrawn)
			case !tc.sampled && (len(lines) != steps || redrawn):
				t.Errorf("%d λ lines for %d steps, summary redrawn: %v; want every step, no redrawing", len(lines), steps, redrawn)
			}
		})
	}
}

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const startSpec = `machines:
- name: M
  states:
  - name: A
    initial: true
    transitions:
    - {target: B, event: go}
  - name: B
    final: true
`

// TestStartProgressBar: many starts on a terminal show one bar line,
// redrawn per batch, that ends at the count; without a terminal, the ids
// alone (progress lines come every 1000).
func TestStartProgressBar(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		dir := t.TempDir()
		spec := filepath.Join(dir, "fsm.yaml")
		if err := os.WriteFile(spec, []byte(startSpec), 0o644); err != nil {
			t.Fatal(err)
		}
		ios, _, out, errOut := TestIOStreams()
		ios.ErrOutIsTerminal = terminal
		err := runStart(t.Context(), &StartOptions{IO: ios, WorkDir: dir, File: spec, DB: filepath.Join(dir, "s.db"),
			Machine: "M", Count: 250, Output: outputText})
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "\n"); n != 250 {
			t.Errorf("terminal %v: %d ids printed, want 250", terminal, n)
		}
		got := errOut.String()
		if terminal {
			if !strings.Contains(got, "\rstarting [########............] 100/250") || !strings.HasSuffix(got, "\rstarting [####################] 250/250\n") {
				t.Errorf("terminal progress %q: want a bar redrawn per batch, ending at 250/250", got)
			}
		} else if got != "" {
			t.Errorf("no terminal: stderr %q, want nothing below 1000", got)
		}
	}
}

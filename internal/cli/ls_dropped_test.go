package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestLsDropped: messages a worker cannot run (here NaN in the context, as
// Python's json.dumps writes it, and a message without a correlation id) are
// listed by ls --dropped, in text and as one versioned JSON document.
func TestLsDropped(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lfsm.db")
	seed := filepath.Join("..", "..", "examples", "seed", "fsm.yaml")
	s, diags := spec.Load(seed)
	if s == nil || diags.HasErrors() {
		t.Fatalf("load seed: %v", diags)
	}
	store, err := sqlite.Open(t.Context(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	nan := `{"version": "0.1", "system_context": {"machine_name": "Example", "current_state": "FirstState", ` +
		`"current_event": "done", "correlation_id": "py1", "steps": 1, "retries": 0}, "user_context": {"x": NaN}}`
	noID := `{"version":"0.1","system_context":{"machine_name":"Example","current_state":"FirstState","current_event":"done"}}`
	for _, p := range []string{nan, noID} {
		if _, err := store.Send(t.Context(), engine.OutMessage{Key: "k", Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	store.Close()
	// A worker handles every queued message (lfsm run takes its own first).
	if err := local.Worker(t.Context(), local.WorkerOptions{Spec: s, DBPath: db, UntilIdle: true,
		Simulate: &engine.SimulateOptions{Events: []string{"skip"}}}); err != nil {
		t.Fatal(err)
	}

	ios, _, out, _ := TestIOStreams()
	if err := runLsDropped(t.Context(), &LsOptions{IO: ios, File: seed, DB: db, Output: outputText}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TIME ") {
		t.Fatalf("ls --dropped printed\n%s\nwant a header and two rows", out)
	}
	text := out.String()
	for _, want := range []string{"non_finite_number  py1", "no_correlation_id  -", fmt.Sprintf("  %d  ", len(nan)), fmt.Sprintf("  %d  ", len(noID))} {
		if !strings.Contains(text, want) {
			t.Errorf("ls --dropped output lacks %q:\n%s", want, text)
		}
	}

	out.Reset()
	if err := runLsDropped(t.Context(), &LsOptions{IO: ios, File: seed, DB: db, Output: outputJSON, Machine: "Example", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	var res struct {
		FormatVersion string                  `json:"format_version"`
		Dropped       []engine.DroppedMessage `json:"dropped"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("ls --dropped --output json: %v\n%s", err, out)
	}
	if res.FormatVersion != "1" || len(res.Dropped) != 1 || res.Dropped[0].Reason != engine.DropNoCorrelationID ||
		res.Dropped[0].Size != len(noID) || res.Dropped[0].Time.IsZero() {
		t.Errorf("ls --dropped --output json = %+v; want the newest drop only", res)
	}
}

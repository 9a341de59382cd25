package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

const flakySpec = `machines:
- name: Flaky
  max_retries: 1
  states:
  - name: Charge
    initial: true
    do_action: example.com/shop/actions.Charge
    transitions:
    - target: Done
      event: charged
  - name: Done
    final: true
`

// TestRetriesExhaustedThenResume drives the scenario on the real SQLite
// store: a transient failure is retried with backoff; when every attempt fails
// the execution is failed with its last error (what inspect shows); resume then
// finishes it once the action recovers. max_retries is 1, so the single retry
// waits at most 2 s (full jitter over 1 s * 2^1).
func TestRetriesExhaustedThenResume(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fsm.yaml")
	if err := os.WriteFile(path, []byte(flakySpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	var attempts, healthy atomic.Int32
	resolve := func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			attempts.Add(1)
			if healthy.Load() == 0 {
				return "", errors.New("payment service unavailable")
			}
			return "charged", nil
		}), nil
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, "lfsm.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	res, err := Run(t.Context(), RunOptions{Spec: s, Resolve: resolve, Backend: db, Machine: "Flaky"})
	if err != nil {
		t.Fatal(err)
	}
	if got := attempts.Load(); got != 2 {
		t.Errorf("action ran %d times, want 2 (first attempt + max_retries 1)", got)
	}
	if res.Status != engine.StatusFailed {
		t.Fatalf("status %s, want failed", res.Status)
	}
	ex, err := db.Get(t.Context(), res.CorrelationID)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != engine.StatusFailed || ex.LastError == "" {
		t.Errorf("stored execution: status %s, last error %q; want failed with the action's error", ex.Status, ex.LastError)
	}
	hist, err := db.History(t.Context(), res.CorrelationID)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []engine.Outcome
	for _, h := range hist {
		outcomes = append(outcomes, h.Outcome)
	}
	if len(outcomes) != 2 || outcomes[0] != engine.OutcomeRetry || outcomes[1] != engine.OutcomeFailed {
		t.Errorf("history outcomes %v, want [retry failed]", outcomes)
	}

	// The service recovers; resume restarts from the failed step and a worker
	// finishes the execution.
	healthy.Store(1)
	e, err := newEngine(s, resolve, nil, db, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Resume(t.Context(), res.CorrelationID); err != nil {
		t.Fatal(err)
	}
	if err := Worker(t.Context(), WorkerOptions{Spec: s, Resolve: resolve, Backend: db, UntilIdle: true}); err != nil {
		t.Fatal(err)
	}
	ex, err = db.Get(t.Context(), res.CorrelationID)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != engine.StatusDone {
		t.Errorf("after resume: status %s (%s), want done", ex.Status, ex.LastError)
	}
	if got := attempts.Load(); got != 3 {
		t.Errorf("action ran %d times in all, want 3", got)
	}
}

// TestRetriedRunThatFinishesShowsNoError: an attempt that failed and was
// retried keeps its error in its λ; the execution finished done, so the
// result (and its JSON) has no top-level error.
func TestRetriedRunThatFinishesShowsNoError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fsm.yaml")
	if err := os.WriteFile(path, []byte(flakySpec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	var attempts atomic.Int32
	resolve := func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			if attempts.Add(1) == 1 {
				return "", errors.New("payment service unavailable")
			}
			return "charged", nil
		}), nil
	}
	var out bytes.Buffer
	res, err := Run(t.Context(), RunOptions{Spec: s, Resolve: resolve, Backend: memory.New(memory.Options{}),
		Machine: "Flaky", Out: &out, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != engine.StatusDone || res.Error != "" {
		t.Errorf("status %s, error %q; want done and no error", res.Status, res.Error)
	}
	if len(res.Lambdas) == 0 || res.Lambdas[0].Outcome != engine.OutcomeRetry || res.Lambdas[0].Error == "" {
		t.Errorf("first λ %+v, want the retried attempt with its error", res.Lambdas)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if e, ok := doc["error"]; ok {
		t.Errorf("JSON of a done execution has a top-level error %q", e)
	}
}

func TestCurrentError(t *testing.T) {
	for _, tc := range []struct {
		ex   engine.Execution
		want string
	}{
		{engine.Execution{Status: engine.StatusDone, LastError: "stopped by operator"}, ""},
		{engine.Execution{Status: engine.StatusDone, Retries: 0, LastError: "boom"}, ""},
		{engine.Execution{Status: engine.StatusWaiting, LastError: "stopped by operator"}, ""},
		{engine.Execution{Status: engine.StatusRunning, LastError: "stopped by operator"}, ""},
		{engine.Execution{Status: engine.StatusRunning, Retries: 1, LastError: "boom"}, "boom"},
		{engine.Execution{Status: engine.StatusFailed, LastError: "boom"}, "boom"},
		{engine.Execution{Status: engine.StatusStopped, LastError: "stopped by operator"}, "stopped by operator"},
	} {
		if got := CurrentError(tc.ex); got != tc.want {
			t.Errorf("CurrentError(%s, retries %d, %q) = %q, want %q", tc.ex.Status, tc.ex.Retries, tc.ex.LastError, got, tc.want)
		}
	}
}

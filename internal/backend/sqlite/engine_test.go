package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestEngineWorkers runs executions through the engine and RunWorker on an
// SQLite file with several workers at once: every execution finishes, every
// step runs once and is in the history exactly once, and the queue is empty
// afterwards (each delivery acknowledged in its step's commit).
func TestEngineWorkers(t *testing.T) {
	const executions, steps, workers = 8, 25, 4
	db := open(t, sqlite.Options{})
	p := &progress{done: make(chan struct{})}
	p.left.Store(executions)
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, steps)}, Store: db, Queue: db, Metrics: p})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, executions)
	for i := range ids {
		if ids[i], err = eng.Start(t.Context(), engine.StartRequest{Machine: "chain"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	werr := make(chan error, 1)
	go func() {
		werr <- engine.RunWorker(ctx, db, eng, engine.WorkerOptions{Concurrency: workers, Wait: 50 * time.Millisecond})
	}()
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("%d executions not done after a minute", p.left.Load())
	}
	cancel()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if got := p.dispatched.Load(); got != executions*steps || p.duplicates.Load() != 0 {
		t.Errorf("dispatched %d (%d duplicates or lost fences), want %d and none", got, p.duplicates.Load(), executions*steps)
	}
	want := make([]string, steps)
	for i := range want {
		want[i] = fmt.Sprintf("%d next", i)
	}
	want[steps-1] = fmt.Sprintf("%d done", steps-1)
	for _, id := range ids {
		x, err := db.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Status != engine.StatusDone || x.DoneStep != steps-1 {
			t.Errorf("%s: status %s, done step %d; want done, %d", id, x.Status, x.DoneStep, steps-1)
		}
		h, err := db.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(h))
		for i, e := range h {
			got[i] = fmt.Sprintf("%d %s", e.Step, e.Outcome)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: history (-want +got):\n%s", id, diff)
		}
	}
	if n, err := db.QueueLen(t.Context()); err != nil || n != 0 {
		t.Errorf("QueueLen = %d, %v; want 0", n, err)
	}
}

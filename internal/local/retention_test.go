package local

import (
	"errors"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestWorkerRetention: a worker with a retention prunes executions finished
// longer ago than it before it starts, and keeps recent and unfinished ones.
func TestWorkerRetention(t *testing.T) {
	b := memory.New(memory.Options{})
	now := time.Now()
	for id, at := range map[string]time.Time{"old": now.Add(-48 * time.Hour), "recent": now.Add(-time.Hour), "old-running": now.Add(-48 * time.Hour)} {
		if err := b.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "Example", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		if id == "old-running" {
			continue
		}
		l, err := b.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "Example", Now: at, Expires: at.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(t.Context(), engine.Commit{CorrelationID: id, Machine: "Example", Fence: l.Fence, Outcome: engine.OutcomeDone, Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	err := Worker(t.Context(), WorkerOptions{Spec: loadExample(t), Simulate: &engine.SimulateOptions{}, Backend: b,
		UntilIdle: true, Retention: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), "old"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Get(old) after the worker = %v, want ErrNotFound (pruned)", err)
	}
	for _, id := range []string{"recent", "old-running"} {
		if _, err := b.Get(t.Context(), id); err != nil {
			t.Errorf("Get(%s) after the worker = %v, want it kept", id, err)
		}
	}
}

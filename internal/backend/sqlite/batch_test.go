package sqlite_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestConcurrentTransitions drives many executions at once, so writes are
// group-committed, with stale commits mixed in: every execution ends with all
// its steps done, one history entry per step, and every stale commit refused.
func TestConcurrentTransitions(t *testing.T) {
	db := open(t, sqlite.Options{})
	const executions, steps = 12, 15
	now := time.Unix(1700000000, 0)
	var wg sync.WaitGroup
	for e := range executions {
		wg.Go(func() {
			id := fmt.Sprintf("c%d", e)
			for step := range steps {
				l, err := db.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: step, Now: now, Expires: now.Add(time.Minute)})
				if err != nil {
					t.Errorf("Acquire(%s, %d): %v", id, step, err)
					return
				}
				stale := engine.Commit{CorrelationID: id, Step: step, Fence: l.Fence - 1, Outcome: engine.OutcomeNext, Now: now}
				if err := db.Commit(t.Context(), stale); err == nil {
					t.Errorf("stale Commit(%s, %d) succeeded", id, step)
				}
				if _, err := db.Send(t.Context(), engine.OutMessage{Key: id, Payload: []byte(id)}); err != nil {
					t.Errorf("Send: %v", err)
				}
				c := engine.Commit{CorrelationID: id, Step: step, Fence: l.Fence, Outcome: engine.OutcomeNext, Now: now,
					History: engine.HistoryEntry{Step: step, Fence: l.Fence, Outcome: engine.OutcomeNext}}
				if err := db.Commit(t.Context(), c); err != nil {
					t.Errorf("Commit(%s, %d): %v", id, step, err)
				}
			}
		})
	}
	wg.Wait()
	for e := range executions {
		id := fmt.Sprintf("c%d", e)
		got, err := db.Get(t.Context(), id)
		if err != nil || got.DoneStep != steps-1 || got.Fence != steps {
			t.Errorf("Get(%s) = done %d, fence %d, %v; want done %d, fence %d", id, got.DoneStep, got.Fence, err, steps-1, steps)
		}
		if h, err := db.History(t.Context(), id); err != nil || len(h) != steps {
			t.Errorf("History(%s) has %d entries, %v; want %d", id, len(h), err, steps)
		}
	}
	if n, err := db.QueueLen(t.Context()); err != nil || n != executions*steps {
		t.Errorf("QueueLen = %d, %v; want %d", n, err, executions*steps)
	}
}

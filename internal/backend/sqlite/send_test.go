package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// sendOnly hides every method of the DB but Send: a Queue that is not the
// engine's Store, so Send claims and enqueues in two writes.
type sendOnly struct{ q engine.Queue }

func (w sendOnly) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return w.q.Send(ctx, m)
}

// TestEngineConcurrentSends: concurrent Sends of different events to one
// waiting execution on SQLite: exactly one succeeds and enqueues, the others
// get ErrNotWaiting, and the execution advances once, with the winner's event.
func TestEngineConcurrentSends(t *testing.T) {
	m, err := engine.Compile(&spec.Machine{Name: "P", States: []*spec.State{
		{Name: "A", Initial: true, Transitions: []*spec.Transition{{Target: "X", Event: "x"}, {Target: "Y", Event: "y"}}},
		{Name: "X", Final: true},
		{Name: "Y", Final: true},
	}}, func(r string) (fsm.Action, error) { return nil, fmt.Errorf("no action %q", r) })
	if err != nil {
		t.Fatal(err)
	}
	for _, oneWrite := range []bool{true, false} {
		t.Run(fmt.Sprintf("one write %v", oneWrite), func(t *testing.T) {
			db := open(t, sqlite.Options{PollInterval: 5 * time.Millisecond})
			var q engine.Queue = db
			if !oneWrite {
				q = sendOnly{db}
			}
			eng, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: db, Queue: q})
			if err != nil {
				t.Fatal(err)
			}
			runAll := func() {
				t.Helper()
				for {
					ds, err := db.Receive(t.Context(), 10, time.Minute, 0)
					if err != nil {
						t.Fatal(err)
					}
					if len(ds) == 0 {
						return
					}
					for _, d := range ds {
						if _, err := eng.HandleDelivery(t.Context(), db, d); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			id, err := eng.Start(t.Context(), engine.StartRequest{Machine: "P"})
			if err != nil {
				t.Fatal(err)
			}
			runAll()
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = eng.Send(t.Context(), id, []string{"x", "y"}[i%2]) })
			}
			wg.Wait()
			won := -1
			for i, err := range errs {
				switch {
				case err == nil && won >= 0:
					t.Errorf("Sends %d and %d both succeeded", won, i)
				case err == nil:
					won = i
				case !errors.Is(err, engine.ErrNotWaiting):
					t.Errorf("losing Send = %v, want ErrNotWaiting", err)
				}
			}
			if won < 0 {
				t.Fatal("no Send succeeded")
			}
			if n, err := db.QueueLen(t.Context()); err != nil || n != 1 {
				t.Errorf("QueueLen = %d, %v; want 1 (the winner's message)", n, err)
			}
			runAll()
			x, err := db.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"X", "Y"}[won%2]; x.Status != engine.StatusDone || x.State != want {
				t.Errorf("status %s in %s, want done in %s (the winner's event)", x.Status, x.State, want)
			}
			h, err := db.History(t.Context(), id)
			if err != nil || len(h) != 2 {
				t.Errorf("history %v, %v; want the start and one event", h, err)
			}
		})
	}
}

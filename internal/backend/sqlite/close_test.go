package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestCloseUnderRunningWorkers closes the file while workers are mid-step
// (an abrupt shutdown): nothing panics, the workers keep failing calls until
// canceled and then return, and a worker on the reopened file finishes every
// execution with each step once in the history (what a closed file did not
// commit comes back and runs again).
func TestCloseUnderRunningWorkers(t *testing.T) {
	const executions, steps = 6, 40
	// Steps the close interrupted hold their leases until these expire: a
	// short lease lets the reopened worker take them over soon.
	const lease = 500 * time.Millisecond
	path := filepath.Join(t.TempDir(), "lfsm.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, steps)}, Store: db, Queue: db, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, executions)
	for i := range ids {
		if ids[i], err = eng.Start(t.Context(), engine.StartRequest{Machine: "chain"}); err != nil {
			t.Fatal(err)
		}
	}
	opts := engine.WorkerOptions{Concurrency: 4, Wait: 20 * time.Millisecond, Visibility: 200 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	werr := make(chan error, 1)
	go func() { werr <- engine.RunWorker(ctx, db, eng, opts) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := db.HistorySince(t.Context(), 0, engine.HistoryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(h) >= executions*steps/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d steps after 30 s", len(h))
		}
		time.Sleep(time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close under running workers: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // let the workers hit the closed file
	cancel()
	select {
	case err := <-werr:
		if err != nil {
			t.Errorf("RunWorker: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunWorker did not return after cancel on a closed file")
	}

	db, err = sqlite.Open(t.Context(), path, sqlite.Options{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	eng, err = engine.New(engine.Options{Machines: []*engine.Machine{chain(t, steps)}, Store: db, Queue: db, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	go func() { werr <- engine.RunWorker(ctx, db, eng, opts) }()
	deadline = time.Now().Add(time.Minute)
	for _, id := range ids {
		for {
			x, err := db.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if x.Status == engine.StatusDone {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s at step %d after reopen, want done", id, x.Status, x.DoneStep)
			}
			time.Sleep(5 * time.Millisecond)
		}
		h, err := db.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]int{}
		for _, e := range h {
			seen[e.Step]++
		}
		for s := range steps {
			if seen[s] != 1 {
				t.Errorf("%s: step %d in the history %d times, want once (%v)", id, s, seen[s], fmt.Sprint(len(h)))
				break
			}
		}
	}
	cancel()
	if err := <-werr; err != nil {
		t.Error(err)
	}
}

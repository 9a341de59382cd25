package sqlite_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// drain runs every queued message through eng until the queue is empty.
func drainQueue(t *testing.T, db *sqlite.DB, eng *engine.Engine) {
	t.Helper()
	for range 1000 {
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
	t.Fatal("queue not empty after 1000 receives")
}

// TestPrunedMessageDropped: after an execution finished and was pruned, a
// late duplicate of its start message (a producer's retry, a redelivery) is
// dropped and recorded, instead of running the execution's actions again
// under an id the store had forgotten.
func TestPrunedMessageDropped(t *testing.T) {
	db := open(t, sqlite.Options{})
	p := &progress{done: make(chan struct{})}
	p.left.Store(1)
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, 3)}, Store: db, Queue: db, Metrics: p})
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.Start(t.Context(), engine.StartRequest{Machine: "chain"})
	if err != nil {
		t.Fatal(err)
	}
	x, err := db.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	startMsg := x.Checkpoint
	drainQueue(t, db, eng)
	if x, err := db.Get(t.Context(), id); err != nil || x.Status != engine.StatusDone {
		t.Fatalf("after the run: %+v, %v; want done", x, err)
	}
	ran := p.dispatched.Load()

	res, err := db.Prune(t.Context(), engine.PruneRequest{Before: time.Now().Add(time.Hour), Now: time.Now()})
	if err != nil || res.Executions != 1 || res.History != 3 {
		t.Fatalf("Prune = %+v, %v; want the execution and its 3 history entries", res, err)
	}
	got, err := eng.Handle(t.Context(), startMsg)
	if err != nil || got.Dropped != engine.DropDuplicate {
		t.Fatalf("Handle of the pruned execution's start message = %+v, %v; want dropped as a duplicate", got, err)
	}
	if p.dispatched.Load() != ran {
		t.Errorf("the pruned execution's step ran again (%d dispatches, %d before)", p.dispatched.Load(), ran)
	}
	if _, err := db.Get(t.Context(), id); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Get after the late message = %v, want ErrNotFound (not recorded again)", err)
	}
	drops, err := db.ListDropped(t.Context(), engine.DropFilter{})
	if err != nil || len(drops) != 1 || drops[0].Reason != engine.DropPruned || drops[0].CorrelationID != id ||
		drops[0].Machine != "chain" || drops[0].Size != len(startMsg) {
		t.Errorf("ListDropped = %+v, %v; want one record, reason pruned, of %s", drops, err, id)
	}
}

// TestPruneGivesSpaceBack fills a new file and an old one (created without
// auto-vacuum) with finished executions, prunes them, and measures the file:
// the new one shrinks at once; the old one keeps its size until Vacuum,
// which also turns auto-vacuum on for the prunes after it.
func TestPruneGivesSpaceBack(t *testing.T) {
	fill := func(t *testing.T, db *sqlite.DB, prefix string, n int) {
		t.Helper()
		at := time.Unix(1000, 0)
		ctx := strings.Repeat("x", 4000)
		for i := range n {
			id := fmt.Sprintf("%s%d", prefix, i)
			if err := db.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "M", Checkpoint: []byte(ctx), CreatedAt: at}); err != nil {
				t.Fatal(err)
			}
			l, err := db.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "M", Now: at, Expires: at.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Commit(t.Context(), engine.Commit{CorrelationID: id, Machine: "M", Fence: l.Fence, Outcome: engine.OutcomeDone,
				Checkpoint: []byte(ctx), History: engine.HistoryEntry{Error: ctx}, Now: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	size := func(t *testing.T, db *sqlite.DB) int64 {
		t.Helper()
		fi, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	prune := func(t *testing.T, db *sqlite.DB) {
		t.Helper()
		if _, err := db.Prune(t.Context(), engine.PruneRequest{Before: time.Unix(2000, 0), Now: time.Unix(3000, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 1000 // about 8 MB

	t.Run("new file", func(t *testing.T) {
		db := open(t, sqlite.Options{})
		if on, err := db.AutoVacuum(t.Context()); err != nil || !on {
			t.Fatalf("AutoVacuum of a new file = %v, %v; want on", on, err)
		}
		fill(t, db, "a", n)
		full := sizeAfterCheckpoint(t, db, size)
		prune(t, db)
		if after := size(t, db); after > full/10 {
			t.Errorf("file %d bytes after pruning everything, %d before: want under a tenth", after, full)
		}
	})
	t.Run("old file", func(t *testing.T) {
		db := open(t, sqlite.Options{})
		if err := db.SetAutoVacuumNoneForTest(t.Context()); err != nil {
			t.Fatal(err)
		}
		fill(t, db, "a", n)
		full := sizeAfterCheckpoint(t, db, size)
		prune(t, db)
		if after := size(t, db); after < full/2 {
			t.Errorf("file %d bytes after prune without auto-vacuum, %d before: SQLite keeps free pages", after, full)
		}
		if err := db.Vacuum(t.Context()); err != nil {
			t.Fatal(err)
		}
		if after := size(t, db); after > full/10 {
			t.Errorf("file %d bytes after Vacuum, %d before: want under a tenth", after, full)
		}
		if on, err := db.AutoVacuum(t.Context()); err != nil || !on {
			t.Fatalf("AutoVacuum after Vacuum = %v, %v; want on", on, err)
		}
		fill(t, db, "b", n)
		full = sizeAfterCheckpoint(t, db, size)
		prune(t, db)
		if after := size(t, db); after > full/10 {
			t.Errorf("file %d bytes after the next prune, %d before: want under a tenth", after, full)
		}
	})
}

func sizeAfterCheckpoint(t *testing.T, db *sqlite.DB, size func(*testing.T, *sqlite.DB) int64) int64 {
	t.Helper()
	if err := db.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	return size(t, db)
}

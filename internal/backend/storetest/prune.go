package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// RunPruner runs the Pruner conformance suite on stores newStore returns
// (empty, implementing engine.Pruner).
func RunPruner(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t.Run("Prune", func(t *testing.T) { testPrune(t, newStore) })
	t.Run("PruneLimit", func(t *testing.T) { testPruneLimit(t, newStore) })
	t.Run("PruneDropped", func(t *testing.T) { testPruneDropped(t, newStore) })
}

func pruner(t *testing.T, s engine.Store) engine.Pruner {
	t.Helper()
	p, ok := s.(engine.Pruner)
	if !ok {
		t.Fatalf("%T is not an engine.Pruner", s)
	}
	return p
}

// pruneFixture makes one execution per status, last updated at T0 (old) and
// one done at T0+2h (new); each old one has two history entries.
func pruneFixture(t *testing.T, s engine.Store) {
	t.Helper()
	at := T0.Add(-time.Minute)
	for _, id := range []string{"done", "failed", "stopped", "running", "waiting", "new"} {
		run(t, s, create(id, at), acquire(id, 0, 0, at), commit(id, 0, 0, engine.OutcomeNext, at), acquire(id, 1, 0, at))
	}
	run(t, s,
		commit("done", 1, 0, engine.OutcomeDone, T0),
		commit("failed", 1, 0, engine.OutcomeFailed, T0),
		setStatus("stopped", engine.StatusStopped, T0),
		commit("running", 1, 0, engine.OutcomeNext, T0),
		commit("waiting", 1, 0, engine.OutcomeWait, T0),
		commit("new", 1, 0, engine.OutcomeDone, T0.Add(2*time.Hour)))
}

func testPrune(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	pruneFixture(t, s)
	kept := map[string]engine.Execution{}
	for _, id := range []string{"running", "waiting", "new"} {
		kept[id] = mustGet(t, s, id)
	}
	res, err := pruner(t, s).Prune(t.Context(), engine.PruneRequest{Before: T0.Add(time.Hour), Now: T0.Add(3 * time.Hour)})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	// stopped has one history entry: its second step never committed.
	if want := (engine.PruneResult{Executions: 3, History: 5}); res != want {
		t.Errorf("Prune = %+v, want %+v", res, want)
	}
	for id, e := range kept {
		if diff := cmp.Diff(e, mustGet(t, s, id), equate); diff != "" {
			t.Errorf("%s changed by a prune that must keep it (-before +after):\n%s", id, diff)
		}
	}
	ids, _ := listAll(t, s, engine.ListFilter{})
	if diff := cmp.Diff([]string{"waiting", "running", "new"}, ids); diff != "" {
		t.Errorf("List after prune (-want +got):\n%s", diff)
	}
	if tl, ok := s.(engine.Tailer); ok {
		rows, err := tl.HistorySince(t.Context(), 0, engine.HistoryFilter{})
		if err != nil {
			t.Fatalf("HistorySince: %v", err)
		}
		for _, r := range rows {
			if r.CorrelationID != "running" && r.CorrelationID != "waiting" && r.CorrelationID != "new" {
				t.Errorf("HistorySince after prune returned a row of %q", r.CorrelationID)
			}
		}
	}
	for _, id := range []string{"done", "failed", "stopped"} {
		t.Run(id, func(t *testing.T) {
			if _, err := s.Get(t.Context(), id); !errors.Is(err, engine.ErrNotFound) || !errors.Is(err, engine.ErrPruned) {
				t.Errorf("Get of a pruned execution = %v, want ErrNotFound and ErrPruned", err)
			}
			if _, err := s.History(t.Context(), id); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("History of a pruned execution = %v, want ErrNotFound", err)
			}
			// A late duplicate of any step, and a message for a later one,
			// must not run: the store would otherwise record the id afresh.
			for _, step := range []int{0, 1, 2} {
				_, err := s.Acquire(t.Context(), acquireReq(id, step, 0, T0.Add(4*time.Hour)))
				if !errors.Is(err, engine.ErrPruned) || !errors.Is(err, engine.ErrDuplicate) {
					t.Errorf("Acquire(step %d) of a pruned execution = %v, want ErrPruned and ErrDuplicate", step, err)
				}
			}
			if _, err := s.Get(t.Context(), id); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("Get after a refused Acquire = %v, want ErrNotFound (no record made on the fly)", err)
			}
			err := s.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: machine, CreatedAt: T0.Add(4 * time.Hour)})
			if !errors.Is(err, engine.ErrExists) {
				t.Errorf("Create of a pruned id = %v, want ErrExists", err)
			}
		})
	}
	// Pruning again finds nothing.
	res, err = pruner(t, s).Prune(t.Context(), engine.PruneRequest{Before: T0.Add(time.Hour), Now: T0.Add(5 * time.Hour)})
	if err != nil || res != (engine.PruneResult{}) {
		t.Errorf("second Prune = %+v, %v, want nothing", res, err)
	}
}

func testPruneLimit(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	pruneFixture(t, s)
	p := pruner(t, s)
	total := 0
	for range 5 {
		res, err := p.Prune(t.Context(), engine.PruneRequest{Before: T0.Add(time.Hour), Limit: 2, Now: T0.Add(3 * time.Hour)})
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		if res.Executions > 2 {
			t.Errorf("Prune(limit 2) deleted %d", res.Executions)
		}
		total += res.Executions
	}
	if total != 3 {
		t.Errorf("Prune(limit 2) five times deleted %d, want 3", total)
	}
}

func testPruneDropped(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	dr, ok := s.(engine.DropRecorder)
	if !ok {
		t.Skip("not a DropRecorder")
	}
	for _, at := range []time.Time{T0, T0.Add(2 * time.Hour)} {
		if err := dr.RecordDrop(t.Context(), engine.DroppedMessage{Time: at, Reason: engine.DropNotJSON, Size: 3}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := pruner(t, s).Prune(t.Context(), engine.PruneRequest{Before: T0.Add(time.Hour), Now: T0.Add(3 * time.Hour)})
	if err != nil || res != (engine.PruneResult{Dropped: 1}) {
		t.Errorf("Prune = %+v, %v, want one dropped record deleted", res, err)
	}
	left, err := dr.ListDropped(t.Context(), engine.DropFilter{})
	if err != nil || len(left) != 1 || !left[0].Time.Equal(T0.Add(2*time.Hour)) {
		t.Errorf("ListDropped after prune = %v, %v, want the newer record", left, err)
	}
}

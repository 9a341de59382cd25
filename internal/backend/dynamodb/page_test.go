package dynamodb_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestHistoryPage pages one execution's history by the opaque cursor that
// lfsm tail --follow polls with; a commit that lost its fence is not listed.
func TestHistoryPage(t *testing.T) {
	s := newStore(t, dynamodb.Options{})
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	commitStep := func(k int) {
		t.Helper()
		at := t0.Add(time.Duration(k) * time.Second)
		l, err := s.Acquire(t.Context(), acq("x", k, 0, at))
		if err != nil {
			t.Fatal(err)
		}
		c, _ := step("x", k, 0, l.Fence, at)
		if err := s.Commit(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	page := func(cursor string, f engine.HistoryFilter) ([]int, string) {
		t.Helper()
		rows, next, err := s.HistoryPage(t.Context(), cursor, f)
		if err != nil {
			t.Fatalf("HistoryPage(%q): %v", cursor, err)
		}
		steps := []int{}
		for _, r := range rows {
			steps = append(steps, r.Step)
			if r.CorrelationID != "x" || r.Machine != "M" {
				t.Errorf("row %+v: want execution x of M", r)
			}
		}
		return steps, next
	}
	commitStep(0)
	commitStep(1)
	// A commit of step 2 that loses its fence to a takeover leaves a step item behind.
	l, err := s.Acquire(t.Context(), acq("x", 2, 0, t0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(t.Context(), acq("x", 2, 0, t0.Add(lease))); err != nil {
		t.Fatal(err)
	}
	stale, _ := step("x", 2, 0, l.Fence, t0)
	if err := s.Commit(t.Context(), stale); !errors.Is(err, engine.ErrFenceLost) {
		t.Fatalf("stale commit = %v, want ErrFenceLost", err)
	}
	f := engine.HistoryFilter{CorrelationID: "x", Limit: 1}
	got, c1 := page("", f)
	if diff := cmp.Diff([]int{0}, got); diff != "" {
		t.Errorf("first page (-want +got):\n%s", diff)
	}
	got, c2 := page(c1, engine.HistoryFilter{CorrelationID: "x"})
	if diff := cmp.Diff([]int{1}, got); diff != "" {
		t.Errorf("second page (-want +got):\n%s", diff)
	}
	if got, c3 := page(c2, engine.HistoryFilter{CorrelationID: "x"}); len(got) != 0 || c3 != c2 {
		t.Errorf("nothing new: %v, cursor %q; want none and the same cursor %q", got, c3, c2)
	}
	commitStep(3)
	if got, _ := page(c2, engine.HistoryFilter{CorrelationID: "x"}); !cmp.Equal([]int{3}, got) {
		t.Errorf("after step 3 committed: %v, want [3] (the lost commit of step 2 is no entry)", got)
	}
	if got, _ := page("", engine.HistoryFilter{CorrelationID: "x", Machine: "Other"}); len(got) != 0 {
		t.Errorf("another machine's filter: %v, want none", got)
	}
	if _, _, err := s.HistoryPage(t.Context(), "", engine.HistoryFilter{}); !errors.Is(err, engine.ErrNeedsCorrelationID) {
		t.Errorf("HistoryPage without an execution = %v, want ErrNeedsCorrelationID", err)
	}
	if _, _, err := s.HistoryPage(t.Context(), "m1.AAAA", f); !errors.Is(err, engine.ErrBadCursor) {
		t.Errorf("HistoryPage with a foreign cursor = %v, want ErrBadCursor", err)
	}
}

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// listFixture creates seven executions (newest first: g f e d c b a; b, c
// and d created at the same instant, f and g too; b, d and f of machine
// Other) and moves a to waiting in state S1.
func listFixture(t *testing.T, s engine.Store) {
	t.Helper()
	at := map[string]time.Duration{"a": 0, "b": 1, "c": 1, "d": 1, "e": 2, "f": 3, "g": 3}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		when := T0.Add(at[id] * time.Second)
		e := engine.Execution{CorrelationID: id, Machine: machine, State: "S0", CreatedAt: when, UpdatedAt: when}
		if id == "b" || id == "d" || id == "f" {
			e.Machine = "Other"
		}
		if err := s.Create(t.Context(), e); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
	// a becomes the most recently updated, and waiting: updates do not move it.
	run(t, s, acquire("a", 0, 0, T0.Add(time.Minute)), commit("a", 0, 0, engine.OutcomeWait, T0.Add(time.Minute)))
}

// listAll follows f's cursors to the end and returns the ids in order and
// the number of pages. Every page must hold at most f.Limit executions (a
// store may return fewer, even none, with a Next).
func listAll(t *testing.T, s engine.Store, f engine.ListFilter) (ids []string, pages int) {
	t.Helper()
	ids = []string{}
	for {
		page, err := s.List(t.Context(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if page.Executions == nil {
			t.Errorf("List(%+v) returned nil executions, want an empty slice", f)
		}
		if f.Limit > 0 && len(page.Executions) > f.Limit {
			t.Errorf("List(%+v) returned %d executions, more than the limit", f, len(page.Executions))
		}
		for _, e := range page.Executions {
			ids = append(ids, e.CorrelationID)
		}
		pages++
		if page.Next == "" {
			return ids, pages
		}
		if page.Next == f.Cursor {
			t.Fatalf("List(%+v) returned its own cursor as Next: it would never end", f)
		}
		if pages > 100 {
			t.Fatalf("List(%+v): more than 100 pages for 7 executions", f)
		}
		f.Cursor = page.Next
	}
}

func testList(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	listFixture(t, s)
	filters := []struct {
		name string
		f    engine.ListFilter
		want []string
	}{
		{"all", engine.ListFilter{}, []string{"g", "f", "e", "d", "c", "b", "a"}},
		{"machine", engine.ListFilter{Machine: "Other"}, []string{"f", "d", "b"}},
		{"status", engine.ListFilter{Status: engine.StatusWaiting}, []string{"a"}},
		{"state", engine.ListFilter{State: "S0"}, []string{"g", "f", "e", "d", "c", "b"}},
		{"machine and status", engine.ListFilter{Machine: machine, Status: engine.StatusRunning}, []string{"g", "e", "c"}},
		{"machine and state", engine.ListFilter{Machine: machine, State: "S1"}, []string{"a"}},
		{"none", engine.ListFilter{Machine: "Nope"}, []string{}},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.List(t.Context(), tc.f)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if page.Next != "" {
				t.Errorf("List(%+v) without a limit: Next = %q, want none", tc.f, page.Next)
			}
			ids, _ := listAll(t, s, tc.f)
			if diff := cmp.Diff(tc.want, ids); diff != "" {
				t.Errorf("List(%+v), newest first (-want +got):\n%s", tc.f, diff)
			}
			// Every page size, across ties of creation time: each match once, in order.
			for limit := 1; limit <= len(tc.want)+1; limit++ {
				f := tc.f
				f.Limit = limit
				ids, pages := listAll(t, s, f)
				if diff := cmp.Diff(tc.want, ids); diff != "" {
					t.Errorf("List(%+v) followed to the end (-want +got):\n%s", f, diff)
				}
				if min := (len(tc.want) + limit - 1) / limit; pages < min {
					t.Errorf("List(%+v): %d pages, want at least %d", f, pages, min)
				}
			}
		})
	}
	t.Run("first page", func(t *testing.T) {
		page, err := s.List(t.Context(), engine.ListFilter{Limit: 2})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(page.Executions) == 0 || page.Next == "" {
			t.Fatalf("List(limit 2) of 7 = %d executions, next %q: want a page and a cursor", len(page.Executions), page.Next)
		}
		for _, e := range page.Executions {
			if diff := cmp.Diff(mustGet(t, s, e.CorrelationID), e, equate); diff != "" {
				t.Errorf("List entry differs from Get (-get +list):\n%s", diff)
			}
		}
	})
	t.Run("waiting entry", func(t *testing.T) {
		page, err := s.List(t.Context(), engine.ListFilter{Status: engine.StatusWaiting})
		if err != nil || len(page.Executions) != 1 {
			t.Fatalf("List(waiting) = %v, %v", page, err)
		}
		if diff := cmp.Diff(mustGet(t, s, "a"), page.Executions[0], equate); diff != "" {
			t.Errorf("List entry differs from Get (-get +list):\n%s", diff)
		}
	})
	t.Run("bad cursor", func(t *testing.T) {
		for _, c := range []string{"garbage", "m1.!!", "s1.AAAA", "\xff"} {
			if _, err := s.List(t.Context(), engine.ListFilter{Limit: 2, Cursor: c}); !errors.Is(err, engine.ErrBadCursor) {
				t.Errorf("List(cursor %q) = %v, want ErrBadCursor", c, err)
			}
		}
	})
}

// testListWhilePaging checks keyset paging: executions updated between pages
// are listed once, one created after the first page is not listed (it is
// newer than the cursor), and none is skipped.
func testListWhilePaging(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	listFixture(t, s)
	page, err := s.List(t.Context(), engine.ListFilter{Limit: 3})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := []string{}
	for _, e := range page.Executions {
		got = append(got, e.CorrelationID)
	}
	later := T0.Add(time.Hour)
	// g (listed) and c (not yet) change; h is created.
	run(t, s,
		acquire("g", 0, 0, later), commit("g", 0, 0, engine.OutcomeNext, later),
		acquire("c", 0, 0, later), commit("c", 0, 0, engine.OutcomeDone, later),
		create("h", later))
	if page.Next == "" {
		t.Fatalf("List(limit 3) of 7: no Next")
	}
	rest, _ := listAll(t, s, engine.ListFilter{Limit: 3, Cursor: page.Next})
	got = append(got, rest...)
	if diff := cmp.Diff([]string{"g", "f", "e", "d", "c", "b", "a"}, got); diff != "" {
		t.Errorf("pages listed while executions changed (-want +got):\n%s", diff)
	}
	if ids, _ := listAll(t, s, engine.ListFilter{Limit: 3}); len(ids) != 8 || ids[0] != "h" {
		t.Errorf("a new listing = %v, want h first and all 8", ids)
	}
}

package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// RunCounter runs the Counter conformance suite on stores newStore returns
// (empty, implementing engine.Counter).
func RunCounter(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	c, ok := s.(engine.Counter)
	if !ok {
		t.Fatalf("%T is not an engine.Counter", s)
	}
	if got, err := c.Count(t.Context(), ""); err != nil || got == nil || len(got) != 0 {
		t.Errorf("Count of an empty store = %#v, %v; want an empty slice", got, err)
	}
	listFixture(t, s) // a waiting in S1; b..g running in S0 (b, d, f of Other)
	for _, tc := range []struct {
		machine string
		want    []engine.CountRow
	}{
		{"", []engine.CountRow{{State: "S0", Status: engine.StatusRunning, N: 6}, {State: "S1", Status: engine.StatusWaiting, N: 1}}},
		{machine, []engine.CountRow{{State: "S0", Status: engine.StatusRunning, N: 3}, {State: "S1", Status: engine.StatusWaiting, N: 1}}},
		{"Other", []engine.CountRow{{State: "S0", Status: engine.StatusRunning, N: 3}}},
		{"Nope", []engine.CountRow{}},
	} {
		got, err := c.Count(t.Context(), tc.machine)
		if err != nil {
			t.Fatalf("Count(%q): %v", tc.machine, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Count(%q) (-want +got):\n%s", tc.machine, diff)
		}
	}
}

package actions

import (
	"encoding/json"
	"testing"

	"github.com/lfsm/lfsm/fsm"
)

// doFacts are the facts of a do action of state, as the engine sets them.
func doFacts(state string) fsm.Facts {
	return fsm.Facts{Machine: "Example", State: state, Kind: fsm.KindDo}
}

func TestAction2(t *testing.T) {
	tests := []struct {
		name      string
		values    map[string]any
		wantEvent string
		wantMFF   string
		permanent bool
	}{
		{name: "arg1 as decoded from JSON", values: map[string]any{"arg1": json.Number("2")}, wantEvent: "done", wantMFF: "fancy(2)"},
		{name: "arg1 as an int", values: map[string]any{"arg1": 7}, wantEvent: "done", wantMFF: "fancy(7)"},
		{name: "no arg1", values: nil, permanent: true},
		{name: "arg1 not a whole number", values: map[string]any{"arg1": 1.5}, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fsm.NewContext(doFacts("FirstState"), tt.values, nil)
			ev, err := Action2(t.Context(), c)
			if tt.permanent {
				if !fsm.IsPermanent(err) {
					t.Fatalf("Action2 = %q, %v; want a permanent error", ev, err)
				}
				return
			}
			if err != nil || ev != tt.wantEvent {
				t.Fatalf("Action2 = %q, %v; want %q", ev, err, tt.wantEvent)
			}
			if mff, _ := c.String("mff"); mff != tt.wantMFF {
				t.Errorf("mff = %q, want %q", mff, tt.wantMFF)
			}
		})
	}
}

func TestAction5(t *testing.T) {
	c := fsm.NewContext(doFacts("SecondState"), map[string]any{"mff": "fancy(2)"}, nil)
	if ev, err := Action5(t.Context(), c); err != nil || ev != "done" {
		t.Fatalf("Action5 = %q, %v; want done", ev, err)
	}

	c = fsm.NewContext(doFacts("SecondState"), nil, nil)
	if _, err := Action5(t.Context(), c); !fsm.IsPermanent(err) {
		t.Errorf("Action5 without mff: %v, want a permanent error", err)
	}

	// An empty mff is an error of the code Action5 calls: retried, not permanent.
	c = fsm.NewContext(doFacts("SecondState"), map[string]any{"mff": ""}, nil)
	if _, err := Action5(t.Context(), c); err == nil || fsm.IsPermanent(err) {
		t.Errorf("Action5 with an empty mff: %v, want a retryable error", err)
	}
}

// TestActionsChain runs the done, done path's actions in order on one
// context, as λ1, λ2, λ4 and λ5 would: what Action2 stores, Action5 reads.
func TestActionsChain(t *testing.T) {
	c := fsm.NewContext(fsm.Facts{Machine: "Example"}, map[string]any{"arg1": float64(1)}, nil)
	steps := []struct {
		name string
		a    fsm.Action
		want string
	}{
		{"Action1", Action1{}, ""},
		{"Action2", fsm.ActionFunc(Action2), "done"},
		{"Action3", Action3, ""},
		{"Action4", Action4{}, ""},
		{"Action5", fsm.ActionFunc(Action5), "done"},
		{"Action6", Action6, ""},
		{"Action7", fsm.ActionFunc(Action7), ""},
		{"Action8", fsm.ActionFunc(Action8), ""},
		{"Action9", Action9{}, ""},
	}
	for _, s := range steps {
		ev, err := s.a.Execute(t.Context(), c)
		if err != nil || ev != s.want {
			t.Fatalf("%s = %q, %v; want %q", s.name, ev, err, s.want)
		}
	}
	if got, _ := c.String("mff"); got != "fancy(1)" {
		t.Errorf("mff = %q after the chain, want fancy(1)", got)
	}
}

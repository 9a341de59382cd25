package lambdanum

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/spec"
)

func ref(s string) *spec.ActionRef { return &spec.ActionRef{Ref: s} }

func tr(target spec.StateName, event spec.EventName, local bool) *spec.Transition {
	return &spec.Transition{Target: target, Event: event, Local: local}
}

func TestLambdas(t *testing.T) {
	step := func(kind StepKind, state spec.StateName, r string) Step {
		return Step{Kind: kind, State: state, Ref: r}
	}
	tests := []struct {
		name string
		m    *spec.Machine
		want []Lambda
	}{
		{
			name: "seed example",
			m: func() *spec.Machine {
				s, _ := spec.Load("testdata/seed_example.yaml")
				return s.Machines[0]
			}(),
			want: []Lambda{
				{Number: 1, From: Start, To: "FirstState", Event: spec.PseudoInit, Actions: []Step{
					step(StepEntry, "FirstState", "path.to.Action1"), step(StepDo, "FirstState", "path.to.Action2"),
				}},
				{Number: 2, From: "FirstState", To: "SecondState", Event: "done", Actions: []Step{
					step(StepExit, "FirstState", "path.to.Action3"),
					step(StepEntry, "SecondState", "path.to.Action4"), step(StepDo, "SecondState", "path.to.Action5"),
				}},
				{Number: 3, From: "FirstState", To: "ThirdState", Event: "skip", Actions: []Step{
					step(StepExit, "FirstState", "path.to.Action3"),
					step(StepEntry, "ThirdState", "path.to.Action7"), step(StepDo, "ThirdState", "path.to.Action8"),
				}},
				{Number: 4, From: "SecondState", To: "ThirdState", Event: "done", Actions: []Step{
					step(StepExit, "SecondState", "path.to.Action6"),
					step(StepEntry, "ThirdState", "path.to.Action7"), step(StepDo, "ThirdState", "path.to.Action8"),
				}},
				{Number: 5, From: "ThirdState", To: End, Event: spec.PseudoFinal, Actions: []Step{
					step(StepExit, "ThirdState", "path.to.Action9"),
				}},
			},
		},
		{
			// Spec order decides: the end edge of a final state comes before its
			// transitions, and the initial state's start edge need not be first.
			name: "final with transitions, initial not first, transition action",
			m: &spec.Machine{Name: "m", States: []*spec.State{
				{Name: "Done", Final: true, ExitAction: ref("x.Bye"), Transitions: []*spec.Transition{tr("Begin", "again", false)}},
				{Name: "Begin", Initial: true, Transitions: []*spec.Transition{
					{Target: "Done", Event: "ok", Action: ref("x.Move")},
				}},
			}},
			want: []Lambda{
				{Number: 1, From: "Done", To: End, Event: spec.PseudoFinal, Actions: []Step{step(StepExit, "Done", "x.Bye")}},
				{Number: 2, From: "Done", To: "Begin", Event: "again", Actions: []Step{step(StepExit, "Done", "x.Bye")}},
				{Number: 3, From: Start, To: "Begin", Event: spec.PseudoInit},
				{Number: 4, From: "Begin", To: "Done", Event: "ok", Actions: []Step{
					{Kind: StepTransition, State: "Begin", Target: "Done", Event: "ok", Ref: "x.Move"},
				}},
			},
		},
		{
			name: "initial and final",
			m: &spec.Machine{Name: "m", States: []*spec.State{
				{Name: "Only", Initial: true, Final: true, EntryAction: ref("a.E"), DoAction: ref("a.D"), ExitAction: ref("a.X")},
			}},
			want: []Lambda{
				{Number: 1, From: Start, To: "Only", Event: spec.PseudoInit, Actions: []Step{
					step(StepEntry, "Only", "a.E"), step(StepDo, "Only", "a.D"),
				}},
				{Number: 2, From: "Only", To: End, Event: spec.PseudoFinal, Actions: []Step{step(StepExit, "Only", "a.X")}},
			},
		},
		{
			// A local chain A -> B -> (B again | C -> A); A and C both reach B's
			// other branch: cycles and joins are listed once.
			name: "local chains, cycles and joins",
			m: &spec.Machine{Name: "m", States: []*spec.State{
				{Name: "S", Initial: true, Transitions: []*spec.Transition{tr("A", "go", false)}},
				{Name: "A", DoAction: ref("a.A"), Transitions: []*spec.Transition{tr("B", "b", true), tr("C", "c", true)}},
				{Name: "B", DoAction: ref("a.B"), Transitions: []*spec.Transition{tr("B", "again", true), tr("C", "c", true)}},
				{Name: "C", DoAction: ref("a.C"), Final: true, Transitions: []*spec.Transition{tr("A", "loop", true)}},
			}},
			want: []Lambda{
				{Number: 1, From: Start, To: "S", Event: spec.PseudoInit},
				{Number: 2, From: "S", To: "A", Event: "go", Actions: []Step{step(StepDo, "A", "a.A")}, Local: []Continuation{
					{Event: "b", From: "A", To: "B", Actions: []Step{step(StepDo, "B", "a.B")}, Next: []Continuation{
						{Event: "again", From: "B", To: "B", Actions: []Step{step(StepDo, "B", "a.B")}, Cycle: true},
						{Event: "c", From: "B", To: "C", Actions: []Step{step(StepDo, "C", "a.C")}, Next: []Continuation{
							{Event: "loop", From: "C", To: "A", Actions: []Step{step(StepDo, "A", "a.A")}, Cycle: true},
						}},
					}},
					{Event: "c", From: "A", To: "C", Actions: []Step{step(StepDo, "C", "a.C")}, Seen: true},
				}},
				{Number: 3, From: "C", To: End, Event: spec.PseudoFinal, NoInvocation: true},
			},
		},
		{
			name: "unknown target",
			m: &spec.Machine{Name: "m", States: []*spec.State{
				{Name: "S", Initial: true, ExitAction: ref("a.X"), Transitions: []*spec.Transition{tr("Nowhere", "go", false)}},
			}},
			want: []Lambda{
				{Number: 1, From: Start, To: "S", Event: spec.PseudoInit},
				{Number: 2, From: "S", To: "Nowhere", Event: "go", Actions: []Step{step(StepExit, "S", "a.X")}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Lambdas(tt.m)); diff != "" {
				t.Errorf("Lambdas (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStepString(t *testing.T) {
	tests := []struct {
		step Step
		want string
	}{
		{Step{Kind: StepExit, State: "FirstState"}, "FirstState.exit_action"},
		{Step{Kind: StepDo, State: "S"}, "S.do_action"},
		{Step{Kind: StepTransition, State: "A", Target: "B", Event: "e"}, "A.e.action"},
	}
	for _, tt := range tests {
		if got := tt.step.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.step, got, tt.want)
		}
	}
}

package graph

import "github.com/lfsm/lfsm/internal/spec"

// seedMachine is the seed's Example machine, as a literal until the YAML is loaded.
func seedMachine() *spec.Machine {
	ref := func(s string) *spec.ActionRef { return &spec.ActionRef{Ref: s} }
	return &spec.Machine{Name: "Example", States: []*spec.State{
		{Name: "FirstState", Initial: true, EntryAction: ref("path.to.Action1"), DoAction: ref("path.to.Action2"), ExitAction: ref("path.to.Action3"),
			Transitions: []*spec.Transition{{Target: "SecondState", Event: "done"}, {Target: "ThirdState", Event: "skip"}}},
		{Name: "SecondState", EntryAction: ref("path.to.Action4"), DoAction: ref("path.to.Action5"), ExitAction: ref("path.to.Action6"),
			Transitions: []*spec.Transition{{Target: "ThirdState", Event: "done"}}},
		{Name: "ThirdState", Final: true, EntryAction: ref("path.to.Action7"), DoAction: ref("path.to.Action8"), ExitAction: ref("path.to.Action9")},
	}}
}

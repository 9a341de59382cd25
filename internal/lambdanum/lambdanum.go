package lambdanum

import (
	"github.com/lfsm/lfsm/internal/spec"
)

// Pseudo states, as the From of a start λ and the To of an end λ. The spec forbids
// them as state names, so they never stand for a real state.
const (
	Start spec.StateName = spec.PseudoInit
	End   spec.StateName = spec.PseudoFinal
)

// StepKind says which action of a state or transition a Step runs.
type StepKind string

// Step kinds, named as the spec's keys.
const (
	StepEntry      StepKind = "entry_action"
	StepDo         StepKind = "do_action"
	StepExit       StepKind = "exit_action"
	StepTransition StepKind = "action"
)

// Step is one action run inside a Lambda invocation.
type Step struct {
	Kind StepKind
	// State owns the action; for a transition action it is the transition's source.
	State spec.StateName
	// Target is the transition's target; set only for StepTransition.
	Target spec.StateName
	// Event is the transition's event; set only for StepTransition.
	Event spec.EventName
	// Ref is the action reference as written in the spec.
	Ref string
}

// String names the step as the listing, a run's λ lines and the execution
// history do: "FirstState.exit_action", and "FirstState.done.action" for the
// action of FirstState's transition on event done (the event, not the target,
// names a transition: a state may have two to the same target).
func (s Step) String() string {
	if s.Kind == StepTransition {
		return string(s.State) + "." + string(s.Event) + "." + string(s.Kind)
	}
	return string(s.State) + "." + string(s.Kind)
}

// Lambda is one numbered Lambda invocation of a machine: the dispatch of Event from
// From to To, and the actions it runs in order.
type Lambda struct {
	// Number is the λ number, from 1, in the order of REFERENCE.md §2.
	Number int
	// From is the source state, or Start for the invocation that starts the machine.
	From spec.StateName
	// To is the target state, or End for the invocation that runs a final state's exit.
	To spec.StateName
	// Event is the dispatched event: spec.PseudoInit for a start λ and
	// spec.PseudoFinal for an end λ.
	Event spec.EventName
	// Actions run in this order; actions the spec omits are not listed.
	Actions []Step
	// Local lists, for each local transition of To, what runs next in the same
	// invocation when To's do action returns that transition's event.
	Local []Continuation
	// NoInvocation marks the end λ of a final state without exit action: it
	// keeps its number (the numbering is the Python tool's), but no Lambda
	// invocation runs for it, since the execution finishes in the invocation
	// that reached the state (REFERENCE.md §2). Diagrams draw it dotted, the
	// listing and a run's λ lines say "(no invocation)".
	NoInvocation bool
}

// Continuation is a local transition followed inside the invocation that reached
// its source.
type Continuation struct {
	Event spec.EventName
	From  spec.StateName
	To    spec.StateName
	// Actions run in this order: From's exit, the transition's action, To's entry and do.
	Actions []Step
	// Next lists the local transitions of To, followed in turn.
	Next []Continuation
	// Cycle reports that To is already on the local chain that led here: the chain
	// goes round again, and Next is empty.
	Cycle bool
	// Seen reports that To's local transitions were already listed earlier in the
	// same λ (two local chains join), and Next is empty.
	Seen bool
}

// index maps state names to states; the first state wins when a name repeats.
type index map[spec.StateName]*spec.State

func newIndex(m *spec.Machine) index {
	idx := make(index, len(m.States))
	for _, s := range m.States {
		if _, ok := idx[s.Name]; !ok {
			idx[s.Name] = s
		}
	}
	return idx
}

// Lambdas computes the λ numbering of m (REFERENCE.md §2). Numbers are assigned in
// spec order: for each state, its start edge (if it is the machine's initial state),
// then its end edge (if it is final), then its non-local transitions in order. A
// local transition gets no number: it runs inside the invocation that reached its
// source, and appears in that λ's Local continuations.
func Lambdas(m *spec.Machine) []Lambda {
	idx := newIndex(m)
	w := &localWalk{idx: idx, onPath: map[spec.StateName]bool{}, expanded: map[spec.StateName]bool{}}
	initial := m.Initial()
	var out []Lambda
	add := func(l Lambda) {
		l.Number = len(out) + 1
		out = append(out, l)
	}
	for _, s := range m.States {
		if s == initial {
			add(Lambda{
				From:    Start,
				To:      s.Name,
				Event:   spec.PseudoInit,
				Actions: appendArrival(nil, s),
				Local:   w.from(s),
			})
		}
		if s.Final {
			var acts []Step
			if s.ExitAction != nil {
				acts = append(acts, Step{Kind: StepExit, State: s.Name, Ref: s.ExitAction.Ref})
			}
			add(Lambda{From: s.Name, To: End, Event: spec.PseudoFinal, Actions: acts, NoInvocation: s.ExitAction == nil})
		}
		for _, t := range s.Transitions {
			if t.Local {
				continue
			}
			target := idx[t.Target]
			add(Lambda{
				From:    s.Name,
				To:      t.Target,
				Event:   t.Event,
				Actions: transitionSteps(s, t, target),
				Local:   w.from(target),
			})
		}
	}
	return out
}

// appendArrival appends the entry and do actions of s.
func appendArrival(steps []Step, s *spec.State) []Step {
	if s.EntryAction != nil {
		steps = append(steps, Step{Kind: StepEntry, State: s.Name, Ref: s.EntryAction.Ref})
	}
	if s.DoAction != nil {
		steps = append(steps, Step{Kind: StepDo, State: s.Name, Ref: s.DoAction.Ref})
	}
	return steps
}

// transitionSteps lists the actions of dispatching t from s: s's exit, t's action,
// and the entry and do actions of target (nil when the target is unknown).
func transitionSteps(s *spec.State, t *spec.Transition, target *spec.State) []Step {
	var steps []Step
	if s.ExitAction != nil {
		steps = append(steps, Step{Kind: StepExit, State: s.Name, Ref: s.ExitAction.Ref})
	}
	if t.Action != nil {
		steps = append(steps, Step{
			Kind: StepTransition, State: s.Name, Target: t.Target, Event: t.Event, Ref: t.Action.Ref,
		})
	}
	if target != nil {
		steps = appendArrival(steps, target)
	}
	return steps
}

// localWalk follows local transitions, depth first. Each state's local transitions
// are expanded at most once per λ, so the work stays linear in the machine's size
// whatever shape its local chains have.
type localWalk struct {
	idx      index
	onPath   map[spec.StateName]bool
	expanded map[spec.StateName]bool
}

// from lists the local continuations of s for one λ.
func (w *localWalk) from(s *spec.State) []Continuation {
	if s == nil || !hasLocal(s) {
		return nil
	}
	clear(w.expanded)
	return w.expand(s)
}

func (w *localWalk) expand(s *spec.State) []Continuation {
	w.onPath[s.Name] = true
	w.expanded[s.Name] = true
	defer delete(w.onPath, s.Name)
	var out []Continuation
	for _, t := range s.Transitions {
		if !t.Local {
			continue
		}
		target := w.idx[t.Target]
		c := Continuation{
			Event:   t.Event,
			From:    s.Name,
			To:      t.Target,
			Actions: transitionSteps(s, t, target),
		}
		switch {
		case target == nil || !hasLocal(target):
		case w.onPath[target.Name]:
			c.Cycle = true
		case w.expanded[target.Name]:
			c.Seen = true
		default:
			c.Next = w.expand(target)
		}
		out = append(out, c)
	}
	return out
}

func hasLocal(s *spec.State) bool {
	for _, t := range s.Transitions {
		if t.Local {
			return true
		}
	}
	return false
}

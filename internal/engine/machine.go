package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/spec"
)

// Resolver maps an action reference of the spec to the action to run.
type Resolver func(ref string) (fsm.Action, error)

// Machine is a compiled, immutable machine: states and transitions indexed so
// that dispatching costs map lookups and no allocation. Safe for concurrent use.
type Machine struct {
	name       string
	maxRetries int
	maxSteps   int
	// retryDelay and maxRetryDelay are the backoff's base and cap.
	retryDelay    time.Duration
	maxRetryDelay time.Duration
	initial       int
	states        []state
	byName        map[string]int
	spec          *spec.Machine
	// hash is spec.Hash(), which every message the machine writes carries.
	hash string
}

type state struct {
	name  string
	final bool
	entry action
	do    action
	exit  action
	// initLabels (entry, do) and exitLabels (exit) list the actions of the
	// start and end segments, built once; see transition.labels.
	initLabels []string
	exitLabels []string
	trans      []transition
	// events indexes trans by event when there are more than linearScanMax.
	events map[string]int
}

// linearScanMax is the most transitions a state looks up by scanning.
const linearScanMax = 8

type transition struct {
	event  string
	target int
	local  bool
	action action
	// labels lists the actions taking the transition runs (source exit,
	// transition action, target entry and do, those present), so that history
	// entries share it instead of building a list per invocation.
	labels []string
}

// action is one resolved action and the label history entries record for it,
// built once here so that running it builds no string.
type action struct {
	fn    fsm.Action
	label string
	kind  fsm.ActionKind
}

// Name is the machine's name.
func (m *Machine) Name() string { return m.name }

// MaxRetries is the machine's max_retries (the default when the spec omits it).
func (m *Machine) MaxRetries() int { return m.maxRetries }

// MaxSteps is the machine's max_steps (the default when the spec omits it).
func (m *Machine) MaxSteps() int { return m.maxSteps }

// RetryDelayBound is the upper bound of the delay before the retry numbered
// retries (1 for the first): min(max_retry_delay, retry_delay * 2^retries),
// as the machine's spec sets them (1 s and 60 s by default).
func (m *Machine) RetryDelayBound(retries int) time.Duration {
	return retryDelayBound(m.retryDelay, m.maxRetryDelay, retries)
}

// Spec is the spec machine m was compiled from.
func (m *Machine) Spec() *spec.Machine { return m.spec }

// SpecHash is the hash of the machine's spec (spec.Machine.Hash) that every
// message it writes carries as system_context.spec_hash.
func (m *Machine) SpecHash() string { return m.hash }

func (m *Machine) state(name string) (int, bool) {
	i, ok := m.byName[name]
	return i, ok
}

func (s *state) transition(event string) *transition {
	if s.events == nil {
		// Few transitions: a scan beats hashing the event.
		for i := range s.trans {
			if s.trans[i].event == event {
				return &s.trans[i]
			}
		}
		return nil
	}
	i, ok := s.events[event]
	if !ok {
		return nil
	}
	return &s.trans[i]
}

// labels lists the labels of the actions present.
func labels(as ...*action) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if a.fn != nil {
			out = append(out, a.label)
		}
	}
	return out
}

// CompileError lists every problem Compile found.
type CompileError struct {
	Machine  string
	Problems []string
}

// Error names the machine, the first problem and how many more there are.
func (e *CompileError) Error() string {
	s := fmt.Sprintf("compile machine %q: %s", e.Machine, e.Problems[0])
	if n := len(e.Problems) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return s
}

// Compile turns a spec machine into a runtime machine, resolving every action
// reference with resolve. It reports structural problems that would make the
// machine unrunnable (no initial state, unknown targets, duplicate names or
// events, reserved names, unresolvable actions); spec.Validate reports more.
func Compile(m *spec.Machine, resolve Resolver) (*Machine, error) {
	if m == nil {
		return nil, errors.New("compile machine: nil machine")
	}
	cm := &Machine{
		name:          m.Name,
		maxRetries:    m.EffectiveMaxRetries(),
		maxSteps:      m.EffectiveMaxSteps(),
		retryDelay:    time.Duration(m.EffectiveRetryDelay()) * time.Second,
		maxRetryDelay: time.Duration(m.EffectiveMaxRetryDelay()) * time.Second,
		initial:       -1,
		states:        make([]state, len(m.States)),
		byName:        make(map[string]int, len(m.States)),
		spec:          m,
		hash:          m.Hash(),
	}
	var problems []string
	if d, dmax := m.EffectiveRetryDelay(), m.EffectiveMaxRetryDelay(); d < 1 || dmax < 1 || dmax > spec.MaxRetryDelayLimit || d > dmax {
		problems = append(problems, fmt.Sprintf("retry backoff retry_delay %d s, max_retry_delay %d s: want whole seconds from 1 to %d (7 days), retry_delay at most max_retry_delay",
			d, dmax, spec.MaxRetryDelayLimit))
	}
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if m.Name == "" {
		bad("machine has no name")
	}
	for i, s := range m.States {
		name := string(s.Name)
		switch {
		case name == "":
			bad("state %d has no name", i+1)
		case name == spec.PseudoInit || name == spec.PseudoFinal:
			bad("state name %q is reserved", name)
		}
		if _, dup := cm.byName[name]; dup {
			bad("duplicate state %q", name)
		}
		cm.byName[name] = i
		if s.Initial && cm.initial < 0 {
			cm.initial = i
		}
	}
	if cm.initial < 0 {
		bad("no initial state")
	}
	resolveRef := func(ref *spec.ActionRef, label string, kind fsm.ActionKind) action {
		if ref == nil || ref.Ref == "" {
			return action{}
		}
		if resolve == nil {
			bad("%s: no resolver for action %q", label, ref.Ref)
			return action{}
		}
		fn, err := resolve(ref.Ref)
		if err != nil {
			bad("%s: resolve action %q: %v", label, ref.Ref, err)
			return action{}
		}
		if fn == nil {
			bad("%s: action %q resolved to nil", label, ref.Ref)
		}
		return action{fn: fn, label: label, kind: kind}
	}
	for i, s := range m.States {
		name := string(s.Name)
		st := &cm.states[i]
		st.name = name
		st.final = s.Final
		st.entry = resolveRef(s.EntryAction, name+"."+string(fsm.KindEntry), fsm.KindEntry)
		st.do = resolveRef(s.DoAction, name+"."+string(fsm.KindDo), fsm.KindDo)
		st.exit = resolveRef(s.ExitAction, name+"."+string(fsm.KindExit), fsm.KindExit)
		st.trans = make([]transition, 0, len(s.Transitions))
		st.events = make(map[string]int, len(s.Transitions))
		for _, t := range s.Transitions {
			ev := string(t.Event)
			if ev == spec.PseudoInit || ev == spec.PseudoFinal || ev == "" {
				bad("state %q: event name %q is reserved", name, ev)
				continue
			}
			if _, dup := st.events[ev]; dup {
				bad("state %q: duplicate transition for event %q", name, ev)
				continue
			}
			target, ok := cm.byName[string(t.Target)]
			if !ok {
				bad("state %q: transition %q targets unknown state %q", name, ev, t.Target)
				continue
			}
			st.events[ev] = len(st.trans)
			st.trans = append(st.trans, transition{
				event:  ev,
				target: target,
				local:  t.Local,
				action: resolveRef(t.Action, name+"."+ev+"."+string(fsm.KindTransition), fsm.KindTransition),
			})
		}
		if len(st.trans) <= linearScanMax {
			st.events = nil
		}
	}
	for i := range cm.states {
		st := &cm.states[i]
		st.initLabels = labels(&st.entry, &st.do)
		st.exitLabels = labels(&st.exit)
		for j := range st.trans {
			t := &st.trans[j]
			dst := &cm.states[t.target]
			t.labels = labels(&st.exit, &t.action, &dst.entry, &dst.do)
		}
	}
	if len(problems) > 0 {
		return nil, &CompileError{Machine: m.Name, Problems: problems}
	}
	return cm, nil
}

// SimulateOptions configures SimulateActions.
type SimulateOptions struct {
	// Events are returned by do actions in order (e.g. done, done). When they run
	// out, do actions return no event: a non-final state waits, a final state ends.
	Events []string
	// Rand, when Events is nil, drives a random walk: each do action returns the
	// event of one of its state's transitions, uniformly (a final state may also
	// end). Nil means a walk seeded with 1.
	Rand *rand.Rand
}

// SimulateActions returns a resolver for lfsm run --simulate: every reference
// resolves to an action that does nothing but, as a do action of machine m,
// returns the next event of opts. The events list is shared by every execution
// the resolver's actions run in.
func SimulateActions(m *spec.Machine, opts SimulateOptions) Resolver {
	sim := &simulator{machine: m, events: opts.Events, rnd: opts.Rand}
	if sim.rnd == nil {
		sim.rnd = rand.New(rand.NewPCG(1, 2))
	}
	return func(ref string) (fsm.Action, error) { return sim, nil }
}

type simulator struct {
	machine *spec.Machine
	mu      sync.Mutex
	events  []string
	rnd     *rand.Rand
}

func (s *simulator) Execute(_ context.Context, c *fsm.Context) (string, error) {
	if c.Facts().Kind != fsm.KindDo {
		return "", nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events != nil {
		if len(s.events) == 0 {
			return "", nil
		}
		ev := s.events[0]
		s.events = s.events[1:]
		return ev, nil
	}
	st := s.machine.State(spec.StateName(c.State()))
	if st == nil {
		return "", nil
	}
	n := len(st.Transitions)
	if st.Final {
		n++ // the extra choice ends the execution
	}
	if n == 0 {
		return "", nil
	}
	i := s.rnd.IntN(n)
	if i == len(st.Transitions) {
		return "", nil
	}
	return string(st.Transitions[i].Event), nil
}

package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// Lister lists executions and reads one; the execution stores implement it.
type Lister interface {
	List(ctx context.Context, f engine.ListFilter) (engine.ListPage, error)
	Get(ctx context.Context, id string) (engine.Execution, error)
}

// Messages are queued messages the check can read without consuming them:
// the retry table's items, the DynamoDB-stream dispatch table's items. An
// SQS queue cannot be read so (a receive changes the message's visibility
// and receive count), nor can an SNS topic; docs/design.md ("Live
// executions across a deploy") says why the store covers them.
type Messages interface {
	// Name says where the messages are ("retry table NAME").
	Name() string
	// Each calls fn with every message's payload.
	Each(ctx context.Context, fn func(payload []byte) error) error
}

// Stranded is a group of live executions the new spec cannot continue:
// their machine or state is gone, or the event they are about to dispatch
// has no transition any more.
type Stranded struct {
	Machine string `json:"machine"`
	State   string `json:"state"`
	Event   string `json:"event,omitempty"`
	Reason  string `json:"reason"`
	// Where is "store" for an execution the store holds, else the queued
	// messages' place (a retry table, a dispatch table).
	Where string `json:"where"`
	Count int    `json:"count"`
	// IDs are a few of them (at most sampleIDs).
	IDs []string `json:"ids"`
}

// Renamed is a group of live executions a rename map carries on: they
// continue in state To (on event ToEvent).
type Renamed struct {
	Machine string   `json:"machine"`
	State   string   `json:"state"`
	Event   string   `json:"event,omitempty"`
	To      string   `json:"to"`
	ToEvent string   `json:"to_event,omitempty"`
	Count   int      `json:"count"`
	IDs     []string `json:"ids"`
}

const sampleIDs = 3

// CheckInput is what Check reads.
type CheckInput struct {
	// Store is the deployed execution store.
	Store Lister
	// Spec is the spec about to be deployed.
	Spec *spec.Spec
	// Renames is the deploy's rename map (nil: none); its From hashes say
	// which executions it covers, exactly as the deployed function will
	// apply it.
	Renames []engine.Rename
	// Queued are the queued messages that can be read.
	Queued []Messages
}

// Report is what Check found.
type Report struct {
	// Stranded are the groups the new spec cannot continue.
	Stranded []Stranded `json:"stranded"`
	// Renamed are the groups the rename map carries on.
	Renamed []Renamed `json:"renamed"`
	// Executions counts the live executions read, Messages the queued
	// messages.
	Executions int `json:"executions"`
	Messages   int `json:"messages"`
}

// InFlight returns the running and waiting executions of store that the
// spec s would strand, grouped by machine, state and reason: Check with no
// rename map and no queued messages.
func InFlight(ctx context.Context, store Lister, s *spec.Spec) ([]Stranded, error) {
	r, err := Check(ctx, CheckInput{Store: store, Spec: s})
	return r.Stranded, err
}

// Check reads the live executions of the store (running and waiting) and
// the queued messages of in.Queued, renames each as the deployed function
// will (the rename map's From hashes), and reports those the new spec
// cannot continue and those the rename map carries on. A deploy of in.Spec
// must not go ahead while anything is stranded, unless forced: their next
// message would fail as an unknown state or event.
//
// A queued message counts when its execution is running or waiting in the
// store and the message's step is not done yet, or the store has no record
// of it (another producer's message, which makes its execution on the
// fly); the rest are duplicates and stale messages, which acquire refuses
// whatever the spec. An execution counts once, however many of its
// messages are queued.
func Check(ctx context.Context, in CheckInput) (Report, error) {
	c := checker{in: in, stranded: map[string]*Stranded{}, renamed: map[string]*Renamed{}, seen: map[string]bool{}}
	if len(in.Renames) > 0 {
		ms, err := compileSpec(in.Spec)
		if err != nil {
			return Report{}, err
		}
		if c.renamer, err = engine.NewRenamer(ms, in.Renames); err != nil {
			return Report{}, err
		}
		c.from = map[string]string{}
		for _, r := range in.Renames {
			c.from[r.Machine] = strings.Join(r.From, ", ")
		}
	}
	for _, status := range []engine.Status{engine.StatusRunning, engine.StatusWaiting} {
		cursor := ""
		for {
			page, err := in.Store.List(ctx, engine.ListFilter{Status: status, Limit: 500, Cursor: cursor})
			if err != nil {
				return Report{}, fmt.Errorf("list %s executions: %w", status, err)
			}
			for _, x := range page.Executions {
				if x.Status != status {
					continue // moved on between index and item
				}
				c.execution(x)
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	}
	for _, q := range in.Queued {
		if err := q.Each(ctx, func(payload []byte) error { return c.message(ctx, q.Name(), payload) }); err != nil {
			return Report{}, fmt.Errorf("read the queued messages of %s: %w", q.Name(), err)
		}
	}
	return c.report(), nil
}

// compileSpec compiles s's machines with no-op actions: the renamer needs
// their states and events only.
func compileSpec(s *spec.Spec) ([]*engine.Machine, error) {
	var out []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, engine.SimulateActions(m, engine.SimulateOptions{}))
		if err != nil {
			return nil, err
		}
		out = append(out, cm)
	}
	return out, nil
}

type checker struct {
	in       CheckInput
	renamer  *engine.Renamer
	from     map[string]string
	stranded map[string]*Stranded
	renamed  map[string]*Renamed
	// seen are the executions already counted.
	seen       map[string]bool
	executions int
	messages   int
}

// live is one execution (or queued message) to check.
type live struct {
	id, machine, state, event, hash string
	running                         bool
}

func (c *checker) execution(x engine.Execution) {
	if c.seen[x.CorrelationID] {
		return // listed again: it changed status between the two listings
	}
	c.executions++
	l := live{id: x.CorrelationID, machine: x.Machine, state: x.State, event: x.Event, running: x.Status == engine.StatusRunning}
	if msg, err := engine.DecodeMessage(x.Checkpoint); err == nil {
		// The checkpoint is the message the execution continues from: its
		// names and the spec hash it was written by.
		l.state, l.hash = msg.System.CurrentState, msg.System.SpecHash
		if l.running {
			l.event = msg.System.CurrentEvent
		}
	}
	c.check(l, "store")
}

func (c *checker) message(ctx context.Context, where string, payload []byte) error {
	msg, err := engine.DecodeMessage(payload)
	if err != nil {
		return nil // dropped at receive whatever the spec
	}
	c.messages++
	sys := msg.System
	if c.seen[sys.CorrelationID] {
		return nil
	}
	x, err := c.in.Store.Get(ctx, sys.CorrelationID)
	switch {
	case errors.Is(err, engine.ErrNotFound):
	case errors.Is(err, engine.ErrPruned):
		return nil
	case err != nil:
		return fmt.Errorf("read execution %s: %w", sys.CorrelationID, err)
	case x.Status != engine.StatusRunning && x.Status != engine.StatusWaiting, sys.Steps <= x.DoneStep:
		return nil // refused at acquire: finished, stopped, or a step done
	}
	c.check(live{id: sys.CorrelationID, machine: sys.MachineName, state: sys.CurrentState, event: sys.CurrentEvent, hash: sys.SpecHash, running: true}, where)
	return nil
}

func (c *checker) check(l live, where string) {
	c.seen[l.id] = true
	state, event, _, renamed := c.renamer.Translate(l.machine, l.hash, l.state, l.event)
	reason, ev := strandedBy(c.in.Spec, l.machine, state, event, l.running)
	if reason != "" {
		if from, ok := c.from[l.machine]; ok && !renamed {
			reason += fmt.Sprintf("; the rename map does not apply: it renames spec %s, this one started on %s", from, orNone(l.hash))
		} else if renamed {
			reason += fmt.Sprintf(" (after the rename map: state %s", state)
			if event != "" {
				reason += ", event " + event
			}
			reason += ")"
		}
		if ev != "" {
			ev = l.event
		}
		key := strings.Join([]string{l.machine, l.state, ev, reason, where}, "\x00")
		g := c.stranded[key]
		if g == nil {
			g = &Stranded{Machine: l.machine, State: l.state, Event: ev, Reason: reason, Where: where, IDs: []string{}}
			c.stranded[key] = g
		}
		g.Count++
		if len(g.IDs) < sampleIDs {
			g.IDs = append(g.IDs, l.id)
		}
		return
	}
	if renamed && (state != l.state || event != l.event) {
		key := strings.Join([]string{l.machine, l.state, l.event, state, event}, "\x00")
		g := c.renamed[key]
		if g == nil {
			g = &Renamed{Machine: l.machine, State: l.state, Event: l.event, To: state, ToEvent: event, IDs: []string{}}
			c.renamed[key] = g
		}
		g.Count++
		if len(g.IDs) < sampleIDs {
			g.IDs = append(g.IDs, l.id)
		}
	}
}

func orNone(h string) string {
	if h == "" {
		return "no spec hash"
	}
	return h
}

func (c *checker) report() Report {
	r := Report{Stranded: make([]Stranded, 0, len(c.stranded)), Renamed: make([]Renamed, 0, len(c.renamed)),
		Executions: c.executions, Messages: c.messages}
	for _, g := range c.stranded {
		r.Stranded = append(r.Stranded, *g)
	}
	for _, g := range c.renamed {
		r.Renamed = append(r.Renamed, *g)
	}
	slices.SortFunc(r.Stranded, func(a, b Stranded) int {
		return strings.Compare(a.Machine+"\x00"+a.State+"\x00"+a.Event+"\x00"+a.Where, b.Machine+"\x00"+b.State+"\x00"+b.Event+"\x00"+b.Where)
	})
	slices.SortFunc(r.Renamed, func(a, b Renamed) int {
		return strings.Compare(a.Machine+"\x00"+a.State+"\x00"+a.Event, b.Machine+"\x00"+b.State+"\x00"+b.Event)
	})
	return r
}

// strandedBy says why the new spec cannot continue an execution of machine
// in state about to dispatch event ("" when it can), and the event
// concerned.
func strandedBy(s *spec.Spec, machine, state, event string, running bool) (reason, ev string) {
	m := s.Machine(machine)
	if m == nil {
		return "machine is not in the new spec", ""
	}
	if state == "" || state == spec.PseudoInit {
		return "", "" // not started yet: the initial state takes it
	}
	st := m.State(spec.StateName(state))
	if st == nil {
		return "state is not in the new spec", ""
	}
	if !running || event == "" || event == spec.PseudoInit || event == spec.PseudoFinal {
		return "", ""
	}
	if st.Transition(spec.EventName(event)) == nil && !st.Final {
		return "event has no transition from this state in the new spec", event
	}
	return "", ""
}

// EngineRenames turns a checked rename map into the engine's renames: each
// machine's map applies to the messages written by the from spec's version
// of that machine (its spec hash). A machine whose version did not change
// needs none and gets none.
func EngineRenames(r *spec.Renames, next *spec.Spec) []engine.Rename {
	if r == nil {
		return nil
	}
	var out []engine.Rename
	for _, mr := range r.Machines {
		old, nm := r.From.Machine(mr.Machine), next.Machine(mr.Machine)
		if old == nil || nm == nil || old.Hash() == nm.Hash() {
			continue
		}
		er := engine.Rename{Machine: mr.Machine, From: []string{old.Hash()}, States: map[string]string{}, Events: map[string]string{}}
		for o, n := range mr.States {
			er.States[string(o)] = string(n)
		}
		for o, n := range mr.Events {
			er.Events[string(o)] = string(n)
		}
		out = append(out, er)
	}
	return out
}

// InFlightError refuses a deploy that would strand executions.
type InFlightError struct {
	Stack    string
	Stranded []Stranded
	// WithRenames: the deploy had a rename map, which left these.
	WithRenames bool
}

// Error lists each group: machine, state, count and a few ids.
func (e *InFlightError) Error() string {
	var b strings.Builder
	n := 0
	for _, g := range e.Stranded {
		n += g.Count
	}
	fmt.Fprintf(&b, "refusing to deploy stack %s: %d live execution(s) would be stranded by the new spec", e.Stack, n)
	if e.WithRenames {
		b.WriteString(" even with the rename map")
	}
	b.WriteString(":")
	for _, g := range e.Stranded {
		what := fmt.Sprintf("%s in state %s", g.Machine, g.State)
		if g.Event != "" {
			what += fmt.Sprintf(" about to dispatch %s", g.Event)
		}
		if g.Where != "" && g.Where != "store" {
			what += " (queued in " + g.Where + ")"
		}
		fmt.Fprintf(&b, "\n  %s: %d (%s), e.g. %s", what, g.Count, g.Reason, strings.Join(g.IDs, ", "))
	}
	b.WriteString("\nlet them finish (or lfsm stop them) first, keep the states they need, map their states and events to the new spec's with --rename FILE (docs/deploy.md, \"Renaming states\"), or pass --force to deploy anyway (their next steps will fail)")
	return b.String()
}

// MaxRenamesBytes bounds the encoded rename map: Lambda allows 4 KB for a
// function's whole environment, and the resources' ARNs take the rest.
const MaxRenamesBytes = 3 << 10

// SetRenames puts the rename map into the function's environment
// (EnvRenames), where the deployed handler reads it. It refuses a map too
// large for the environment, and a map for a Step Functions deployment,
// which has no engine of its own to rename with.
func (m *Model) SetRenames(rs []engine.Rename) error {
	if len(rs) == 0 {
		m.Renames = ""
		return nil
	}
	if m.Settings.Mode != ModeEvents {
		return errors.New("a rename map needs mode events: in Step Functions mode the state machines hold the states")
	}
	b, err := engine.EncodeRenames(rs)
	if err != nil {
		return err
	}
	if len(b) > MaxRenamesBytes {
		return fmt.Errorf("the rename map takes %d bytes in the function's environment, more than the %d it can have (Lambda allows 4 KB for all variables): rename fewer states in one deploy", len(b), MaxRenamesBytes)
	}
	m.Renames = string(b)
	return nil
}

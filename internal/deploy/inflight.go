package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// Lister lists executions; the execution stores implement it.
type Lister interface {
	List(ctx context.Context, f engine.ListFilter) (engine.ListPage, error)
}

// Stranded is a group of live executions the new spec cannot continue:
// their machine or state is gone, or the event they are about to dispatch
// has no transition any more.
type Stranded struct {
	Machine string `json:"machine"`
	State   string `json:"state"`
	Event   string `json:"event,omitempty"`
	Reason  string `json:"reason"`
	Count   int    `json:"count"`
	// IDs are a few of them (at most sampleIDs).
	IDs []string `json:"ids"`
}

const sampleIDs = 3

// InFlight returns the running and waiting executions of store that the
// spec s would strand, grouped by machine, state and reason. A deploy of s
// must not go ahead while there are any, unless forced: their next message
// would fail as an unknown state or event.
func InFlight(ctx context.Context, store Lister, s *spec.Spec) ([]Stranded, error) {
	groups := map[string]*Stranded{}
	for _, status := range []engine.Status{engine.StatusRunning, engine.StatusWaiting} {
		cursor := ""
		for {
			page, err := store.List(ctx, engine.ListFilter{Status: status, Limit: 500, Cursor: cursor})
			if err != nil {
				return nil, fmt.Errorf("list %s executions: %w", status, err)
			}
			for _, x := range page.Executions {
				reason, event := strandedBy(s, x)
				if reason == "" {
					continue
				}
				key := x.Machine + "\x00" + x.State + "\x00" + event + "\x00" + reason
				g := groups[key]
				if g == nil {
					g = &Stranded{Machine: x.Machine, State: x.State, Event: event, Reason: reason, IDs: []string{}}
					groups[key] = g
				}
				g.Count++
				if len(g.IDs) < sampleIDs {
					g.IDs = append(g.IDs, x.CorrelationID)
				}
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
	}
	out := make([]Stranded, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Stranded) int {
		return strings.Compare(a.Machine+"\x00"+a.State+"\x00"+a.Event, b.Machine+"\x00"+b.State+"\x00"+b.Event)
	})
	return out, nil
}

// strandedBy says why the new spec cannot continue x ("" when it can), and
// the event concerned.
func strandedBy(s *spec.Spec, x engine.Execution) (reason, event string) {
	m := s.Machine(x.Machine)
	if m == nil {
		return "machine is not in the new spec", ""
	}
	if x.State == "" || x.State == spec.PseudoInit {
		return "", "" // not started yet: the initial state takes it
	}
	st := m.State(spec.StateName(x.State))
	if st == nil {
		return "state is not in the new spec", ""
	}
	if x.Status != engine.StatusRunning || x.Event == "" || x.Event == spec.PseudoInit || x.Event == spec.PseudoFinal {
		return "", ""
	}
	if st.Transition(spec.EventName(x.Event)) == nil && !st.Final {
		return "event has no transition from this state in the new spec", x.Event
	}
	return "", ""
}

// InFlightError refuses a deploy that would strand executions.
type InFlightError struct {
	Stack    string
	Stranded []Stranded
}

// Error lists each group: machine, state, count and a few ids.
func (e *InFlightError) Error() string {
	var b strings.Builder
	n := 0
	for _, g := range e.Stranded {
		n += g.Count
	}
	fmt.Fprintf(&b, "refusing to deploy stack %s: %d live execution(s) would be stranded by the new spec:", e.Stack, n)
	for _, g := range e.Stranded {
		what := fmt.Sprintf("%s in state %s", g.Machine, g.State)
		if g.Event != "" {
			what += fmt.Sprintf(" about to dispatch %s", g.Event)
		}
		fmt.Fprintf(&b, "\n  %s: %d (%s), e.g. %s", what, g.Count, g.Reason, strings.Join(g.IDs, ", "))
	}
	b.WriteString("\nlet them finish (or lfsm stop them) first, keep the states they need, or pass --force to deploy anyway (their next steps will fail)")
	return b.String()
}

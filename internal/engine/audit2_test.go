package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestMessagesTheMachineCannotRun: a message the engine's machines cannot run
// (a spec changed between deploys, another producer) fails its execution at
// once with a reason naming what is missing; nothing panics and nothing is
// retried.
func TestMessagesTheMachineCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name, machine, state, event string
		want                        string
	}{
		{"unknown machine", "Gone", "FirstState", "done", `unknown machine "Gone"`},
		{"unknown state", "Example", "RemovedState", "done", `machine "Example" has no state "RemovedState"`},
		{"pseudo_final to a non-final state", "Example", "FirstState", spec.PseudoFinal, `state "FirstState" is not final`},
		{"pseudo_init with another event", "Example", spec.PseudoInit, "done", `state "pseudo_init" has no transition for event "done"`},
		{"unknown event", "Example", "FirstState", "removed_event", `state "FirstState" has no transition for event "removed_event"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{events: []string{"done"}}
			h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
			id := engine.NewCorrelationID()
			payload := fmt.Appendf(nil, `{"version":"0.1","system_context":{"machine_name":%q,"current_state":%q,"current_event":%q,"correlation_id":%q,"steps":4,"retries":0},"user_context":{}}`,
				tc.machine, tc.state, tc.event, id)
			res, err := h.eng.Handle(t.Context(), payload)
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if res.Outcome != engine.OutcomeFailed || res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Fatalf("Handle = %+v, want failed with %q", res, tc.want)
			}
			x := h.get(id)
			if x.Status != engine.StatusFailed || !strings.Contains(x.LastError, tc.want) {
				t.Errorf("execution %s, last error %q; want failed with %q", x.Status, x.LastError, tc.want)
			}
			if h.mem.Len() != 0 || len(s.ran) != 0 {
				t.Errorf("queue %d, actions %v; want nothing sent or run", h.mem.Len(), s.ran)
			}
		})
	}
}

// TestRetriesBeyondMaxOnArrival: a message whose retries already exceed
// max_retries (a lower max_retries after a redeploy) runs once, and its
// failure fails the execution instead of scheduling more retries.
func TestRetriesBeyondMaxOnArrival(t *testing.T) {
	f := &flaky{n: 1, err: errors.New("down")}
	two := 2
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, &two)})
	id := engine.NewCorrelationID()
	payload := fmt.Appendf(nil, `{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init","correlation_id":%q,"steps":0,"retries":7},"user_context":{}}`, id)
	res, err := h.eng.Handle(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != engine.OutcomeFailed || h.mem.Len() != 0 {
		t.Fatalf("Handle = %+v, queue %d; want failed, nothing scheduled", res, h.mem.Len())
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if rs := h.drain(); len(rs) != 1 || rs[0].Outcome != engine.OutcomeDone || rs[0].Retries != 0 {
		t.Fatalf("after resume %+v, want one attempt 0, done", rs)
	}
}

// TestFinalExitActionFails: the end λ (pseudo_final) is retried like any
// step; exhausted, the execution fails in its final state and resume runs the
// exit action again and finishes.
func TestFinalExitActionFails(t *testing.T) {
	one := 1
	exitCalls := 0
	failExit := 3
	m := mustCompile(t, &spec.Machine{Name: "F", MaxRetries: &one, States: []*spec.State{
		{Name: "A", Initial: true, Final: true, ExitAction: ref("exit")},
	}}, funcs(map[string]fsm.ActionFunc{"exit": func(context.Context, *fsm.Context) (string, error) {
		exitCalls++
		if exitCalls <= failExit {
			return "", errors.New("cannot clean up")
		}
		return "", nil
	}}))
	h := newHarness(t, []*engine.Machine{m})
	id := h.start("F", nil)
	rs := h.drain()
	// λ1 (next to pseudo_final), then the end λ twice (attempt 0 and its retry).
	if len(rs) != 3 || rs[1].Outcome != engine.OutcomeRetry || rs[2].Outcome != engine.OutcomeFailed {
		t.Fatalf("results %+v, want next, retry, failed", rs)
	}
	x := h.get(id)
	if x.Status != engine.StatusFailed || x.State != "A" || x.Event != spec.PseudoFinal {
		t.Fatalf("execution %s in %q on %q, want failed in A on pseudo_final", x.Status, x.State, x.Event)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rs = h.drain() // attempt 0 fails (third failure), its retry succeeds
	if len(rs) != 2 || rs[1].Outcome != engine.OutcomeDone {
		t.Fatalf("after resume %+v, want retry then done", rs)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status %s, want done", got)
	}
}

// TestConcurrentSendsAdvanceOnce: two sends to one waiting execution (two
// operators, or a retried API call): only one may advance the execution, and
// the second is told so (ErrNotWaiting: the first claimed it) instead of
// succeeding with a message that would be dropped as a duplicate.
func TestConcurrentSendsAdvanceOnce(t *testing.T) {
	s := &script{events: []string{"", "", ""}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	id := h.start("Example", map[string]any{"arg1": 3})
	if rs := h.drain(); len(rs) != 1 || rs[0].Outcome != engine.OutcomeWait {
		t.Fatalf("results %+v, want one wait", rs)
	}
	if err := h.eng.Send(t.Context(), id, "done"); err != nil {
		t.Fatalf("Send(done): %v", err)
	}
	if err := h.eng.Send(t.Context(), id, "skip"); !errors.Is(err, engine.ErrNotWaiting) {
		t.Fatalf("second Send(skip) = %v, want ErrNotWaiting", err)
	}
	rs := h.drain()
	if len(rs) != 1 {
		t.Fatalf("results %+v, want exactly one step run", rs)
	}
	if got := h.counters.Total(engine.MetricDuplicate); got != 0 {
		t.Errorf("duplicates %d, want 0 (the second event was never sent)", got)
	}
}

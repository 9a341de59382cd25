package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestHugeLeaseTimeoutStillExcludes: lease_timeout comes from the message; a
// huge one (1e300 s) must not overflow into a lease that has already expired,
// which would let a concurrent duplicate run the same step.
func TestHugeLeaseTimeoutStillExcludes(t *testing.T) {
	for _, lt := range []string{"1e300", "1e10", "9.3e9"} {
		t.Run(lt, func(t *testing.T) {
			g := newGate(func() (string, error) { return "ok", nil })
			var calls sync.Mutex
			n := 0
			m := mustCompile(t, &spec.Machine{Name: "M", States: []*spec.State{
				{Name: "A", Initial: true, DoAction: ref("gate"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
				{Name: "B", Final: true},
			}}, funcs(map[string]fsm.ActionFunc{"gate": func(ctx context.Context, c *fsm.Context) (string, error) {
				calls.Lock()
				n++
				first := n == 1
				calls.Unlock()
				if !first {
					return "ok", nil // a duplicate that got the lease: do not block
				}
				return g.Execute(ctx, c)
			}}))
			h := newHarness(t, []*engine.Machine{m})
			payload := fmt.Appendf(nil, `{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init","correlation_id":"c1","steps":0,"retries":0,"lease_timeout":%s},"user_context":{}}`, lt)
			var (
				first engine.Result
				err   error
				wg    sync.WaitGroup
			)
			wg.Go(func() { first, err = h.eng.Handle(context.WithoutCancel(t.Context()), payload) })
			<-g.entered
			dup, derr := h.eng.Handle(t.Context(), payload)
			close(g.release)
			wg.Wait()
			if err != nil || derr != nil {
				t.Fatalf("Handle: %v, %v", err, derr)
			}
			if dup.Dropped != engine.DropLeaseHeld {
				t.Errorf("concurrent duplicate: %+v, want dropped as lease held", dup)
			}
			if first.Outcome != engine.OutcomeNext {
				t.Errorf("first: %+v, want next", first)
			}
		})
	}
}

// TestHugeDelayIsNotImmediate: additional_delay_seconds (and an action's
// Delay) is the user's; a huge one must not overflow into a message that is
// delivered at once.
func TestHugeDelayIsNotImmediate(t *testing.T) {
	m := mustCompile(t, &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("go"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", Final: true},
	}}, funcs(map[string]fsm.ActionFunc{"go": func(context.Context, *fsm.Context) (string, error) { return "ok", nil }}))
	h := newHarness(t, []*engine.Machine{m})
	payload := []byte(`{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init","correlation_id":"c1","steps":0,"retries":0,"additional_delay_seconds":1e300},"user_context":{}}`)
	res, err := h.eng.Handle(t.Context(), payload)
	if err != nil || res.Outcome != engine.OutcomeNext {
		t.Fatalf("Handle = %+v, %v", res, err)
	}
	if res.Delay <= 0 {
		t.Errorf("delay %v, want positive", res.Delay)
	}
	if d, ok := h.next(); ok {
		t.Errorf("next message delivered at once: %s", d.Payload)
	}
}

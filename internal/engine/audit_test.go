package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// Tests found by an audit of the protocol's edges: operator calls that meet a
// step in flight, and user contexts the decoder would refuse.

// TestResumeAfterStopDuringRetryBackoff: an execution stopped while its step
// waits for a retry (its checkpoint is the retry, attempt r+1; attempt r is
// recorded as failed) must run again on resume, which re-sends the checkpoint
// with retries 0. Before the fix the resumed message was refused as a
// duplicate of a failed attempt and the execution stayed running forever.
func TestResumeAfterStopDuringRetryBackoff(t *testing.T) {
	f := &flaky{n: 2, err: errors.New("down")}
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, nil)})
	id := h.start("M", nil)
	if res, _ := h.step(); res.Outcome != engine.OutcomeRetry {
		t.Fatalf("first attempt: %+v, want a retry", res)
	}
	if err := h.eng.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	rs := h.drain() // the retry arrives and is dropped: stopped
	if len(rs) != 0 {
		t.Fatalf("stopped execution ran %+v", rs)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rs = h.drain()
	if len(rs) == 0 || rs[len(rs)-1].Outcome != engine.OutcomeDone {
		t.Fatalf("after resume: %+v, want the step to run to done", rs)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

// TestResumeAfterStopWhileRetryStillDelayed: the retry is still delayed when
// the operator resumes, so two messages of the step are alive (the retry,
// attempt r+1, and the resumed checkpoint, attempt 0). The step must reach
// done exactly once and the other copy must be dropped.
func TestResumeAfterStopWhileRetryStillDelayed(t *testing.T) {
	f := &flaky{n: 1, err: errors.New("down")}
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, nil)})
	id := h.start("M", nil)
	if res, _ := h.step(); res.Outcome != engine.OutcomeRetry {
		t.Fatalf("first attempt: %+v, want a retry", res)
	}
	if err := h.eng.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rs := h.drain()
	done := 0
	for _, r := range rs {
		if r.Outcome == engine.OutcomeDone {
			done++
		}
	}
	if done != 1 {
		t.Fatalf("results %+v: want exactly one done", rs)
	}
	if f.calls != 2 {
		t.Errorf("action ran %d times, want 2 (the failed attempt and one success)", f.calls)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

// gate blocks the action until released, so a test can act while a step runs.
type gate struct {
	entered chan struct{}
	release chan struct{}
	result  func() (string, error)
}

func newGate(result func() (string, error)) *gate {
	return &gate{entered: make(chan struct{}, 1), release: make(chan struct{}), result: result}
}

func (g *gate) Execute(context.Context, *fsm.Context) (string, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.result()
}

// stepWhile runs one step in the background and calls during while its action
// is blocked; it returns the step's result.
func (h *harness) stepWhile(g *gate, during func()) engine.Result {
	h.t.Helper()
	d, ok := h.next()
	if !ok {
		h.t.Fatal("no message")
	}
	var (
		res engine.Result
		err error
		wg  sync.WaitGroup
	)
	wg.Go(func() { res, err = h.eng.HandleDelivery(context.WithoutCancel(h.t.Context()), h.mem, d) })
	<-g.entered
	during()
	close(g.release)
	wg.Wait()
	if err != nil {
		h.t.Fatalf("HandleDelivery: %v", err)
	}
	return res
}

// TestStopDuringAFailingStepThenResume: the operator stops an execution while
// its step runs, and the step then fails for good. Resume must run the step
// again (it did not succeed), not drop the resumed message as a duplicate and
// leave the execution running with nothing in flight.
func TestStopDuringAFailingStepThenResume(t *testing.T) {
	fail := true
	g := newGate(func() (string, error) {
		if fail {
			return "", fsm.Permanent(errors.New("bad input"))
		}
		return "ok", nil
	})
	m := mustCompile(t, &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("gate"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", Final: true},
	}}, func(string) (fsm.Action, error) { return g, nil })
	h := newHarness(t, []*engine.Machine{m})
	id := h.start("M", nil)
	res := h.stepWhile(g, func() {
		if err := h.eng.Stop(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != engine.OutcomeFailed {
		t.Fatalf("step: %+v, want failed", res)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	fail = false
	g.release = make(chan struct{})
	close(g.release)
	rs := h.drain()
	if len(rs) != 2 || rs[0].Outcome != engine.OutcomeNext || rs[1].Outcome != engine.OutcomeDone {
		t.Fatalf("after resume: %+v, want the step again, then done", rs)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

// TestStopDuringTheLastStep: a stop that arrives while the step that finishes
// the execution runs has nothing left to stop: the execution is done, and
// Resume says so instead of re-sending a step that is already done (which left
// the execution running forever).
func TestStopDuringTheLastStep(t *testing.T) {
	g := newGate(func() (string, error) { return "", nil })
	m := mustCompile(t, &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, Final: true, DoAction: ref("gate")},
	}}, func(string) (fsm.Action, error) { return g, nil })
	h := newHarness(t, []*engine.Machine{m})
	id := h.start("M", nil)
	res := h.stepWhile(g, func() {
		if err := h.eng.Stop(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	})
	if res.Outcome != engine.OutcomeDone {
		t.Fatalf("step: %+v, want done", res)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
	if err := h.eng.Resume(t.Context(), id); !errors.Is(err, engine.ErrNotResumable) {
		t.Errorf("Resume = %v, want ErrNotResumable", err)
	}
}

// TestStopOfAFailedExecutionThenResume: stopping a failed execution must not
// lose what Resume needs to run its failed step again.
func TestStopOfAFailedExecutionThenResume(t *testing.T) {
	zero := 0
	f := &flaky{n: 1, err: errors.New("down")}
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, &zero)})
	id := h.start("M", nil)
	if rs := h.drain(); len(rs) != 1 || rs[0].Outcome != engine.OutcomeFailed {
		t.Fatalf("results %+v, want one failed attempt", rs)
	}
	_ = h.eng.Stop(t.Context(), id) // refused or not, resume must work
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rs := h.drain()
	if len(rs) != 1 || rs[0].Outcome != engine.OutcomeDone {
		t.Fatalf("after resume: %+v, want the step to run to done", rs)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

// TestUnencodableUserContextFailsTheExecution: a context the next message
// cannot carry (a cycle, or deeper than a message may nest) fails the
// execution at once. Before the fix a cycle overflowed the stack (a crash no
// recover catches) and a deep context was sent and then dropped as malformed
// by the next step, so the execution stalled.
func TestUnencodableUserContextFailsTheExecution(t *testing.T) {
	deep := func() any {
		var v any = "leaf"
		for range 10050 {
			v = map[string]any{"n": v}
		}
		return v
	}
	cycle := func() any {
		m := map[string]any{}
		m["self"] = []any{m}
		return m
	}
	for name, value := range map[string]func() any{"deep": deep, "cycle": cycle} {
		t.Run(name, func(t *testing.T) {
			m := mustCompile(t, &spec.Machine{Name: "M", States: []*spec.State{
				{Name: "A", Initial: true, DoAction: ref("set"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
				{Name: "B", Final: true},
			}}, func(string) (fsm.Action, error) {
				return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
					c.Set("v", value())
					return "ok", nil
				}), nil
			})
			h := newHarness(t, []*engine.Machine{m})
			id := h.start("M", nil)
			rs := h.drain()
			if len(rs) != 1 || rs[0].Outcome != engine.OutcomeFailed {
				t.Fatalf("results %+v, want one failed step", rs)
			}
			x := h.get(id)
			if x.Status != engine.StatusFailed || !strings.Contains(x.LastError, "user context") {
				t.Errorf("execution %s, last error %q; want failed naming the user context", x.Status, x.LastError)
			}
		})
	}
}

// TestEncodedContextDecodesAtTheDepthLimit: the encoder accepts exactly the
// nesting the decoder reads back, so no step sends a message the next step
// drops as malformed.
func TestEncodedContextDecodesAtTheDepthLimit(t *testing.T) {
	nested := func(n int) map[string]any {
		var v any = 1.0
		for range n {
			v = map[string]any{"n": v}
		}
		return v.(map[string]any)
	}
	okAt := -1
	for n := 9990; n < 10010; n++ {
		msg := engine.Message{System: engine.SystemContext{MachineName: "M", CurrentState: "A", CurrentEvent: "e", CorrelationID: "c"},
			User: nested(n)}
		b, encErr := engine.EncodeMessage(msg)
		_, decErr := engine.DecodeMessage(b)
		if encErr == nil && decErr != nil {
			t.Fatalf("nesting %d: encoded, but decoding fails: %v", n, decErr)
		}
		if encErr == nil {
			okAt = n
		}
	}
	if okAt < 9990 {
		t.Errorf("no nesting from 9990 encodes")
	}
}

package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// recorder is the memory backend as Store, Queue and Source at once (so the
// engine ends steps with CommitStep), recording the calls the engine makes.
type recorder struct {
	*memory.Backend
	mu    sync.Mutex
	calls []string
}

func (r *recorder) record(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

func (r *recorder) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	r.record("Acquire")
	return r.Backend.Acquire(ctx, q)
}

func (r *recorder) Commit(ctx context.Context, c engine.Commit) error {
	r.record("Commit")
	return r.Backend.Commit(ctx, c)
}

func (r *recorder) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	r.record("CommitStep")
	return r.Backend.CommitStep(ctx, c, out, ack)
}

func (r *recorder) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	r.record("Send")
	return r.Backend.Send(ctx, m)
}

func (r *recorder) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	r.record("ScheduleRetry")
	return r.Backend.ScheduleRetry(ctx, m)
}

func (r *recorder) Ack(ctx context.Context, receipt string) error {
	r.record("Ack")
	return r.Backend.Ack(ctx, receipt)
}

// TestStepIsOneWrite: on a backend that is Store, Queue and Source at once, a
// happy transition is an Acquire and one CommitStep that sends the next
// message, commits and acknowledges the delivery; a retry is scheduled in it
// too.
func TestStepIsOneWrite(t *testing.T) {
	s := &script{events: []string{"done", "done"}}
	var rec *recorder
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))}, func(o *engine.Options) {
		rec = &recorder{Backend: o.Store.(*memory.Backend)}
		o.Store, o.Queue = rec, rec
	})
	id := h.start("Example", map[string]any{"arg1": 1})
	for i := range 3 {
		d, ok := h.next()
		if !ok {
			t.Fatalf("step %d: no message", i)
		}
		rec.take()
		res, err := h.eng.HandleDelivery(t.Context(), rec, d)
		if err != nil || res.Outcome != engine.OutcomeNext || !res.Acked {
			t.Fatalf("step %d: HandleDelivery = %+v, %v; want a next outcome, acked", i, res, err)
		}
		if diff := cmp.Diff([]string{"Acquire", "CommitStep"}, rec.take()); diff != "" {
			t.Errorf("step %d backend calls (-want +got):\n%s", i, diff)
		}
		if n := h.mem.Len(); n != 1 {
			t.Errorf("step %d: %d messages queued, want only the next one", i, n)
		}
		if x := h.get(id); x.DoneStep != i || x.SendReceipt == "" {
			t.Errorf("step %d: done step %d, send receipt %q; want %d and the next message's", i, x.DoneStep, x.SendReceipt, i)
		}
	}

	// A delivery of another source is acknowledged there, after the commit.
	d, _ := h.next()
	other := &recorder{Backend: h.mem}
	res, err := h.eng.HandleDelivery(t.Context(), other, d)
	if err != nil || !res.Acked {
		t.Fatalf("HandleDelivery from another source = %+v, %v", res, err)
	}
	if diff := cmp.Diff([]string{"Acquire", "CommitStep"}, rec.take()); diff != "" {
		t.Errorf("engine's backend calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Ack"}, other.take()); diff != "" {
		t.Errorf("other source's calls (-want +got):\n%s", diff)
	}
}

func TestStepRetryIsScheduledInTheCommit(t *testing.T) {
	f := &flaky{n: 1, err: context.DeadlineExceeded}
	var rec *recorder
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, nil)}, func(o *engine.Options) {
		rec = &recorder{Backend: o.Store.(*memory.Backend)}
		o.Store, o.Queue = rec, rec
	})
	id := h.start("M", nil)
	d, _ := h.next()
	rec.take()
	res, err := h.eng.HandleDelivery(t.Context(), rec, d)
	if err != nil || res.Outcome != engine.OutcomeRetry || res.Delay <= 0 {
		t.Fatalf("HandleDelivery = %+v, %v; want a delayed retry", res, err)
	}
	if diff := cmp.Diff([]string{"CommitStep"}, rec.take()[1:]); diff != "" {
		t.Errorf("calls after Acquire (-want +got):\n%s", diff)
	}
	if _, ok := h.next(); ok {
		t.Fatalf("the retry is visible before its delay")
	}
	h.clock.Advance(res.Delay)
	d, ok := h.next()
	if !ok {
		t.Fatalf("the retry is not visible after its delay")
	}
	if res, err := h.eng.HandleDelivery(t.Context(), rec, d); err != nil || res.Outcome != engine.OutcomeDone || res.Retries != 1 {
		t.Fatalf("retry = %+v, %v; want attempt 1 done", res, err)
	}
	if x := h.get(id); x.Status != engine.StatusDone || h.mem.Len() != 0 {
		t.Errorf("status %s with %d messages queued, want done and none", x.Status, h.mem.Len())
	}
}

// TestStepFenceLostSendsNothing: a worker whose lease was taken over while its
// actions ran sends nothing; its delivery is then acknowledged on its own.
func TestStepFenceLostSendsNothing(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	slow := fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
		}
		return "ok", nil
	})
	m := &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("slow"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", Final: true},
	}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, m, func(string) (fsm.Action, error) { return slow, nil })},
		func(o *engine.Options) { o.LeaseTimeout = time.Minute })
	id := h.start("M", nil)
	d, _ := h.next()
	type out struct {
		res engine.Result
		err error
	}
	done := make(chan out)
	go func() {
		res, err := h.eng.HandleDelivery(context.WithoutCancel(t.Context()), h.mem, d)
		done <- out{res, err}
	}()
	<-entered
	h.clock.Advance(time.Minute + time.Second) // the slow worker's lease expires
	fast, err := h.eng.Handle(t.Context(), d.Payload)
	if err != nil || fast.Outcome != engine.OutcomeNext {
		t.Fatalf("takeover Handle = %+v, %v", fast, err)
	}
	before := h.get(id)
	close(release)
	slowOut := <-done
	if slowOut.err != nil || slowOut.res.Dropped != engine.DropFenceLost || !slowOut.res.Acked {
		t.Errorf("stale HandleDelivery = %+v, %v; want dropped %q and acked", slowOut.res, slowOut.err, engine.DropFenceLost)
	}
	if diff := cmp.Diff(before, h.get(id)); diff != "" {
		t.Errorf("stale step changed the execution (-before +after):\n%s", diff)
	}
	if n := h.mem.Len(); n != 1 {
		t.Errorf("%d messages queued, want only the one the takeover sent", n)
	}
}

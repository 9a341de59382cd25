package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// StepBackend is a backend that ends a step in one write: store, queue and
// source at once.
type StepBackend interface {
	engine.Store
	engine.StepCommitter
	engine.SwapSender
	engine.CreateSender
	engine.ReopenSender
	engine.PendingCounter
	QueueBackend
}

// RunStepCommitter runs the engine.StepCommitter conformance suite. newBackend
// returns an empty backend whose queue reads the time from clock (a fake the
// suite advances).
func RunStepCommitter(t *testing.T, newBackend func(t *testing.T, clock func() time.Time) StepBackend) {
	t1 := T0.Add(time.Second)
	t.Run("SwapStatusSend", func(t *testing.T) { testSwapStatusSend(t, newBackend) })
	t.Run("QueueAware", func(t *testing.T) { testQueueAware(t, newBackend) })
	// fresh returns a backend with execution "c" created, step 0 acquired
	// (fence 1) and its message delivered once.
	fresh := func(t *testing.T) (StepBackend, *Clock, engine.Delivery) {
		c := NewClock(T0)
		b := newBackend(t, c.Now)
		run(t, b, create("c", T0), acquire("c", 0, 0, T0))
		send(t, b, "start")
		ds := receive(t, b, 1)
		if len(ds) != 1 {
			t.Fatalf("received %d messages, want the start message", len(ds))
		}
		return b, c, ds[0]
	}

	t.Run("next", func(t *testing.T) {
		b, clock, d := fresh(t)
		c := commitReq("c", 0, 0, 1, engine.OutcomeNext, t1)
		c.SendReceipt = ""
		r, err := b.CommitStep(t.Context(), c, &engine.OutMessage{Key: "c", Payload: []byte("next")}, d.Receipt)
		if err != nil || r == "" {
			t.Fatalf("CommitStep = %q, %v; want a receipt", r, err)
		}
		c.SendReceipt = r
		want := engine.Execution{
			CorrelationID: "c", Machine: machine, Status: engine.StatusRunning, State: c.State, Event: c.Event,
			DoneStep: 0, Fence: 1, LeaseStep: 0, Checkpoint: c.Checkpoint, SendReceipt: r, CreatedAt: T0, UpdatedAt: t1,
		}
		if diff := cmp.Diff(want, mustGet(t, b, "c"), equate); diff != "" {
			t.Errorf("execution after CommitStep (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]engine.HistoryEntry{c.History}, mustHistory(t, b, "c"), equate); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
		if err := b.Ack(t.Context(), d.Receipt); err == nil {
			t.Errorf("Ack of the committed delivery succeeded: CommitStep did not acknowledge it")
		}
		clock.Advance(Visibility + time.Second)
		if diff := cmp.Diff([]string{"next"}, payloads(receive(t, b, 10))); diff != "" {
			t.Errorf("queue after CommitStep: the next message only (-want +got):\n%s", diff)
		}
	})

	t.Run("retry is delayed", func(t *testing.T) {
		b, clock, d := fresh(t)
		c := commitReq("c", 0, 0, 1, engine.OutcomeRetry, t1)
		if _, err := b.CommitStep(t.Context(), c, &engine.OutMessage{Key: "c", Payload: []byte("retry"), Delay: 10 * time.Second}, d.Receipt); err != nil {
			t.Fatalf("CommitStep: %v", err)
		}
		if ds := receive(t, b, 10); len(ds) != 0 {
			t.Errorf("before the delay, received %q, want nothing", payloads(ds))
		}
		clock.Advance(10 * time.Second)
		if diff := cmp.Diff([]string{"retry"}, payloads(receive(t, b, 10))); diff != "" {
			t.Errorf("after the delay (-want +got):\n%s", diff)
		}
		if _, err := b.Acquire(t.Context(), acquireReq("c", 0, 0, t1)); !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("Acquire of the failed attempt = %v, want ErrDuplicate", err)
		}
		if _, err := b.Acquire(t.Context(), acquireReq("c", 0, 1, t1)); err != nil {
			t.Errorf("Acquire of the retry: %v", err)
		}
	})

	t.Run("fence lost writes nothing", func(t *testing.T) {
		b, clock, d := fresh(t)
		run(t, b, acquire("c", 0, 0, T0.Add(Lease))) // taken over: fence 2
		before := mustGet(t, b, "c")
		beforeHist := mustHistory(t, b, "c")
		c := commitReq("c", 0, 0, 1, engine.OutcomeNext, t1)
		_, err := b.CommitStep(t.Context(), c, &engine.OutMessage{Key: "c", Payload: []byte("next")}, d.Receipt)
		if !errors.Is(err, engine.ErrFenceLost) {
			t.Fatalf("stale CommitStep = %v, want ErrFenceLost", err)
		}
		if diff := cmp.Diff(before, mustGet(t, b, "c"), equate); diff != "" {
			t.Errorf("refused CommitStep changed the execution (-before +after):\n%s", diff)
		}
		if diff := cmp.Diff(beforeHist, mustHistory(t, b, "c"), equate); diff != "" {
			t.Errorf("refused CommitStep changed the history (-before +after):\n%s", diff)
		}
		if err := b.Ack(t.Context(), d.Receipt); err != nil {
			t.Errorf("Ack after the refused CommitStep: %v (it must not have acknowledged the delivery)", err)
		}
		clock.Advance(Visibility + time.Second)
		if ds := receive(t, b, 10); len(ds) != 0 {
			t.Errorf("refused CommitStep sent %q, want nothing", payloads(ds))
		}
	})

	t.Run("stale ack still commits", func(t *testing.T) {
		b, clock, d := fresh(t)
		clock.Advance(Visibility + time.Second)
		again := receive(t, b, 1)
		if len(again) != 1 {
			t.Fatalf("no redelivery after the visibility timeout")
		}
		c := commitReq("c", 0, 0, 1, engine.OutcomeDone, t1)
		if _, err := b.CommitStep(t.Context(), c, nil, d.Receipt); err != nil {
			t.Fatalf("CommitStep with a receipt that is no longer current: %v", err)
		}
		if got := mustGet(t, b, "c"); got.Status != engine.StatusDone || got.DoneStep != 0 {
			t.Errorf("status %s, done step %d; want done, 0", got.Status, got.DoneStep)
		}
		if err := b.Ack(t.Context(), again[0].Receipt); err != nil {
			t.Errorf("Ack of the current delivery: %v (the stale receipt must not delete it)", err)
		}
	})

	t.Run("nothing to send or ack", func(t *testing.T) {
		b, _, d := fresh(t)
		c := commitReq("c", 0, 0, 1, engine.OutcomeWait, t1)
		r, err := b.CommitStep(t.Context(), c, nil, "")
		if err != nil || r != "" {
			t.Fatalf("CommitStep = %q, %v; want no receipt", r, err)
		}
		got := mustGet(t, b, "c")
		if got.Status != engine.StatusWaiting || got.SendReceipt != c.SendReceipt {
			t.Errorf("status %s, send receipt %q; want waiting, %q (the commit's)", got.Status, got.SendReceipt, c.SendReceipt)
		}
		if err := b.Ack(t.Context(), d.Receipt); err != nil {
			t.Errorf("Ack of the delivery: %v (CommitStep without a receipt acknowledged it)", err)
		}
	})

	t.Run("malformed receipt writes nothing", func(t *testing.T) {
		b, _, _ := fresh(t)
		before := mustGet(t, b, "c")
		c := commitReq("c", 0, 0, 1, engine.OutcomeNext, t1)
		if _, err := b.CommitStep(t.Context(), c, &engine.OutMessage{Key: "c", Payload: []byte("next")}, "bogus"); err == nil {
			t.Fatalf("CommitStep with a malformed receipt succeeded")
		}
		if diff := cmp.Diff(before, mustGet(t, b, "c"), equate); diff != "" {
			t.Errorf("refused CommitStep changed the execution (-before +after):\n%s", diff)
		}
	})
}

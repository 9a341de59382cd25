package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// waitingAt leaves execution "c" waiting with step done: parked by a wait
// commit of that step.
func waitingAt(step int) []op {
	ops := []op{create("c", T0)}
	for i := range step {
		ops = append(ops, acquire("c", i, 0, T0), commit("c", i, 0, engine.OutcomeNext, T0))
	}
	return append(ops, acquire("c", step, 0, T0), commit("c", step, 0, engine.OutcomeWait, T0))
}

// claim is Engine.Send's claim of "c" waiting at step.
func claim(step int, at time.Time) engine.StatusSwap {
	return engine.StatusSwap{CorrelationID: "c", Step: step, From: engine.StatusWaiting, To: engine.StatusRunning,
		Checkpoint: []byte("event"), Now: at}
}

// testSwapStatus pins the conditional status change that lets exactly one of
// concurrent senders claim a waiting execution.
func testSwapStatus(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Second)
	t.Run("claim a waiting execution", func(t *testing.T) {
		s := newStore(t)
		run(t, s, waitingAt(1)...)
		want := mustGet(t, s, "c")
		if err := s.SwapStatus(t.Context(), claim(1, t1)); err != nil {
			t.Fatalf("SwapStatus: %v", err)
		}
		want.Status, want.Checkpoint, want.UpdatedAt = engine.StatusRunning, []byte("event"), t1
		if diff := cmp.Diff(want, mustGet(t, s, "c"), equate); diff != "" {
			t.Errorf("after the claim (-want +got):\n%s", diff)
		}
		if _, err := s.Acquire(t.Context(), acquireReq("c", 2, 0, t1)); err != nil {
			t.Errorf("Acquire of the claimed event's step: %v", err)
		}
	})
	t.Run("give a claim back", func(t *testing.T) {
		s := newStore(t)
		run(t, s, waitingAt(1)...)
		want := mustGet(t, s, "c")
		if err := s.SwapStatus(t.Context(), claim(1, t1)); err != nil {
			t.Fatalf("SwapStatus: %v", err)
		}
		back := engine.StatusSwap{CorrelationID: "c", Step: 1, From: engine.StatusRunning, To: engine.StatusWaiting,
			Checkpoint: want.Checkpoint, Now: t1}
		if err := s.SwapStatus(t.Context(), back); err != nil {
			t.Fatalf("SwapStatus back: %v", err)
		}
		want.UpdatedAt = t1
		if diff := cmp.Diff(want, mustGet(t, s, "c"), equate); diff != "" {
			t.Errorf("after giving the claim back (-want +got):\n%s", diff)
		}
	})
	for _, tc := range []struct {
		name       string
		setup      []op
		swap       engine.StatusSwap
		wantStatus engine.Status
	}{
		{"running", []op{create("c", T0)}, claim(-1, t1), engine.StatusRunning},
		{"stopped", append(waitingAt(1), setStatus("c", engine.StatusStopped, T0)), claim(1, t1), engine.StatusStopped},
		{"done", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeDone, T0)}, claim(0, t1), engine.StatusDone},
		{"already claimed", append(waitingAt(1), func(t *testing.T, s engine.Store) {
			if err := s.SwapStatus(t.Context(), claim(1, T0)); err != nil {
				t.Fatalf("first claim: %v", err)
			}
		}), claim(1, t1), engine.StatusRunning},
		{"waiting at a later step", waitingAt(2), claim(1, t1), engine.StatusWaiting},
		{"a later step was leased", append(waitingAt(1), acquire("c", 2, 0, T0)), claim(1, t1), engine.StatusRunning},
		{"give back after a stop", append(waitingAt(1), func(t *testing.T, s engine.Store) {
			if err := s.SwapStatus(t.Context(), claim(1, T0)); err != nil {
				t.Fatalf("claim: %v", err)
			}
		}, setStatus("c", engine.StatusStopped, T0)), engine.StatusSwap{CorrelationID: "c", Step: 1,
			From: engine.StatusRunning, To: engine.StatusWaiting, Now: t1}, engine.StatusStopped},
	} {
		t.Run("refused when "+tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			before := mustGet(t, s, "c")
			err := s.SwapStatus(t.Context(), tc.swap)
			var se *engine.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("SwapStatus = %v, want a *StatusError", err)
			}
			if se.Status != tc.wantStatus || se.DoneStep != before.DoneStep || se.CorrelationID != "c" {
				t.Errorf("StatusError %+v, want status %s and done step %d", se, tc.wantStatus, before.DoneStep)
			}
			if diff := cmp.Diff(before, mustGet(t, s, "c"), equate); diff != "" {
				t.Errorf("refused SwapStatus changed the execution (-before +after):\n%s", diff)
			}
		})
	}
	t.Run("unknown execution", func(t *testing.T) {
		s := newStore(t)
		if err := s.SwapStatus(t.Context(), claim(0, t1)); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("SwapStatus(missing) = %v, want ErrNotFound", err)
		}
	})
	t.Run("concurrent claims: one wins", func(t *testing.T) {
		s := newStore(t)
		run(t, s, waitingAt(1)...)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = s.SwapStatus(t.Context(), claim(1, t1)) })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			var se *engine.StatusError
			switch {
			case err == nil:
				won++
			case !errors.As(err, &se) || se.Status != engine.StatusRunning:
				t.Errorf("losing claim = %v, want a *StatusError with status running", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent claims won, want 1", won, n)
		}
	})
}

// testSwapStatusSend pins SwapSender: the claim and its message in one write.
func testSwapStatusSend(t *testing.T, newBackend func(t *testing.T, clock func() time.Time) StepBackend) {
	t1 := T0.Add(time.Second)
	t.Run("claim sends", func(t *testing.T) {
		b := newBackend(t, NewClock(T0).Now)
		run(t, b, waitingAt(1)...)
		r, err := b.SwapStatusSend(t.Context(), claim(1, t1), engine.OutMessage{Key: "c", Payload: []byte("event")})
		if err != nil || r == "" {
			t.Fatalf("SwapStatusSend = %q, %v; want a receipt", r, err)
		}
		if got := mustGet(t, b, "c"); got.Status != engine.StatusRunning || string(got.Checkpoint) != "event" {
			t.Errorf("after SwapStatusSend: status %s, checkpoint %q; want running, event", got.Status, got.Checkpoint)
		}
		if ds := receive(t, b, 10); len(ds) != 1 || string(ds[0].Payload) != "event" {
			t.Errorf("received %v, want the event's message", ds)
		}
	})
	t.Run("refused claim sends nothing", func(t *testing.T) {
		b := newBackend(t, NewClock(T0).Now)
		run(t, b, waitingAt(1)...)
		_, err := b.SwapStatusSend(t.Context(), claim(0, t1), engine.OutMessage{Key: "c", Payload: []byte("event")})
		var se *engine.StatusError
		if !errors.As(err, &se) {
			t.Fatalf("SwapStatusSend at a stale step = %v, want a *StatusError", err)
		}
		if ds := receive(t, b, 10); len(ds) != 0 {
			t.Errorf("refused claim sent %d messages", len(ds))
		}
	})
	t.Run("concurrent claims: one message", func(t *testing.T) {
		b := newBackend(t, NewClock(T0).Now)
		run(t, b, waitingAt(1)...)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = b.SwapStatusSend(t.Context(), claim(1, t1), engine.OutMessage{Key: "c", Payload: []byte("event")})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			}
		}
		if ds := receive(t, b, 2*n); won != 1 || len(ds) != 1 {
			t.Errorf("%d claims won and %d messages sent, want 1 and 1", won, len(ds))
		}
	})
}

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// RunProtocol runs the conformance suite of the protocol's hardening seams
// (docs/design.md, "Leases and heartbeats", "Never stranded"): lease renewal
// and give-back, takeover counts, due times and Stranded, Reopen and the
// restart time. Every store runs it besides RunStore; those that are also the
// queue run the queue-aware parts in RunStepCommitter.
func RunProtocol(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t.Run("Renew", func(t *testing.T) { testRenew(t, newStore) })
	t.Run("Takeovers", func(t *testing.T) { testTakeovers(t, newStore) })
	t.Run("DueAt", func(t *testing.T) { testDueAt(t, newStore) })
	t.Run("Stranded", func(t *testing.T) { testStranded(t, newStore) })
	t.Run("Reopen", func(t *testing.T) { testReopen(t, newStore) })
}

// renew is a renewal of id's lease with fence at now until expires.
func renew(id string, fence int64, now, expires time.Time) engine.LeaseRenewal {
	return engine.LeaseRenewal{CorrelationID: id, Fence: fence, Now: now, Expires: expires}
}

func testRenew(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Minute)
	t.Run("extends the lease", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0))
		if err := s.Renew(t.Context(), renew("c", 1, t1, t1.Add(Lease))); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if got := mustGet(t, s, "c").LeaseExpires; !got.Equal(t1.Add(Lease)) {
			t.Errorf("lease expires at %v, want %v", got, t1.Add(Lease))
		}
		// Renewed past the old expiry, the lease is still held there.
		if _, err := s.Acquire(t.Context(), acquireReq("c", 0, 0, T0.Add(Lease+time.Second))); !errors.Is(err, engine.ErrLeaseHeld) {
			t.Errorf("Acquire after the old expiry = %v, want ErrLeaseHeld", err)
		}
		if err := s.Commit(t.Context(), commitReq("c", 0, 0, 1, engine.OutcomeNext, T0.Add(Lease+time.Second))); err != nil {
			t.Errorf("Commit with the renewed lease: %v", err)
		}
	})
	t.Run("an expired lease nobody took over", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0))
		late := T0.Add(Lease + time.Second)
		if err := s.Renew(t.Context(), renew("c", 1, late, late.Add(Lease))); err != nil {
			t.Fatalf("Renew: %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		setup []op
		fence int64
	}{
		{"wrong fence", []op{create("c", T0), acquire("c", 0, 0, T0)}, 2},
		{"taken over", []op{create("c", T0), acquire("c", 0, 0, T0), acquire("c", 0, 0, T0.Add(Lease))}, 1},
		{"committed", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0)}, 1},
		{"no lease", []op{create("c", T0)}, 0},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			before := mustGet(t, s, "c")
			if err := s.Renew(t.Context(), renew("c", tc.fence, t1, t1.Add(Lease))); !errors.Is(err, engine.ErrFenceLost) {
				t.Fatalf("Renew = %v, want ErrFenceLost", err)
			}
			if diff := cmp.Diff(before, mustGet(t, s, "c"), equate); diff != "" {
				t.Errorf("refused Renew changed the execution (-before +after):\n%s", diff)
			}
		})
	}
	if err := newStore(t).Renew(t.Context(), renew("missing", 1, t1, t1.Add(Lease))); !errors.Is(err, engine.ErrFenceLost) {
		t.Errorf("Renew(missing) = %v, want ErrFenceLost", err)
	}
	t.Run("give back", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0))
		if err := s.Renew(t.Context(), renew("c", 1, t1, time.Time{})); err != nil {
			t.Fatalf("Renew(give back): %v", err)
		}
		if x := mustGet(t, s, "c"); !x.LeaseExpires.IsZero() {
			t.Errorf("lease expires at %v after the give-back, want free", x.LeaseExpires)
		}
		if err := s.Commit(t.Context(), commitReq("c", 0, 0, 1, engine.OutcomeNext, t1)); !errors.Is(err, engine.ErrFenceLost) {
			t.Errorf("Commit after giving the lease back = %v, want ErrFenceLost", err)
		}
		// The redelivery runs at once, and a given-back lease is no takeover.
		l, err := s.Acquire(t.Context(), acquireReq("c", 0, 0, t1))
		if err != nil || l.Fence != 2 || l.Takeovers != 0 {
			t.Errorf("Acquire after the give-back = %+v, %v; want fence 2, no takeover", l, err)
		}
	})
}

func testTakeovers(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	run(t, s, create("c", T0))
	at := T0
	grant := func(step, retries int) engine.Lease {
		t.Helper()
		l, err := s.Acquire(t.Context(), acquireReq("c", step, retries, at))
		if err != nil {
			t.Fatalf("Acquire(%d, %d) at %v: %v", step, retries, at, err)
		}
		if got := mustGet(t, s, "c").Takeovers; got != l.Takeovers {
			t.Errorf("execution's takeovers = %d, the lease's %d", got, l.Takeovers)
		}
		return l
	}
	if l := grant(0, 0); l.Takeovers != 0 {
		t.Errorf("first grant: %d takeovers, want 0", l.Takeovers)
	}
	for want := 1; want <= 3; want++ {
		at = at.Add(Lease) // the holder let it expire
		if l := grant(0, 0); l.Takeovers != want {
			t.Errorf("takeover %d: lease says %d takeovers", want, l.Takeovers)
		}
	}
	// A retry committed in between does not reset the step's count.
	commit("c", 0, 0, engine.OutcomeRetry, at)(t, s)
	if l := grant(0, 1); l.Takeovers != 3 {
		t.Errorf("next attempt of the same step: %d takeovers, want 3 (kept)", l.Takeovers)
	}
	at = at.Add(Lease)
	if l := grant(0, 1); l.Takeovers != 4 {
		t.Errorf("takeover of the next attempt: %d takeovers, want 4", l.Takeovers)
	}
	commit("c", 0, 1, engine.OutcomeNext, at)(t, s)
	if l := grant(1, 0); l.Takeovers != 0 {
		t.Errorf("next step: %d takeovers, want 0", l.Takeovers)
	}
}

func testDueAt(t *testing.T, newStore func(t *testing.T) engine.Store) {
	due := T0.Add(time.Hour)
	s := newStore(t)
	x := engine.Execution{CorrelationID: "c", Machine: machine, Checkpoint: []byte("start"), DueAt: due, CreatedAt: T0, UpdatedAt: T0}
	if err := s.Create(t.Context(), x); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "c").DueAt; !got.Equal(due) {
		t.Errorf("after Create: due at %v, want %v", got, due)
	}
	acquire("c", 0, 0, T0)(t, s)
	c := commitReq("c", 0, 0, 1, engine.OutcomeNext, T0)
	c.DueAt = due.Add(time.Minute)
	if err := s.Commit(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "c").DueAt; !got.Equal(c.DueAt) {
		t.Errorf("after Commit: due at %v, want %v", got, c.DueAt)
	}
	acquire("c", 1, 0, T0)(t, s)
	commit("c", 1, 0, engine.OutcomeWait, T0)(t, s)
	if got := mustGet(t, s, "c").DueAt; !got.IsZero() {
		t.Errorf("after a wait commit: due at %v, want none", got)
	}
	sw := claim(1, T0)
	sw.DueAt = due
	if err := s.SwapStatus(t.Context(), sw); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "c").DueAt; !got.Equal(due) {
		t.Errorf("after SwapStatus: due at %v, want %v", got, due)
	}
}

// strandedIDs calls Stranded and returns the ids, failing on an error.
func strandedIDs(t *testing.T, s engine.Store, now time.Time, grace time.Duration, limit int) []string {
	t.Helper()
	xs, err := s.Stranded(t.Context(), engine.StrandedQuery{Now: now, Grace: grace, Limit: limit})
	if err != nil {
		t.Fatalf("Stranded: %v", err)
	}
	ids := []string{}
	for _, x := range xs {
		ids = append(ids, x.CorrelationID)
		if !x.DueAt.Equal(now) {
			t.Errorf("Stranded returned %s due at %v, want moved to %v", x.CorrelationID, x.DueAt, now)
		}
		if len(x.Checkpoint) == 0 {
			t.Errorf("Stranded returned %s without its checkpoint", x.CorrelationID)
		}
	}
	return ids
}

// createDue creates id due at due.
func createDue(id string, due time.Time) op {
	return func(t *testing.T, s engine.Store) {
		t.Helper()
		x := engine.Execution{CorrelationID: id, Machine: machine, Checkpoint: []byte("start " + id), DueAt: due, CreatedAt: T0, UpdatedAt: T0}
		if err := s.Create(t.Context(), x); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
}

func testStranded(t *testing.T, newStore func(t *testing.T) engine.Store) {
	const grace = time.Minute
	due := T0.Add(time.Hour) // a delayed start message
	t.Run("never before due + grace", func(t *testing.T) {
		s := newStore(t)
		run(t, s, createDue("c", due))
		for _, at := range []time.Time{T0, due, due.Add(grace - time.Nanosecond)} {
			if ids := strandedIDs(t, s, at, grace, 10); len(ids) != 0 {
				t.Errorf("Stranded at %v = %v, want none (due %v, grace %v)", at, ids, due, grace)
			}
		}
		at := due.Add(grace)
		if diff := cmp.Diff([]string{"c"}, strandedIDs(t, s, at, grace, 10)); diff != "" {
			t.Errorf("Stranded at due + grace (-want +got):\n%s", diff)
		}
		if ids := strandedIDs(t, s, at.Add(grace-time.Second), grace, 10); len(ids) != 0 {
			t.Errorf("Stranded again within a grace = %v, want none (its due time moved)", ids)
		}
		if diff := cmp.Diff([]string{"c"}, strandedIDs(t, s, at.Add(grace), grace, 10)); diff != "" {
			t.Errorf("Stranded another grace later (-want +got):\n%s", diff)
		}
		if got := mustGet(t, s, "c").DueAt; !got.Equal(at.Add(grace)) {
			t.Errorf("stored due time %v, want %v", got, at.Add(grace))
		}
	})
	late := due.Add(time.Hour)
	for _, tc := range []struct {
		name  string
		setup []op
		want  []string
	}{
		{"a live lease is in flight", []op{createDue("c", due), acquire("c", 0, 0, late.Add(-time.Second))}, []string{}},
		{"an expired lease is not", []op{createDue("c", due), acquire("c", 0, 0, late.Add(-Lease))}, []string{"c"}},
		{"waiting", []op{createDue("c", due), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeWait, T0)}, []string{}},
		{"done", []op{createDue("c", due), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeDone, T0)}, []string{}},
		{"stopped", []op{createDue("c", due), setStatus("c", engine.StatusStopped, T0)}, []string{}},
		{"nothing due (created by Acquire)", []op{acquire("c", 0, 0, T0)}, []string{}},
		{"oldest due first, limit", []op{createDue("b", due.Add(time.Second)), createDue("a", due.Add(2*time.Second)),
			createDue("c", due)}, []string{"c", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			if diff := cmp.Diff(tc.want, strandedIDs(t, s, late, grace, 2)); diff != "" {
				t.Errorf("Stranded (-want +got):\n%s", diff)
			}
		})
	}
}

// reopenOf is a resume of "c" from from to to at now.
func reopenOf(from, to engine.Status, now time.Time) engine.Reopen {
	r := engine.Reopen{CorrelationID: "c", From: from, To: to, Now: now}
	if to == engine.StatusRunning {
		r.Checkpoint, r.DueAt = []byte("resumed"), now
	}
	return r
}

func testReopen(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Minute)
	t2 := t1.Add(time.Minute)
	t.Run("failed", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0),
			acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeRetry, T0),
			acquire("c", 1, 1, T0), commit("c", 1, 1, engine.OutcomeFailed, T0))
		if err := s.Reopen(t.Context(), reopenOf(engine.StatusFailed, engine.StatusRunning, t1)); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		x := mustGet(t, s, "c")
		if x.Status != engine.StatusRunning || x.DoneStep != 0 || string(x.Checkpoint) != "resumed" || !x.DueAt.Equal(t1) || !x.UpdatedAt.Equal(t1) {
			t.Errorf("after Reopen: %+v; want running at done step 0, checkpoint resumed, due and updated at %v", x, t1)
		}
		// The resumed message (restarted at t1) runs from attempt 0; the
		// chain it replaced (restarted before) is refused.
		old := acquireReq("c", 1, 0, t1)
		if _, err := s.Acquire(t.Context(), old); !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("Acquire of a message restarted before the resume = %v, want ErrDuplicate", err)
		}
		q := acquireReq("c", 1, 0, t1)
		q.Restarted = t1
		if _, err := s.Acquire(t.Context(), q); err != nil {
			t.Errorf("Acquire of the resumed message: %v", err)
		}
	})
	t.Run("stopped in retry backoff: the stale retry is refused", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeRetry, T0),
			setStatus("c", engine.StatusStopped, T0))
		if err := s.Reopen(t.Context(), reopenOf(engine.StatusStopped, engine.StatusRunning, t1)); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		stale := acquireReq("c", 0, 1, t1) // the retry scheduled before the stop
		if _, err := s.Acquire(t.Context(), stale); !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("Acquire of the pre-stop retry = %v, want ErrDuplicate", err)
		}
		for r := range 3 { // the resumed chain gets every attempt
			q := acquireReq("c", 0, r, t1)
			q.Restarted = t1
			if _, err := s.Acquire(t.Context(), q); err != nil {
				t.Fatalf("Acquire of resumed attempt %d: %v", r, err)
			}
			commit("c", 0, r, engine.OutcomeRetry, t1)(t, s)
		}
		// A later resume refuses the chain of the earlier one.
		setStatus("c", engine.StatusStopped, t2)(t, s)
		if err := s.Reopen(t.Context(), reopenOf(engine.StatusStopped, engine.StatusRunning, t2)); err != nil {
			t.Fatalf("second Reopen: %v", err)
		}
		q := acquireReq("c", 0, 3, t2)
		q.Restarted = t1
		if _, err := s.Acquire(t.Context(), q); !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("Acquire of the first resume's chain after the second = %v, want ErrDuplicate", err)
		}
	})
	t.Run("stopped while parked goes back to waiting", func(t *testing.T) {
		s := newStore(t)
		run(t, s, waitingAt(0)...)
		setStatus("c", engine.StatusStopped, T0)(t, s)
		if err := s.Reopen(t.Context(), reopenOf(engine.StatusStopped, engine.StatusWaiting, t1)); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		if x := mustGet(t, s, "c"); x.Status != engine.StatusWaiting || string(x.Checkpoint) != "msg 1/0" {
			t.Errorf("after Reopen: status %s, checkpoint %q; want waiting with the parked checkpoint", x.Status, x.Checkpoint)
		}
		// Its parked checkpoint (not restarted) still takes the next event.
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 0, t1)); err != nil {
			t.Errorf("Acquire of the event's step: %v", err)
		}
	})
	t.Run("takeovers are forgotten", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), acquire("c", 0, 0, T0.Add(Lease)),
			commit("c", 0, 0, engine.OutcomeFailed, T0.Add(Lease)))
		if err := s.Reopen(t.Context(), reopenOf(engine.StatusFailed, engine.StatusRunning, t1)); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, s, "c").Takeovers; got != 0 {
			t.Errorf("takeovers after Reopen = %d, want 0", got)
		}
	})
	for _, tc := range []struct {
		name       string
		setup      []op
		r          engine.Reopen
		wantStatus engine.Status
	}{
		{"running", []op{create("c", T0)}, reopenOf(engine.StatusFailed, engine.StatusRunning, t1), engine.StatusRunning},
		{"not the status seen", []op{create("c", T0), setStatus("c", engine.StatusStopped, T0)},
			reopenOf(engine.StatusFailed, engine.StatusRunning, t1), engine.StatusStopped},
		{"done", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeDone, T0)},
			reopenOf(engine.StatusDone, engine.StatusRunning, t1), engine.StatusDone},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			before := mustGet(t, s, "c")
			err := s.Reopen(t.Context(), tc.r)
			var se *engine.StatusError
			if !errors.As(err, &se) || se.Status != tc.wantStatus {
				t.Fatalf("Reopen = %v, want a *StatusError finding %s", err, tc.wantStatus)
			}
			if diff := cmp.Diff(before, mustGet(t, s, "c"), equate); diff != "" {
				t.Errorf("refused Reopen changed the execution (-before +after):\n%s", diff)
			}
		})
	}
	if err := newStore(t).Reopen(t.Context(), reopenOf(engine.StatusFailed, engine.StatusRunning, t1)); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Reopen(missing) = %v, want ErrNotFound", err)
	}
}

// testQueueAware checks what a store that is also the queue adds:
// CreateSend, ReopenSend, Pending, and Stranded leaving out executions that
// have a message queued.
func testQueueAware(t *testing.T, newBackend func(t *testing.T, clock func() time.Time) StepBackend) {
	t1 := T0.Add(time.Minute)
	out := engine.OutMessage{Key: "c", Payload: []byte("start")}
	t.Run("CreateSend", func(t *testing.T) {
		c := NewClock(T0)
		b := newBackend(t, c.Now)
		x := engine.Execution{CorrelationID: "c", Machine: machine, Checkpoint: []byte("start"), DueAt: T0, CreatedAt: T0, UpdatedAt: T0}
		if r, err := b.CreateSend(t.Context(), x, out); err != nil || r == "" {
			t.Fatalf("CreateSend = %q, %v; want a receipt", r, err)
		}
		if n, err := b.Pending(t.Context(), "c"); err != nil || n != 1 {
			t.Errorf("Pending = %d, %v; want 1", n, err)
		}
		if _, err := b.CreateSend(t.Context(), x, out); !errors.Is(err, engine.ErrExists) {
			t.Errorf("CreateSend again = %v, want ErrExists", err)
		}
		if diff := cmp.Diff([]string{"start"}, payloads(receive(t, b, 10))); diff != "" {
			t.Errorf("queued (-want +got):\n%s", diff)
		}
	})
	t.Run("ReopenSend", func(t *testing.T) {
		c := NewClock(T0)
		b := newBackend(t, c.Now)
		run(t, b, create("c", T0), setStatus("c", engine.StatusStopped, T0))
		if _, err := b.ReopenSend(t.Context(), reopenOf(engine.StatusFailed, engine.StatusRunning, t1), out); err == nil {
			t.Error("ReopenSend from the wrong status succeeded")
		}
		if n, _ := b.Pending(t.Context(), "c"); n != 0 {
			t.Errorf("a refused ReopenSend queued %d messages", n)
		}
		if _, err := b.ReopenSend(t.Context(), reopenOf(engine.StatusStopped, engine.StatusRunning, t1), out); err != nil {
			t.Fatalf("ReopenSend: %v", err)
		}
		if x := mustGet(t, b, "c"); x.Status != engine.StatusRunning || string(x.Checkpoint) != "resumed" {
			t.Errorf("after ReopenSend: status %s, checkpoint %q", x.Status, x.Checkpoint)
		}
		if n, _ := b.Pending(t.Context(), "c"); n != 1 {
			t.Errorf("Pending after ReopenSend = %d, want 1", n)
		}
	})
	t.Run("Stranded leaves out what is queued", func(t *testing.T) {
		c := NewClock(T0)
		b := newBackend(t, c.Now)
		run(t, b, createDue("c", T0))
		if _, err := b.Send(t.Context(), engine.OutMessage{Key: "c", Payload: []byte("start")}); err != nil {
			t.Fatal(err)
		}
		late := T0.Add(time.Hour)
		if ids := strandedIDs(t, b, late, time.Minute, 10); len(ids) != 0 {
			t.Errorf("Stranded with its message queued = %v, want none", ids)
		}
		ds := receive(t, b, 1) // in flight: still queued
		if ids := strandedIDs(t, b, late, time.Minute, 10); len(ids) != 0 {
			t.Errorf("Stranded with its message being delivered = %v, want none", ids)
		}
		if err := b.Ack(t.Context(), ds[0].Receipt); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"c"}, strandedIDs(t, b, late, time.Minute, 10)); diff != "" {
			t.Errorf("Stranded once nothing is queued (-want +got):\n%s", diff)
		}
	})
}

package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lfsm/lfsm/internal/engine"
)

// T0 is the time the suites start at.
var T0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// Lease is the lease timeout the store suite uses.
const Lease = 5 * time.Minute

const machine = "Example"

// equate compares executions and history as stored: nil and empty slices are
// the same, times by instant.
var equate = cmpopts.EquateEmpty()

// acquireReq asks for step/retries of id at now.
func acquireReq(id string, step, retries int, now time.Time) engine.AcquireRequest {
	return engine.AcquireRequest{CorrelationID: id, Machine: machine, Step: step, Retries: retries, Now: now, Expires: now.Add(Lease)}
}

// commitReq ends step/retries of id with outcome at now.
func commitReq(id string, step, retries int, fence int64, o engine.Outcome, now time.Time) engine.Commit {
	var s engine.Status
	switch o {
	case engine.OutcomeNext, engine.OutcomeRetry:
		s = engine.StatusRunning
	case engine.OutcomeWait:
		s = engine.StatusWaiting
	case engine.OutcomeDone:
		s = engine.StatusDone
	case engine.OutcomeFailed:
		s = engine.StatusFailed
	}
	var errText string
	if o == engine.OutcomeRetry || o == engine.OutcomeFailed {
		errText = fmt.Sprintf("attempt %d of step %d failed", retries, step)
	}
	return engine.Commit{
		CorrelationID: id, Machine: machine, Step: step, Retries: retries, Fence: fence,
		Outcome: o, Status: s, State: fmt.Sprintf("S%d", step+1), Event: "go",
		Checkpoint: fmt.Appendf(nil, "msg %d/%d", step+1, retries), SendReceipt: fmt.Sprintf("r%d", step+1),
		Error: errText,
		History: engine.HistoryEntry{
			Step: step, Retries: retries, Fence: fence, From: fmt.Sprintf("S%d", step), Event: "go",
			To: fmt.Sprintf("S%d", step+1), Actions: []string{"a.Enter", "a.Do"}, Outcome: o, Error: errText,
			Started: now.Add(-time.Second), Duration: 1500 * time.Millisecond,
		},
		Now: now,
	}
}

// op is one setup step; it fails the test if the store refuses it.
type op func(t *testing.T, s engine.Store)

func create(id string, at time.Time) op {
	return func(t *testing.T, s engine.Store) {
		t.Helper()
		e := engine.Execution{CorrelationID: id, Machine: machine, State: "S0", Checkpoint: []byte("start"), CreatedAt: at, UpdatedAt: at}
		if err := s.Create(t.Context(), e); err != nil {
			t.Fatalf("Create(%s): %v", id, err)
		}
	}
}

func acquire(id string, step, retries int, at time.Time) op {
	return func(t *testing.T, s engine.Store) {
		t.Helper()
		if _, err := s.Acquire(t.Context(), acquireReq(id, step, retries, at)); err != nil {
			t.Fatalf("Acquire(%s, %d, %d): %v", id, step, retries, err)
		}
	}
}

// commit commits with the execution's current fence.
func commit(id string, step, retries int, o engine.Outcome, at time.Time) op {
	return func(t *testing.T, s engine.Store) {
		t.Helper()
		e, err := s.Get(t.Context(), id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if err := s.Commit(t.Context(), commitReq(id, step, retries, e.Fence, o, at)); err != nil {
			t.Fatalf("Commit(%s, %d, %d, %s): %v", id, step, retries, o, err)
		}
	}
}

func setStatus(id string, st engine.Status, at time.Time) op {
	return func(t *testing.T, s engine.Store) {
		t.Helper()
		if err := s.SetStatus(t.Context(), id, st, "operator", at); err != nil {
			t.Fatalf("SetStatus(%s, %s): %v", id, st, err)
		}
	}
}

func run(t *testing.T, s engine.Store, ops ...op) {
	t.Helper()
	for _, o := range ops {
		o(t, s)
	}
}

func mustGet(t *testing.T, s engine.Store, id string) engine.Execution {
	t.Helper()
	e, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return e
}

func mustHistory(t *testing.T, s engine.Store, id string) []engine.HistoryEntry {
	t.Helper()
	h, err := s.History(t.Context(), id)
	if err != nil {
		t.Fatalf("History(%s): %v", id, err)
	}
	return h
}

// RunStore runs the Store conformance suite; newStore returns an empty store
// (and registers its clean-up on t).
func RunStore(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t.Run("Create", func(t *testing.T) { testCreate(t, newStore) })
	t.Run("AcquireRule", func(t *testing.T) { testAcquireRule(t, newStore) })
	t.Run("AcquireConcurrent", func(t *testing.T) { testAcquireConcurrent(t, newStore) })
	t.Run("Commit", func(t *testing.T) { testCommit(t, newStore) })
	t.Run("CommitRefused", func(t *testing.T) { testCommitRefused(t, newStore) })
	t.Run("Reads", func(t *testing.T) { testReads(t, newStore) })
	t.Run("List", func(t *testing.T) { testList(t, newStore) })
	t.Run("ListWhilePaging", func(t *testing.T) { testListWhilePaging(t, newStore) })
	t.Run("SetStatus", func(t *testing.T) { testSetStatus(t, newStore) })
	t.Run("HistorySince", func(t *testing.T) { testHistorySince(t, newStore) })
	t.Run("Operator", func(t *testing.T) { testOperator(t, newStore) })
	t.Run("SwapStatus", func(t *testing.T) { testSwapStatus(t, newStore) })
}

func testCreate(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t.Run("new", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0))
		want := engine.Execution{
			CorrelationID: "c", Machine: machine, Status: engine.StatusRunning, State: "S0",
			DoneStep: -1, LeaseStep: -1, Checkpoint: []byte("start"), CreatedAt: T0, UpdatedAt: T0,
		}
		if diff := cmp.Diff(want, mustGet(t, s, "c"), equate); diff != "" {
			t.Errorf("Get after Create (-want +got):\n%s", diff)
		}
		if h := mustHistory(t, s, "c"); len(h) != 0 {
			t.Errorf("History after Create = %v, want empty", h)
		}
	})
	// A correlation id names one execution forever: a new run under a
	// finished id would reset the done marker, and a late duplicate of the
	// old run's messages would then be accepted by the new one.
	for _, tc := range []struct {
		name  string
		setup []op
	}{
		{"running", []op{create("c", T0)}},
		{"leased", []op{create("c", T0), acquire("c", 0, 0, T0)}},
		{"waiting", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeWait, T0)}},
		{"done", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeDone, T0)}},
		{"failed", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeFailed, T0)}},
		{"stopped", []op{create("c", T0), setStatus("c", engine.StatusStopped, T0)}},
		{"created on the fly by Acquire", []op{acquire("c", 2, 0, T0)}},
		{"created on the fly and done", []op{acquire("c", 2, 0, T0), commit("c", 2, 0, engine.OutcomeDone, T0)}},
	} {
		t.Run("again after "+tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			before := mustGet(t, s, "c")
			beforeHist := mustHistory(t, s, "c")
			at := T0.Add(time.Hour)
			err := s.Create(t.Context(), engine.Execution{CorrelationID: "c", Machine: machine, State: "S0", CreatedAt: at, UpdatedAt: at})
			if !errors.Is(err, engine.ErrExists) {
				t.Fatalf("Create again = %v, want ErrExists", err)
			}
			if diff := cmp.Diff(before, mustGet(t, s, "c"), equate); diff != "" {
				t.Errorf("refused Create changed the execution (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforeHist, mustHistory(t, s, "c"), equate); diff != "" {
				t.Errorf("refused Create changed the history (-before +after):\n%s", diff)
			}
			// The old run's messages stay duplicates.
			if before.DoneStep >= 0 {
				if _, err := s.Acquire(t.Context(), acquireReq("c", before.DoneStep, 0, at)); !errors.Is(err, engine.ErrDuplicate) {
					t.Errorf("Acquire of the old run's step %d after a refused Create = %v, want ErrDuplicate", before.DoneStep, err)
				}
			}
		})
	}
}

func testAcquireRule(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Minute)
	for _, tc := range []struct {
		name      string
		setup     []op
		req       engine.AcquireRequest
		want      error
		wantFence int64
	}{
		{
			name: "unknown execution is created on the fly",
			req:  acquireReq("c", 3, 1, T0), wantFence: 1,
		},
		{
			name:  "start message",
			setup: []op{create("c", T0)},
			req:   acquireReq("c", 0, 0, T0), wantFence: 1,
		},
		{
			name:  "stopped",
			setup: []op{create("c", T0), setStatus("c", engine.StatusStopped, T0)},
			req:   acquireReq("c", 0, 0, t1), want: engine.ErrInactive,
		},
		{
			name:  "step already done",
			setup: []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0)},
			req:   acquireReq("c", 0, 0, t1), want: engine.ErrDuplicate,
		},
		{
			name: "earlier step than done",
			setup: []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0),
				acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeNext, T0)},
			req: acquireReq("c", 0, 0, t1), want: engine.ErrDuplicate,
		},
		{
			name:  "same step held",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0)},
			req:   acquireReq("c", 1, 0, t1), want: engine.ErrLeaseHeld,
		},
		{
			name:  "same step held by another attempt",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0)},
			req:   acquireReq("c", 1, 1, t1), want: engine.ErrLeaseHeld,
		},
		{
			name:  "same step held, lease just expired",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0)},
			req:   acquireReq("c", 1, 0, T0.Add(Lease)), wantFence: 2,
		},
		{
			name:  "later step holds",
			setup: []op{create("c", T0), acquire("c", 2, 0, T0)},
			req:   acquireReq("c", 1, 0, t1), want: engine.ErrDuplicate,
		},
		{
			name:  "earlier step holds: take over",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0)},
			req:   acquireReq("c", 2, 0, t1), wantFence: 2,
		},
		{
			name:  "later step's lease expired",
			setup: []op{create("c", T0), acquire("c", 2, 0, T0)},
			req:   acquireReq("c", 1, 0, T0.Add(Lease+time.Second)), wantFence: 2,
		},
		{
			name:  "attempt already failed",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeRetry, T0)},
			req:   acquireReq("c", 1, 0, t1), want: engine.ErrDuplicate,
		},
		{
			name:  "next attempt after a failure",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeRetry, T0)},
			req:   acquireReq("c", 1, 1, t1), wantFence: 2,
		},
		{
			name: "older attempt after a later one failed",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeRetry, T0),
				acquire("c", 1, 2, T0), commit("c", 1, 2, engine.OutcomeRetry, T0)},
			req: acquireReq("c", 1, 1, t1), want: engine.ErrDuplicate,
		},
		{
			name: "failures of an earlier step do not count",
			setup: []op{create("c", T0), acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeRetry, T0),
				acquire("c", 1, 1, T0), commit("c", 1, 1, engine.OutcomeNext, T0)},
			req: acquireReq("c", 2, 0, t1), wantFence: 3,
		},
		{
			name:  "outside event for a waiting execution",
			setup: []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeWait, T0)},
			req:   acquireReq("c", 1, 0, t1), wantFence: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			var before engine.Execution
			if len(tc.setup) > 0 {
				before = mustGet(t, s, "c")
			}
			l, err := s.Acquire(t.Context(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Acquire(step %d, retries %d) = %v, want %v", tc.req.Step, tc.req.Retries, err, tc.want)
			}
			got := mustGet(t, s, "c")
			if tc.want != nil {
				if diff := cmp.Diff(before, got, equate); diff != "" {
					t.Errorf("refused Acquire changed the execution (-before +after):\n%s", diff)
				}
				return
			}
			if l.Fence != tc.wantFence {
				t.Errorf("fence = %d, want %d", l.Fence, tc.wantFence)
			}
			want := before
			if len(tc.setup) == 0 {
				want = engine.Execution{CorrelationID: "c", Machine: machine, DoneStep: -1, CreatedAt: tc.req.Now}
			}
			want.Status = engine.StatusRunning
			want.Fence = tc.wantFence
			want.LeaseStep = tc.req.Step
			want.LeaseExpires = tc.req.Expires
			want.Retries = tc.req.Retries
			want.UpdatedAt = tc.req.Now
			want.Takeovers = got.Takeovers // RunProtocol checks the count
			if diff := cmp.Diff(want, got, equate); diff != "" {
				t.Errorf("execution after Acquire (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("fence increases with every grant", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0))
		var last int64
		at := T0
		for step := range 5 {
			for _, r := range []int{0, 0, 1} { // the second grant takes over an expired lease
				l, err := s.Acquire(t.Context(), acquireReq("c", step, r, at))
				if err != nil {
					t.Fatalf("Acquire(%d, %d): %v", step, r, err)
				}
				if l.Fence <= last {
					t.Fatalf("fence %d after %d: not increasing", l.Fence, last)
				}
				last = l.Fence
				at = at.Add(Lease)
			}
		}
	})
}

func testAcquireConcurrent(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	run(t, s, create("c", T0))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Acquire(t.Context(), acquireReq("c", 0, 0, T0))
		})
	}
	wg.Wait()
	granted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			granted++
		case !errors.Is(err, engine.ErrLeaseHeld):
			t.Errorf("concurrent Acquire: %v, want nil or ErrLeaseHeld", err)
		}
	}
	if granted != 1 {
		t.Errorf("%d of %d concurrent Acquires granted, want 1", granted, n)
	}
}

func testCommit(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Second)
	for _, tc := range []struct {
		outcome  engine.Outcome
		status   engine.Status
		wantDone int
	}{
		{engine.OutcomeNext, engine.StatusRunning, 1},
		{engine.OutcomeWait, engine.StatusWaiting, 1},
		{engine.OutcomeDone, engine.StatusDone, 1},
		{engine.OutcomeFailed, engine.StatusFailed, 1},
		{engine.OutcomeRetry, engine.StatusRunning, 0},
	} {
		t.Run(string(tc.outcome), func(t *testing.T) {
			s := newStore(t)
			run(t, s, create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0))
			l, err := s.Acquire(t.Context(), acquireReq("c", 1, 2, T0))
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			c := commitReq("c", 1, 2, l.Fence, tc.outcome, t1)
			if err := s.Commit(t.Context(), c); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			want := engine.Execution{
				CorrelationID: "c", Machine: machine, Status: tc.status, State: c.State, Event: c.Event,
				DoneStep: tc.wantDone, Retries: 2, Fence: l.Fence, LeaseStep: 1, LastError: c.Error,
				Checkpoint: c.Checkpoint, SendReceipt: c.SendReceipt, CreatedAt: T0, UpdatedAt: t1,
			}
			if diff := cmp.Diff(want, mustGet(t, s, "c"), equate); diff != "" {
				t.Errorf("execution after Commit (-want +got):\n%s", diff)
			}
			h := mustHistory(t, s, "c")
			if len(h) != 2 {
				t.Fatalf("History has %d entries, want 2", len(h))
			}
			if diff := cmp.Diff(c.History, h[1], equate); diff != "" {
				t.Errorf("history entry (-want +got):\n%s", diff)
			}
			if tc.outcome != engine.OutcomeRetry {
				return
			}
			// The lease is released and the failed attempt recorded: the retry
			// (attempt 3) is granted at once, attempt 2 is a duplicate.
			if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 2, t1)); !errors.Is(err, engine.ErrDuplicate) {
				t.Errorf("Acquire of the failed attempt = %v, want ErrDuplicate", err)
			}
			if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 3, t1)); err != nil {
				t.Errorf("Acquire of the retry: %v", err)
			}
		})
	}

	t.Run("keeps an operator's stop", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), setStatus("c", engine.StatusStopped, t1),
			commit("c", 0, 0, engine.OutcomeNext, t1))
		got := mustGet(t, s, "c")
		if got.Status != engine.StatusStopped || got.DoneStep != 0 {
			t.Errorf("after Commit of a stopped execution: status %s, done %d; want stopped, 0", got.Status, got.DoneStep)
		}
	})

	t.Run("copies the checkpoint", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0))
		l, err := s.Acquire(t.Context(), acquireReq("c", 0, 0, T0))
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		c := commitReq("c", 0, 0, l.Fence, engine.OutcomeNext, t1)
		want := string(c.Checkpoint)
		if err := s.Commit(t.Context(), c); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		copy(c.Checkpoint, "XXXXX")
		c.History.Actions[0] = "changed"
		if got := string(mustGet(t, s, "c").Checkpoint); got != want {
			t.Errorf("checkpoint = %q after the caller reused its buffer, want %q", got, want)
		}
		if got := mustHistory(t, s, "c")[0].Actions[0]; got != "a.Enter" {
			t.Errorf("history action = %q after the caller reused its slice, want a.Enter", got)
		}
	})
}

func testCommitRefused(t *testing.T, newStore func(t *testing.T) engine.Store) {
	for _, tc := range []struct {
		name  string
		setup []op
		fence int64 // the stale holder's fence
	}{
		{"lease expired and taken over", []op{create("c", T0), acquire("c", 0, 0, T0), acquire("c", 0, 0, T0.Add(Lease))}, 1},
		{"taken over by the next step", []op{create("c", T0), acquire("c", 0, 0, T0), acquire("c", 1, 0, T0)}, 1},
		{"already committed", []op{create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeRetry, T0)}, 1},
		{"never granted", []op{create("c", T0)}, 1},
		{"unknown execution", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			run(t, s, tc.setup...)
			before, beforeErr := s.Get(t.Context(), "c")
			beforeHist, _ := s.History(t.Context(), "c")
			err := s.Commit(t.Context(), commitReq("c", 0, 0, tc.fence, engine.OutcomeNext, T0.Add(time.Hour)))
			if !errors.Is(err, engine.ErrFenceLost) {
				t.Fatalf("stale Commit = %v, want ErrFenceLost", err)
			}
			after, afterErr := s.Get(t.Context(), "c")
			if (afterErr == nil) != (beforeErr == nil) {
				t.Fatalf("Get after refused Commit = %v, before it %v", afterErr, beforeErr)
			}
			if diff := cmp.Diff(before, after, equate); diff != "" {
				t.Errorf("refused Commit changed the execution (-before +after):\n%s", diff)
			}
			afterHist, _ := s.History(t.Context(), "c")
			if diff := cmp.Diff(beforeHist, afterHist, equate); diff != "" {
				t.Errorf("refused Commit changed the history (-before +after):\n%s", diff)
			}
		})
	}
}

func testReads(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	if _, err := s.Get(t.Context(), "missing"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.History(t.Context(), "missing"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("History(missing) = %v, want ErrNotFound", err)
	}
	run(t, s, create("c", T0))
	var want []engine.HistoryEntry
	for step := range 4 {
		at := T0.Add(time.Duration(step) * time.Second)
		l, err := s.Acquire(t.Context(), acquireReq("c", step, 0, at))
		if err != nil {
			t.Fatalf("Acquire(%d): %v", step, err)
		}
		c := commitReq("c", step, 0, l.Fence, engine.OutcomeNext, at)
		c.History.Actions = nil
		if step == 2 {
			c.History.Error = "a long error\nwith lines"
		}
		if err := s.Commit(t.Context(), c); err != nil {
			t.Fatalf("Commit(%d): %v", step, err)
		}
		want = append(want, c.History)
	}
	if diff := cmp.Diff(want, mustHistory(t, s, "c"), equate); diff != "" {
		t.Errorf("History, oldest first (-want +got):\n%s", diff)
	}
}

func testSetStatus(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Minute)
	t.Run("stop and resume", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0))
		leased := mustGet(t, s, "c")
		if err := s.SetStatus(t.Context(), "c", engine.StatusStopped, "operator stop", t1); err != nil {
			t.Fatalf("SetStatus(stopped): %v", err)
		}
		want := leased
		want.Status, want.LastError, want.UpdatedAt = engine.StatusStopped, "operator stop", t1
		if diff := cmp.Diff(want, mustGet(t, s, "c"), equate); diff != "" {
			t.Errorf("after stop (-want +got); the lease must be untouched:\n%s", diff)
		}
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 0, t1)); !errors.Is(err, engine.ErrInactive) {
			t.Errorf("Acquire of a stopped execution = %v, want ErrInactive", err)
		}
		run(t, s, commit("c", 0, 0, engine.OutcomeNext, t1), setStatus("c", engine.StatusRunning, t1))
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 0, t1)); err != nil {
			t.Errorf("Acquire after resume: %v", err)
		}
	})
	t.Run("resume a failed execution", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0),
			acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0),
			acquire("c", 1, 0, T0), commit("c", 1, 0, engine.OutcomeRetry, T0),
			acquire("c", 1, 1, T0), commit("c", 1, 1, engine.OutcomeFailed, T0))
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 1, t1)); !errors.Is(err, engine.ErrDuplicate) {
			t.Fatalf("Acquire of the failed message before resume = %v, want ErrDuplicate", err)
		}
		run(t, s, setStatus("c", engine.StatusRunning, t1))
		if got := mustGet(t, s, "c"); got.Status != engine.StatusRunning || got.DoneStep != 0 {
			t.Errorf("after resume: status %s, done %d; want running, 0", got.Status, got.DoneStep)
		}
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 1, t1)); err != nil {
			t.Errorf("Acquire of the checkpoint (the failed message) after resume: %v", err)
		}
	})
	t.Run("done execution", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeDone, T0))
		if err := s.SetStatus(t.Context(), "c", engine.StatusStopped, "", t1); err == nil {
			t.Errorf("SetStatus of a done execution succeeded")
		}
		if got := mustGet(t, s, "c").Status; got != engine.StatusDone {
			t.Errorf("status = %s, want done", got)
		}
	})
	t.Run("unknown execution", func(t *testing.T) {
		s := newStore(t)
		if err := s.SetStatus(t.Context(), "missing", engine.StatusStopped, "", t1); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("SetStatus(missing) = %v, want ErrNotFound", err)
		}
	})
}

func testHistorySince(t *testing.T, newStore func(t *testing.T) engine.Store) {
	s := newStore(t)
	tailer, ok := s.(engine.Tailer)
	if !ok {
		t.Skip("store does not implement engine.Tailer")
	}
	run(t, s, create("a", T0))
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: "b", Machine: "Other", CreatedAt: T0}); err != nil {
		t.Fatalf("Create(b): %v", err)
	}
	var want []engine.HistoryRow
	for step := range 2 {
		for _, id := range []string{"a", "b"} {
			l, err := s.Acquire(t.Context(), acquireReq(id, step, 0, T0))
			if err != nil {
				t.Fatalf("Acquire(%s, %d): %v", id, step, err)
			}
			c := commitReq(id, step, 0, l.Fence, engine.OutcomeNext, T0)
			if err := s.Commit(t.Context(), c); err != nil {
				t.Fatalf("Commit(%s, %d): %v", id, step, err)
			}
			m := machine
			if id == "b" {
				m = "Other"
			}
			want = append(want, engine.HistoryRow{CorrelationID: id, Machine: m, HistoryEntry: c.History})
		}
	}
	all, err := tailer.HistorySince(t.Context(), 0, engine.HistoryFilter{})
	if err != nil {
		t.Fatalf("HistorySince(0): %v", err)
	}
	if diff := cmp.Diff(want, all, equate, cmpopts.IgnoreFields(engine.HistoryRow{}, "ID")); diff != "" {
		t.Fatalf("HistorySince(0) (-want +got):\n%s", diff)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID {
			t.Fatalf("ids not increasing: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	ids := func(rows []engine.HistoryRow) []int64 {
		out := []int64{}
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		after int64
		f     engine.HistoryFilter
		want  []int64
	}{
		{"after the second", all[1].ID, engine.HistoryFilter{}, ids(all[2:])},
		{"after the last", all[3].ID, engine.HistoryFilter{}, []int64{}},
		{"machine", 0, engine.HistoryFilter{Machine: "Other"}, []int64{all[1].ID, all[3].ID}},
		{"correlation id", all[0].ID, engine.HistoryFilter{CorrelationID: "a"}, []int64{all[2].ID}},
		{"limit", 0, engine.HistoryFilter{Limit: 3}, ids(all[:3])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tailer.HistorySince(t.Context(), tc.after, tc.f)
			if err != nil {
				t.Fatalf("HistorySince: %v", err)
			}
			if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
				t.Errorf("HistorySince(%d, %+v) ids (-want +got):\n%s", tc.after, tc.f, diff)
			}
		})
	}
}

package dynamodb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// These tests interleave CommitSteps (the batched commit of an SQS batch)
// with crashes and a concurrent consumer, as order_test.go does for
// CommitStep: a batch of two executions, x and y, each at step 0.

func setupBatch(t *testing.T, hook func(string, engine.Commit)) (*dynamodb.Store, *memory.Backend) {
	t.Helper()
	s, q := setup(t, hook)
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: "y", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	return s, q
}

// batchOf acquires step of each id at now and returns the batch's commits.
func batchOf(t *testing.T, s *dynamodb.Store, stepN int, now time.Time, ids ...string) []engine.StepCommit {
	t.Helper()
	var out []engine.StepCommit
	for _, id := range ids {
		l, err := s.Acquire(t.Context(), acq(id, stepN, 0, now))
		if err != nil {
			t.Fatalf("Acquire %s step %d: %v", id, stepN, err)
		}
		c, m := step(id, stepN, 0, l.Fence, now)
		out = append(out, engine.StepCommit{Commit: c, Out: m})
	}
	return out
}

// A crash between any two phases of a batched commit: after the batch's
// step items (nothing counts: each step runs again once its lease
// expires), after some of the executions' updates (those committed are
// repaired from their outbox by their redelivery, the others run again),
// and before the send (every redelivery finds its step done and sends the
// outbox). Every step ends up in its history exactly once.
func TestCommitStepsCrash(t *testing.T) {
	for _, point := range []string{"after-step-item", "after-commit", "before-send"} {
		t.Run(point, func(t *testing.T) {
			ctx, crash := context.WithCancel(t.Context())
			s, q := setupBatch(t, func(p string, c engine.Commit) {
				if p == point && c.CorrelationID == "x" && c.Fence == 1 {
					crash()
				}
			})
			errs := s.CommitSteps(ctx, batchOf(t, s, 0, t0, "x", "y"))
			for i, err := range errs {
				if err == nil || errors.Is(err, engine.ErrFenceLost) {
					t.Fatalf("CommitSteps with a crash %s: step %d: %v, want a failure to redeliver", point, i, err)
				}
			}
			if got := queued(t, q); len(got) != 0 {
				t.Fatalf("after a crash %s the queue holds %q", point, got)
			}
			// Both deliveries come back after their visibility timeout.
			later := t0.Add(lease)
			var again []string
			for _, id := range []string{"x", "y"} {
				_, err := s.Acquire(t.Context(), acq(id, 0, 0, later))
				committed := point == "before-send" || (point == "after-commit" && id == "x")
				switch {
				case committed && !errors.Is(err, engine.ErrDuplicate):
					t.Fatalf("redelivery of %s after its commit: %v, want ErrDuplicate", id, err)
				case !committed && err != nil:
					t.Fatalf("redelivery of %s before its commit: %v", id, err)
				case !committed:
					again = append(again, id)
				}
			}
			if len(again) > 0 {
				// Run again those not committed (their leases were taken above).
				var redo []engine.StepCommit
				for _, id := range again {
					x, err := s.Get(t.Context(), id)
					if err != nil {
						t.Fatal(err)
					}
					c, m := step(id, 0, 0, x.Fence, later)
					redo = append(redo, engine.StepCommit{Commit: c, Out: m})
				}
				for i, err := range s.CommitSteps(t.Context(), redo) {
					if err != nil {
						t.Fatalf("redelivered %s: %v", again[i], err)
					}
				}
			}
			if diff := cmp.Diff([]string{`{"step":1}`, `{"step":1}`}, queued(t, q)); diff != "" {
				t.Errorf("sent (-want +got): each execution's step 1 once\n%s", diff)
			}
			for i, err := range s.CommitSteps(t.Context(), batchOf(t, s, 1, later, "x", "y")) {
				if err != nil {
					t.Fatalf("step 1, commit %d: %v", i, err)
				}
			}
			for _, id := range []string{"x", "y"} {
				h := steps(t, s, id)
				if len(h) != 2 || h[0][:4] != "0/0@" || h[1][:4] != "1/0@" {
					t.Errorf("%s: history %q: want steps 0 and 1 once each", id, h)
				}
			}
		})
	}
}

// A fence lost for one record of a batch: x's lease is taken over (and
// its step committed by the consumer that took it) after the batch wrote
// its step items. The batch's commit of x is refused and sends nothing,
// y's commits and is sent, and x's history holds the winner's entry only.
func TestCommitStepsFenceLost(t *testing.T) {
	var s *dynamodb.Store
	var takeover error
	s, q := setupBatch(t, func(p string, c engine.Commit) {
		if p != "after-step-item" || c.CorrelationID != "x" || c.Fence != 1 {
			return
		}
		later := t0.Add(lease)
		l, err := s.Acquire(t.Context(), acq("x", 0, 0, later))
		if err != nil {
			takeover = err
			return
		}
		wc, out := step("x", 0, 0, l.Fence, later)
		_, takeover = s.CommitStep(t.Context(), wc, out, "")
	})
	batch := batchOf(t, s, 0, t0, "x", "y")
	errs := s.CommitSteps(t.Context(), batch)
	if takeover != nil {
		t.Fatalf("takeover of x: %v", takeover)
	}
	if !errors.Is(errs[0], engine.ErrFenceLost) {
		t.Errorf("batch's commit of x = %v, want ErrFenceLost", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("batch's commit of y = %v, want nil", errs[1])
	}
	if batch[1].Receipt == "" {
		t.Errorf("y's commit has no receipt")
	}
	if diff := cmp.Diff([]string{`{"step":1}`, `{"step":1}`}, queued(t, q)); diff != "" {
		t.Errorf("sent (-want +got): the winner's successor of x and y's, not the loser's\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0/0@2"}, steps(t, s, "x")); diff != "" {
		t.Errorf("x's history (-want +got): the winner's entry only\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0/0@1"}, steps(t, s, "y")); diff != "" {
		t.Errorf("y's history (-want +got)\n%s", diff)
	}
}

// More steps than one BatchWriteItem takes (25): every step is committed,
// sent and recorded once.
func TestCommitStepsLargeBatch(t *testing.T) {
	s, q := setup(t, nil)
	ids := []string{"x"}
	for i := range 29 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := s.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, err := range s.CommitSteps(t.Context(), batchOf(t, s, 0, t0, ids...)) {
		if err != nil {
			t.Fatalf("commit of %s: %v", ids[i], err)
		}
	}
	if got := queued(t, q); len(got) != len(ids) {
		t.Errorf("sent %d messages, want %d", len(got), len(ids))
	}
	for _, id := range ids {
		if diff := cmp.Diff([]string{"0/0@1"}, steps(t, s, id)); diff != "" {
			t.Errorf("%s: history (-want +got)\n%s", id, diff)
		}
	}
}

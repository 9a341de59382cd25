package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// testOperator pins how an operator's stop and resume meet steps in flight
// and failed attempts, so that Resume (which re-sends the checkpoint with
// retries 0) always finds its message accepted, and a finished execution is
// never reported as stopped.
func testOperator(t *testing.T, newStore func(t *testing.T) engine.Store) {
	t1 := T0.Add(time.Second)
	t2 := T0.Add(2 * time.Second)

	t.Run("resume after a stop during retry backoff accepts attempt 0", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeNext, T0),
			acquire("c", 1, 0, t1), commit("c", 1, 0, engine.OutcomeRetry, t1),
			setStatus("c", engine.StatusStopped, t1), setStatus("c", engine.StatusRunning, t2))
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 0, t2)); err != nil {
			t.Errorf("Acquire of the resumed step (attempt 0): %v", err)
		}
		if got := mustGet(t, s, "c"); got.DoneStep != 0 {
			t.Errorf("done step %d, want 0 (resume must not reopen committed steps)", got.DoneStep)
		}
	})

	t.Run("resume after a stop keeps committed steps done", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), setStatus("c", engine.StatusStopped, t1),
			commit("c", 0, 0, engine.OutcomeNext, t1), setStatus("c", engine.StatusRunning, t2))
		if _, err := s.Acquire(t.Context(), acquireReq("c", 0, 0, t2)); !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("Acquire of the committed step = %v, want ErrDuplicate", err)
		}
		if _, err := s.Acquire(t.Context(), acquireReq("c", 1, 0, t2)); err != nil {
			t.Errorf("Acquire of the next step: %v", err)
		}
	})

	for _, tc := range []struct {
		outcome engine.Outcome
		want    engine.Status
	}{
		{engine.OutcomeNext, engine.StatusStopped},
		{engine.OutcomeRetry, engine.StatusStopped},
		{engine.OutcomeWait, engine.StatusStopped},
		{engine.OutcomeDone, engine.StatusDone},
		{engine.OutcomeFailed, engine.StatusFailed},
	} {
		t.Run("stop during a step that ends "+string(tc.outcome), func(t *testing.T) {
			s := newStore(t)
			run(t, s, create("c", T0), acquire("c", 0, 0, T0), setStatus("c", engine.StatusStopped, t1),
				commit("c", 0, 0, tc.outcome, t1))
			if got := mustGet(t, s, "c").Status; got != tc.want {
				t.Errorf("status %s, want %s", got, tc.want)
			}
		})
	}

	t.Run("resume after a stop during a step that failed reopens it", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), setStatus("c", engine.StatusStopped, t1),
			commit("c", 0, 0, engine.OutcomeFailed, t1), setStatus("c", engine.StatusRunning, t2))
		if _, err := s.Acquire(t.Context(), acquireReq("c", 0, 0, t2)); err != nil {
			t.Errorf("Acquire of the resumed step: %v", err)
		}
	})

	t.Run("stop of a failed execution", func(t *testing.T) {
		s := newStore(t)
		run(t, s, create("c", T0), acquire("c", 0, 0, T0), commit("c", 0, 0, engine.OutcomeFailed, t1))
		err := s.SetStatus(t.Context(), "c", engine.StatusStopped, "", t1)
		if !errors.Is(err, engine.ErrInactive) {
			t.Errorf("SetStatus(stopped) of a failed execution = %v, want ErrInactive", err)
		}
		if got := mustGet(t, s, "c").Status; got != engine.StatusFailed {
			t.Errorf("status %s, want failed", got)
		}
	})
}

package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
)

// secondaryStore is a memory store whose every grant says it came from a
// secondary lease store, and which records each Acquire's hint.
type secondaryStore struct {
	*memory.Backend
	mu    sync.Mutex
	hints []string
}

func (s *secondaryStore) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	h := "none"
	if q.LeasePrimary != nil {
		h = map[bool]string{true: "primary", false: "secondary"}[*q.LeasePrimary]
	}
	s.mu.Lock()
	s.hints = append(s.hints, h)
	s.mu.Unlock()
	l, err := s.Backend.Acquire(ctx, q)
	no := false
	l.LeasePrimary = &no
	return l, err
}

// TestLeasePrimaryCarried: the lease store a grant came from (Lease.
// LeasePrimary) goes into the step's next message as lease_primary, and
// the next Acquire is told it (AcquireRequest.LeasePrimary), so that a
// store with two lease stores asks the execution's own first.
func TestLeasePrimaryCarried(t *testing.T) {
	clock := storetest.NewClock(epoch)
	st := &secondaryStore{Backend: memory.New(memory.Options{Clock: clock.Now})}
	q := memory.New(memory.Options{Clock: clock.Now})
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chainMachine(t, nil)}, Store: st, Queue: q, Retrier: q, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Start(t.Context(), engine.StartRequest{Machine: "Chain"}); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		ds, err := q.Receive(t.Context(), 1, time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		msg, err := engine.DecodeMessage(ds[0].Payload)
		if err != nil {
			t.Fatal(err)
		}
		if msg.System.Steps > 0 && (msg.System.LeasePrimary == nil || *msg.System.LeasePrimary) {
			t.Errorf("step %d's message has lease_primary %v, want false (its predecessor's grant was the secondary's)", msg.System.Steps, msg.System.LeasePrimary)
		}
		if _, err := eng.Handle(t.Context(), ds[0].Payload); err != nil {
			t.Fatal(err)
		}
		if err := q.Ack(t.Context(), ds[0].Receipt); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.hints) < 3 || st.hints[0] != "none" || st.hints[1] != "secondary" || st.hints[2] != "secondary" {
		t.Errorf("acquire hints %v, want none (the start message), then secondary", st.hints)
	}
}

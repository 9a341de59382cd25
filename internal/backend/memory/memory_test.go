package memory_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
)

func TestStore(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) engine.Store { return memory.New(memory.Options{}) })
}

func TestProtocol(t *testing.T) {
	storetest.RunProtocol(t, func(t *testing.T) engine.Store { return memory.New(memory.Options{}) })
}

func TestQueue(t *testing.T) {
	storetest.RunQueue(t, func(t *testing.T, clock func() time.Time) storetest.QueueBackend {
		return memory.New(memory.Options{Clock: clock})
	})
}

func TestStepCommitter(t *testing.T) {
	storetest.RunStepCommitter(t, func(t *testing.T, clock func() time.Time) storetest.StepBackend {
		return memory.New(memory.Options{Clock: clock})
	})
}

// BenchmarkTransition measures one queued transition through the backend:
// Acquire, Send, Receive, Ack and Commit, the backend calls the engine makes
// per happy-path step when it runs locally.
func BenchmarkTransition(b *testing.B) {
	m := memory.New(memory.Options{})
	transitions(b, m, "c", b.N)
}

// BenchmarkTransitionParallel runs one execution per goroutine.
func BenchmarkTransitionParallel(b *testing.B) {
	m := memory.New(memory.Options{})
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("c%d", n.Add(1))
		step := 0
		for pb.Next() {
			transition(b, m, id, step)
			step++
		}
	})
}

func transitions(b *testing.B, m *memory.Backend, id string, n int) {
	b.ReportAllocs()
	for step := range n {
		transition(b, m, id, step)
	}
}

var payload = []byte(`{"version":"0.1","system_context":{"machine_name":"Example","current_state":"FirstState","current_event":"done","correlation_id":"0123456789abcdef0123456789abcdef","steps":1,"retries":0,"max_retries":5},"user_context":{"arg1":1}}`)

func transition(b *testing.B, m *memory.Backend, id string, step int) {
	ctx := b.Context()
	now := time.Now()
	l, err := m.Acquire(ctx, engine.AcquireRequest{CorrelationID: id, Machine: "Example", Step: step, Now: now, Expires: now.Add(5 * time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	r, err := m.Send(ctx, engine.OutMessage{Key: id, Payload: payload})
	if err != nil {
		b.Fatal(err)
	}
	ds, err := m.Receive(ctx, 1, 30*time.Second, 0)
	if err != nil || len(ds) != 1 {
		b.Fatal(ds, err)
	}
	if err := m.Ack(ctx, ds[0].Receipt); err != nil {
		b.Fatal(err)
	}
	err = m.Commit(ctx, engine.Commit{
		CorrelationID: id, Machine: "Example", Step: step, Fence: l.Fence, Outcome: engine.OutcomeNext,
		Status: engine.StatusRunning, State: "Second", Event: "done", Checkpoint: payload, SendReceipt: r,
		History: engine.HistoryEntry{Step: step, Fence: l.Fence, From: "First", Event: "done", To: "Second", Outcome: engine.OutcomeNext, Started: now},
		Now:     now,
	})
	if err != nil {
		b.Fatal(err)
	}
}

func TestDropRecorder(t *testing.T) {
	storetest.RunDropRecorder(t, func(t *testing.T) engine.DropRecorder { return memory.New(memory.Options{}) })
}

func TestPruner(t *testing.T) {
	storetest.RunPruner(t, func(t *testing.T) engine.Store { return memory.New(memory.Options{}) })
}

func TestCounter(t *testing.T) {
	storetest.RunCounter(t, func(t *testing.T) engine.Store { return memory.New(memory.Options{}) })
}

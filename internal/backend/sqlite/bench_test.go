package sqlite_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

var benchPayload = []byte(`{"version":"0.1","system_context":{"machine_name":"Example","current_state":"FirstState","current_event":"done","correlation_id":"0123456789abcdef0123456789abcdef","steps":1,"retries":0,"max_retries":5},"user_context":{"arg1":1}}`)

// BenchmarkSQLiteTransition measures one durable queued transition, the backend
// calls a local worker makes per happy-path step: Acquire, Send, Receive, Ack
// and Commit, with one worker.
func BenchmarkSQLiteTransition(b *testing.B) {
	db := open(b, sqlite.Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for step := range b.N {
		transition(b, db, "c", step)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// BenchmarkSQLiteTransitionParallel runs one execution per goroutine
// (GOMAXPROCS x 4 goroutines): durable transitions/s under contention.
func BenchmarkSQLiteTransitionParallel(b *testing.B) {
	db := open(b, sqlite.Options{})
	var n atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("c%d", n.Add(1))
		step := 0
		for pb.Next() {
			transition(b, db, id, step)
			step++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

func transition(b *testing.B, db *sqlite.DB, id string, step int) {
	ctx := b.Context()
	now := time.Now()
	l, err := db.Acquire(ctx, engine.AcquireRequest{CorrelationID: id, Machine: "Example", Step: step, Now: now, Expires: now.Add(5 * time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	r, err := db.Send(ctx, engine.OutMessage{Key: id, Payload: benchPayload})
	if err != nil {
		b.Fatal(err)
	}
	ds, err := db.Receive(ctx, 1, 30*time.Second, 5*time.Second) // in parallel, another worker may take ours: wait for theirs
	if err != nil || len(ds) != 1 {
		b.Fatal(ds, err)
	}
	if err := db.Ack(ctx, ds[0].Receipt); err != nil {
		b.Fatal(err)
	}
	err = db.Commit(ctx, engine.Commit{
		CorrelationID: id, Machine: "Example", Step: step, Fence: l.Fence, Outcome: engine.OutcomeNext,
		Status: engine.StatusRunning, State: "Second", Event: "done", Checkpoint: benchPayload, SendReceipt: r,
		History: engine.HistoryEntry{Step: step, Fence: l.Fence, From: "First", Event: "done", To: "Second",
			Actions: []string{"example.com/shop/actions.Charge"}, Outcome: engine.OutcomeNext, Started: now},
		Now: now,
	})
	if err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSQLiteStep is BenchmarkSQLiteTransition the way the engine ends a
// step on this backend: Receive, Acquire, then one CommitStep that sends the
// next message, commits and acknowledges the delivery (three writes, not five).
func BenchmarkSQLiteStep(b *testing.B) {
	db := open(b, sqlite.Options{})
	if _, err := db.Send(b.Context(), engine.OutMessage{Key: "c", Payload: benchPayload}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for step := range b.N {
		stepTransition(b, db, "c", step)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// BenchmarkSQLiteStepParallel is BenchmarkSQLiteStep with one execution per
// goroutine (GOMAXPROCS x 4 goroutines), as BenchmarkSQLiteTransitionParallel.
func BenchmarkSQLiteStepParallel(b *testing.B) {
	db := open(b, sqlite.Options{})
	var n atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("c%d", n.Add(1))
		if _, err := db.Send(b.Context(), engine.OutMessage{Key: id, Payload: benchPayload}); err != nil {
			b.Error(err)
			return
		}
		step := 0
		for pb.Next() {
			stepTransition(b, db, id, step)
			step++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "transitions/s")
}

// stepTransition receives a message (in parallel, perhaps another
// goroutine's: each keeps one in the queue), acquires step of id and ends it
// with CommitStep.
func stepTransition(b *testing.B, db *sqlite.DB, id string, step int) {
	ctx := b.Context()
	ds, err := db.Receive(ctx, 1, 30*time.Second, 5*time.Second)
	if err != nil || len(ds) != 1 {
		b.Fatal(ds, err)
	}
	now := time.Now()
	l, err := db.Acquire(ctx, engine.AcquireRequest{CorrelationID: id, Machine: "Example", Step: step, Now: now, Expires: now.Add(5 * time.Minute)})
	if err != nil {
		b.Fatal(err)
	}
	_, err = db.CommitStep(ctx, engine.Commit{
		CorrelationID: id, Machine: "Example", Step: step, Fence: l.Fence, Outcome: engine.OutcomeNext,
		Status: engine.StatusRunning, State: "Second", Event: "done", Checkpoint: benchPayload,
		History: engine.HistoryEntry{Step: step, Fence: l.Fence, From: "First", Event: "done", To: "Second",
			Actions: []string{"example.com/shop/actions.Charge"}, Outcome: engine.OutcomeNext, Started: now},
		Now: now,
	}, &engine.OutMessage{Key: id, Payload: benchPayload}, ds[0].Receipt)
	if err != nil {
		b.Fatal(err)
	}
}

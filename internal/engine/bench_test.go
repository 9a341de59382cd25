package engine_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// cpuTime is the process's user plus system CPU time. The machine the
// benchmarks run on is shared, so besides wall-clock rates they report rates
// per CPU-second the process actually got (GC included), which contention
// does not dilute.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report records transitions per wall second and per CPU second.
func report(b *testing.B, n int, cpu time.Duration) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "transitions/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "transitions/cpu-s")
}

// benchEngine runs machine m on a fresh memory backend.
func benchEngine(b *testing.B, m *spec.Machine, do fsm.ActionFunc, maxLocalHops int) (*engine.Engine, *memory.Backend) {
	b.Helper()
	cm := mustCompile(b, m, func(string) (fsm.Action, error) { return do, nil })
	mem := memory.New(memory.Options{})
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: mem, Queue: mem, MaxLocalHops: maxLocalHops})
	if err != nil {
		b.Fatal(err)
	}
	return eng, mem
}

// work receives, handles and acknowledges messages like a worker with one
// goroutine, until the queue is empty. It returns how many it handled.
func work(b *testing.B, eng *engine.Engine, mem *memory.Backend) int {
	ctx := b.Context()
	n := 0
	for {
		ds, err := mem.Receive(ctx, 16, 1<<40, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 0 {
			return n
		}
		for _, d := range ds {
			res, err := eng.Handle(ctx, d.Payload)
			if err != nil || res.Dropped != "" {
				b.Fatalf("Handle = %+v, %v", res, err)
			}
			if err := mem.Ack(ctx, d.Receipt); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
}

// BenchmarkTransitionQueued: one message (one Lambda invocation) per
// transition, on the memory backend: decode, acquire, run the do action,
// encode, send, commit, plus the local worker's receive and ack. The do
// action does not use the user context, which then travels undecoded.
func BenchmarkTransitionQueued(b *testing.B) {
	benchQueued(b, false)
}

// BenchmarkTransitionQueuedContext is BenchmarkTransitionQueued with a do
// action that reads and writes the user context (decoded and re-encoded at
// every transition).
func BenchmarkTransitionQueuedContext(b *testing.B) {
	benchQueued(b, true)
}

func benchQueued(b *testing.B, useContext bool) {
	steps := b.N + 10
	m := looper("looper", false)
	m.MaxSteps = &steps
	do := fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
		if useContext {
			n, _ := c.Int("n")
			c.Set("n", n+1)
		}
		if c.Steps() >= b.N-1 {
			return "done", nil
		}
		return "ok", nil
	})
	eng, mem := benchEngine(b, m, do, 0)
	if _, err := eng.Start(b.Context(), engine.StartRequest{Machine: "looper", Context: map[string]any{"order": "o-1", "n": 1}}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	n := work(b, eng, mem)
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	if n != b.N+1 { // the end state's message too
		b.Fatalf("handled %d messages, want %d", n, b.N+1)
	}
	report(b, n, cpu)
}

// BenchmarkTransitionLocal: local transitions, 1000 per invocation (the
// default MaxLocalHops), each running the state's do action.
func BenchmarkTransitionLocal(b *testing.B) {
	const perExecution = engine.DefaultMaxLocalHops
	hops := 0
	do := fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) {
		hops++
		if hops%perExecution == 0 {
			return "done", nil
		}
		return "ok", nil
	})
	eng, mem := benchEngine(b, looper("looper-local", true), do, 0)
	executions := (b.N + perExecution - 1) / perExecution
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range executions {
		if _, err := eng.Start(b.Context(), engine.StartRequest{Machine: "looper-local"}); err != nil {
			b.Fatal(err)
		}
		work(b, eng, mem)
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	if hops != executions*perExecution {
		b.Fatalf("%d hops, want %d", hops, executions*perExecution)
	}
	report(b, hops, cpu)
}

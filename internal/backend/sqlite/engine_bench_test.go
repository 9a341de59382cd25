package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// These benchmarks measure durable transitions through the real engine: a
// worker (engine.RunWorker) receives each message, the engine decodes it,
// acquires the lease, runs the do action, sends the next message and commits,
// and the delivery is acknowledged. The memory backend runs the same workload
// as the baseline.

// engineBackend is what a benchmark runs on: the store, queue and source of
// one backend (or a wrapper of it).
type engineBackend interface {
	engine.Store
	engine.Queue
	engine.Source
}

// separate hides every method of a backend but the Store's, so the engine
// takes its general path (Send, Commit, then Ack: one write each) even on a
// backend that could commit a step in one transaction. It measures what the
// one-transaction step saves, in the same run.
type separate struct {
	engine.Store
	q engine.Queue
	s engine.Source
}

func (s separate) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return s.q.Send(ctx, m)
}

func (s separate) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	return s.s.Receive(ctx, max, visibility, wait)
}

func (s separate) Ack(ctx context.Context, receipt string) error { return s.s.Ack(ctx, receipt) }

// acquiring hides ReceiveLeased, so the worker receives without leases and
// the engine acquires each message's lease in a write of its own (the path
// before LeasingSource) while still ending steps with CommitStep. It is one
// comparable value, so the engine still sees one backend.
type acquiring struct {
	engineBackend
	engine.StepCommitter
}

// chain is a machine whose start state sends itself "ok" until its execution
// has run steps messages, then "done" to a final state without actions.
func chain(tb testing.TB, steps int) *engine.Machine {
	tb.Helper()
	maxSteps := steps + 1
	m := &spec.Machine{Name: "chain", MaxSteps: &maxSteps, States: []*spec.State{
		{Name: "start", Initial: true, DoAction: &spec.ActionRef{Ref: "bench.Next"}, Transitions: []*spec.Transition{
			{Target: "start", Event: "ok"},
			{Target: "end", Event: "done"},
		}},
		{Name: "end", Final: true},
	}}
	next := fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
		if c.Steps() >= steps-2 {
			return "done", nil
		}
		return "ok", nil
	})
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) { return next, nil })
	if err != nil {
		tb.Fatal(err)
	}
	return cm
}

// progress counts what the engine reports and closes done when every
// execution has finished.
type progress struct {
	dispatched, duplicates atomic.Int64
	left                   atomic.Int64
	done                   chan struct{}
}

func (p *progress) Add(k engine.MetricKey, n int64) {
	switch k.Name {
	case engine.MetricDispatch:
		p.dispatched.Add(n)
	case engine.MetricDuplicate:
		p.duplicates.Add(n)
	case engine.MetricDone:
		if p.left.Add(-n) == 0 {
			close(p.done)
		}
	}
}

// runChains starts executions of a chain machine of steps messages each on be
// and runs a worker of the given concurrency until all are done. It returns
// the number of messages handled; the caller times it.
func runChains(b *testing.B, be engineBackend, executions, steps, workers int) int {
	b.Helper()
	ctx := b.Context()
	p := &progress{done: make(chan struct{})}
	p.left.Store(int64(executions))
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(b, steps)}, Store: be, Queue: be, Metrics: p})
	if err != nil {
		b.Fatal(err)
	}
	// Start from as many goroutines as the worker has, so that starting a
	// thousand executions is group-committed like the steps are.
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= executions; i = int(next.Add(1)) {
				if _, err := eng.Start(ctx, engine.StartRequest{Machine: "chain", CorrelationID: "c" + strconv.Itoa(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	werr := make(chan error, 1)
	go func() {
		werr <- engine.RunWorker(wctx, be, eng, engine.WorkerOptions{Concurrency: workers, Wait: 100 * time.Millisecond})
	}()
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("executions not done after 10 minutes: %d left", p.left.Load())
	}
	cancel()
	if err := <-werr; err != nil {
		b.Fatal(err)
	}
	want := int64(executions * steps)
	if got := p.dispatched.Load(); got != want {
		b.Fatalf("dispatched %d messages, want %d", got, want)
	}
	// On the general path a worker may take the next message and its step's
	// lease over before the previous step committed (its commit then loses the
	// fence and records nothing); count it.
	b.ReportMetric(float64(p.duplicates.Load())/float64(want), "fence-lost/transition")
	return int(want)
}

// chainExecutions is how many executions the throughput benchmarks run at
// once, whatever the number of workers, so every variant has the same work.
const chainExecutions = 16

// benchChains runs b.N transitions (rounded up to a whole number per
// execution) on the backend newBackend returns.
func benchChains(b *testing.B, newBackend func(b *testing.B) engineBackend, workers int) {
	steps := max((b.N+chainExecutions-1)/chainExecutions, 2)
	be := newBackend(b)
	b.ResetTimer()
	n := runChains(b, be, chainExecutions, steps, workers)
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "transitions/s")
}

var workerCounts = []int{1, 4, 8}

// BenchmarkEngineSQLite: durable transitions/s through the engine and
// RunWorker on an SQLite file in a temporary directory, 16 executions of a
// long chain at once. commit=step is the default path (leases taken with the
// receive, one-transaction step); commit=step-acquire hides the leasing
// receive (an Acquire per message); commit=separate also hides the
// one-transaction step from the engine.
func BenchmarkEngineSQLite(b *testing.B) {
	for _, path := range []string{"step", "step-acquire", "separate"} {
		for _, w := range workerCounts {
			b.Run(fmt.Sprintf("commit=%s/workers=%d", path, w), func(b *testing.B) {
				benchChains(b, func(b *testing.B) engineBackend {
					db := open(b, sqlite.Options{})
					switch path {
					case "step-acquire":
						return acquiring{db, db}
					case "separate":
						return separate{Store: db, q: db, s: db}
					}
					return db
				}, w)
			})
		}
	}
}

// BenchmarkEngineMemory is BenchmarkEngineSQLite on the memory backend: the
// baseline of the ratio (what the engine and worker cost without a disk).
func BenchmarkEngineMemory(b *testing.B) {
	for _, w := range workerCounts {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			benchChains(b, func(*testing.B) engineBackend { return memory.New(memory.Options{}) }, w)
		})
	}
}

// BenchmarkEngineScale: 1,000 executions started at once, 10 messages each,
// 8 workers; one op is the whole run on a fresh backend (start included).
// It reports the wall time, the peak resident set size of the process during
// the op (VmHWM, reset before the op through /proc/self/clear_refs) and the
// resident set size the op started from (the test binary and the backend
// opened). sqlite-separate hides CommitStep from the engine, as in
// BenchmarkEngineSQLite.
func BenchmarkEngineScale(b *testing.B) {
	const executions, steps, workers = 1000, 10, 8
	backends := []struct {
		name string
		new  func(b *testing.B) engineBackend
	}{
		{"sqlite", func(b *testing.B) engineBackend { return open(b, sqlite.Options{}) }},
		{"sqlite-separate", func(b *testing.B) engineBackend {
			db := open(b, sqlite.Options{})
			return separate{Store: db, q: db, s: db}
		}},
		{"memory", func(*testing.B) engineBackend { return memory.New(memory.Options{}) }},
	}
	for _, bk := range backends {
		b.Run(bk.name, func(b *testing.B) {
			var wall time.Duration
			var peak, base int64
			for range b.N {
				b.StopTimer()
				be := bk.new(b)
				resetPeakRSS(b)
				base = max(base, rss(b, "VmRSS:"))
				b.StartTimer()
				t0 := time.Now()
				runChains(b, be, executions, steps, workers)
				wall += time.Since(t0)
				peak = max(peak, rss(b, "VmHWM:"))
			}
			b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/op")
			b.ReportMetric(float64(executions*steps*b.N)/wall.Seconds(), "transitions/s")
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(base)/(1<<20), "start-RSS-MiB")
		})
	}
}

// resetPeakRSS sets the process's peak RSS to its current RSS (Linux 4.0+).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS: %v", err)
	}
}

// rss reads a size field of /proc/self/status (VmHWM: the peak resident set
// size, VmRSS: the current one), in bytes.
func rss(b *testing.B, field string) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skipf("cannot read the peak RSS: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("%s %q: %v", field, v, err)
			}
			return kb << 10
		}
	}
	b.Skipf("no %s in /proc/self/status", field)
	return 0
}

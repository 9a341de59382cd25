package chaos_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// calls exercises every operation of the four wrappers once and returns their
// errors by operation.
func calls(t *testing.T, inj *chaos.Injector, b *memory.Backend) map[string]error {
	ctx := t.Context()
	st, q, r, src := inj.Store(b), inj.Queue(b), inj.Retrier(b), inj.Source(b)
	now := time.Now()
	out := map[string]error{}
	out[chaos.OpCreate] = st.Create(ctx, engine.Execution{CorrelationID: "x", Machine: "M", CreatedAt: now})
	_, out[chaos.OpAcquire] = st.Acquire(ctx, engine.AcquireRequest{CorrelationID: "x", Machine: "M", Now: now, Expires: now.Add(time.Minute)})
	out[chaos.OpCommit] = st.Commit(ctx, engine.Commit{CorrelationID: "x", Fence: 1, Outcome: engine.OutcomeNext, Status: engine.StatusRunning, Now: now})
	_, out[chaos.OpGet] = st.Get(ctx, "x")
	_, out[chaos.OpHistory] = st.History(ctx, "x")
	_, out[chaos.OpList] = st.List(ctx, engine.ListFilter{})
	out[chaos.OpSetStatus] = st.SetStatus(ctx, "x", engine.StatusStopped, "", now)
	_, out[chaos.OpSend] = q.Send(ctx, engine.OutMessage{Key: "x", Payload: []byte("{}")})
	out[chaos.OpScheduleRetry] = r.ScheduleRetry(ctx, engine.OutMessage{Key: "x", Payload: []byte("{}")})
	var ds []engine.Delivery
	ds, out[chaos.OpReceive] = src.Receive(ctx, 1, time.Minute, 0)
	receipt := "1:1"
	if len(ds) > 0 {
		receipt = ds[0].Receipt
	}
	out[chaos.OpAck] = src.Ack(ctx, receipt)
	return out
}

func TestProbabilityExtremes(t *testing.T) {
	tests := []struct {
		name     string
		cfg      chaos.Config
		wantFail bool
	}{
		{"always", chaos.Config{Default: 1}, true},
		{"never", chaos.Config{Default: 0}, false},
		{"per operation overrides default", chaos.Config{Default: 1, Ops: map[string]float64{
			chaos.OpCreate: 0, chaos.OpAcquire: 0, chaos.OpCommit: 0, chaos.OpGet: 0, chaos.OpHistory: 0, chaos.OpList: 0,
			chaos.OpSetStatus: 0, chaos.OpSend: 0, chaos.OpScheduleRetry: 0, chaos.OpReceive: 0, chaos.OpAck: 0,
		}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := chaos.New(tt.cfg)
			b := memory.New(memory.Options{})
			errs := calls(t, inj, b)
			if len(errs) != 11 {
				t.Fatalf("exercised %d operations, want 11", len(errs))
			}
			for op, err := range errs {
				var ce *chaos.Error
				injected := errors.As(err, &ce) && errors.Is(err, chaos.ErrInjected) && ce.Op == op
				if injected != tt.wantFail {
					t.Errorf("%s: err = %v, want injected failure %v", op, err, tt.wantFail)
				}
			}
			// A failing call never reaches the backend.
			if _, err := b.Get(t.Context(), "x"); tt.wantFail != errors.Is(err, engine.ErrNotFound) {
				t.Errorf("backend Get after the calls: %v", err)
			}
			calls, failures := inj.Stats()
			if calls[chaos.OpCommit] != 1 || (failures[chaos.OpCommit] == 1) != tt.wantFail {
				t.Errorf("stats: calls %v, failures %v", calls, failures)
			}
		})
	}
}

func TestSeededRate(t *testing.T) {
	run := func() []bool {
		inj := chaos.New(chaos.Config{Default: 0.2, Rand: rand.New(rand.NewPCG(42, 42))})
		q := inj.Queue(memory.New(memory.Options{}))
		out := make([]bool, 5000)
		for i := range out {
			_, err := q.Send(t.Context(), engine.OutMessage{Key: "k"})
			out[i] = err != nil
		}
		return out
	}
	a, b := run(), run()
	failed := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("call %d differs between runs with the same seed", i)
		}
		if a[i] {
			failed++
		}
	}
	if rate := float64(failed) / float64(len(a)); rate < 0.17 || rate > 0.23 {
		t.Errorf("failure rate %.3f, want about 0.2", rate)
	}
}

// fastClock runs 1000 times faster than the wall clock, so that retry delays
// and lease timeouts of seconds take milliseconds.
type fastClock struct{ start time.Time }

func (c fastClock) Now() time.Time { return c.start.Add(time.Since(c.start) * 1000) }

// TestEngineUnderChaos: with 20% of store, queue and source calls failing, a
// worker that redelivers unacknowledged messages still completes every
// execution.
func TestEngineUnderChaos(t *testing.T) {
	clock := fastClock{start: time.Now()}
	b := memory.New(memory.Options{Clock: clock.Now})
	ret := 50
	m := &spec.Machine{Name: "Example", MaxRetries: &ret, States: []*spec.State{
		{Name: "FirstState", Initial: true, EntryAction: &spec.ActionRef{Ref: "a"}, DoAction: &spec.ActionRef{Ref: "done"},
			Transitions: []*spec.Transition{{Target: "SecondState", Event: "done"}}},
		{Name: "SecondState", DoAction: &spec.ActionRef{Ref: "done"}, Transitions: []*spec.Transition{{Target: "ThirdState", Event: "done"}}},
		{Name: "ThirdState", Final: true, DoAction: &spec.ActionRef{Ref: "a"}, ExitAction: &spec.ActionRef{Ref: "a"}},
	}}
	cm, err := engine.Compile(m, func(ref string) (fsm.Action, error) {
		return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
			if ref == "done" {
				return "done", nil
			}
			return "", nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clean, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: b, Queue: b, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	ids := make([]string, n)
	for i := range ids {
		if ids[i], err = clean.Start(t.Context(), engine.StartRequest{Machine: "Example"}); err != nil {
			t.Fatal(err)
		}
	}
	inj := chaos.New(chaos.Config{Default: 0.2, Rand: rand.New(rand.NewPCG(1, 2))})
	counters := engine.NewCounters()
	eng, err := engine.New(engine.Options{
		Machines: []*engine.Machine{cm},
		Store:    inj.Store(b), Queue: inj.Queue(b), Retrier: inj.Retrier(b),
		Metrics: counters, Clock: clock, Rand: rand.New(rand.NewPCG(3, 4)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var workerErr error
	wg.Go(func() {
		workerErr = engine.RunWorker(ctx, inj.Source(b), eng, engine.WorkerOptions{Concurrency: 4, Visibility: 30 * time.Second, Wait: 5 * time.Millisecond, Batch: 8})
	})
	defer func() { cancel(); wg.Wait() }()

	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		done := 0
		for _, id := range ids {
			x, err := b.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if x.Status == engine.StatusFailed {
				t.Fatalf("execution %s failed: %s", id, x.LastError)
			}
			if x.Status == engine.StatusDone {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d executions done before the deadline", done, n)
		}
		<-tick.C
	}
	cancel()
	wg.Wait()
	if workerErr != nil {
		t.Errorf("RunWorker = %v, want nil after cancel", workerErr)
	}
	_, failures := inj.Stats()
	for _, op := range []string{chaos.OpAcquire, chaos.OpCommit, chaos.OpSend, chaos.OpReceive, chaos.OpAck} {
		if failures[op] == 0 {
			t.Errorf("no injected %s failure: the test proved nothing about it", op)
		}
	}
	if got := counters.Total(engine.MetricDone); got < n {
		t.Errorf("done counter = %d, want at least %d", got, n)
	}
}

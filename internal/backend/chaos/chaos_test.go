package chaos_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// calls exercises every operation of the wrappers once and returns their
// errors by operation.
func calls(t *testing.T, inj *chaos.Injector, b *memory.Backend) map[string]error {
	ctx := t.Context()
	st, q, r, src := inj.Store(b), inj.Queue(b), inj.Retrier(b), inj.Source(b)
	sc, ok := inj.Backend(b).(engine.StepCommitter)
	if !ok {
		t.Fatal("Backend of a StepCommitter is not one")
	}
	now := time.Now()
	out := map[string]error{}
	out[chaos.OpCreate] = st.Create(ctx, engine.Execution{CorrelationID: "x", Machine: "M", CreatedAt: now})
	_, out[chaos.OpAcquire] = st.Acquire(ctx, engine.AcquireRequest{CorrelationID: "x", Machine: "M", Now: now, Expires: now.Add(time.Minute)})
	out[chaos.OpCommit] = st.Commit(ctx, engine.Commit{CorrelationID: "x", Fence: 1, Outcome: engine.OutcomeNext, Status: engine.StatusRunning, Now: now})
	_, out[chaos.OpCommitStep] = sc.CommitStep(ctx, engine.Commit{CorrelationID: "x", Step: 1, Fence: 1, Outcome: engine.OutcomeNext, Now: now}, nil, "")
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
			chaos.OpCreate: 0, chaos.OpAcquire: 0, chaos.OpCommit: 0, chaos.OpCommitStep: 0, chaos.OpGet: 0, chaos.OpHistory: 0, chaos.OpList: 0,
			chaos.OpSetStatus: 0, chaos.OpSend: 0, chaos.OpScheduleRetry: 0, chaos.OpReceive: 0, chaos.OpAck: 0,
		}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inj := chaos.New(tt.cfg)
			b := memory.New(memory.Options{})
			errs := calls(t, inj, b)
			if len(errs) != 12 {
				t.Fatalf("exercised %d operations, want 12", len(errs))
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

// TestCommitStepFailureWritesNothing: an injected CommitStep failure happens
// before the wrapped call, so the step is not committed, nothing is sent and
// the delivery is not acknowledged.
func TestCommitStepFailureWritesNothing(t *testing.T) {
	ctx := t.Context()
	now := time.Now()
	b := memory.New(memory.Options{})
	if _, err := b.Send(ctx, engine.OutMessage{Key: "x", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	ds, err := b.Receive(ctx, 1, time.Minute, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("Receive = %v, %v; want one delivery", ds, err)
	}
	lease, err := b.Acquire(ctx, engine.AcquireRequest{CorrelationID: "x", Machine: "M", Now: now, Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	c := engine.Commit{CorrelationID: "x", Machine: "M", Fence: lease.Fence, Outcome: engine.OutcomeNext, Status: engine.StatusRunning, Now: now}
	out := &engine.OutMessage{Key: "x", Payload: []byte("{}")}
	for _, w := range []struct {
		name string
		st   engine.Store
	}{
		{"Backend", chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpCommitStep: 1}}).Backend(b)},
		{"Store", chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpCommitStep: 1}}).Store(b)},
	} {
		sc, ok := w.st.(engine.StepCommitter)
		if !ok {
			t.Fatalf("%s of a StepCommitter is not one", w.name)
		}
		if _, err := sc.CommitStep(ctx, c, out, ds[0].Receipt); !errors.Is(err, chaos.ErrInjected) {
			t.Fatalf("%s: CommitStep = %v, want an injected failure", w.name, err)
		}
		x, err := b.Get(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		if x.DoneStep != -1 || x.LeaseExpires.IsZero() || b.Len() != 1 {
			t.Errorf("%s: after an injected failure: done step %d, lease expires %v, queue length %d; want -1, held, 1 (the delivery)",
				w.name, x.DoneStep, x.LeaseExpires, b.Len())
		}
	}
	if _, ok := chaos.New(chaos.Config{}).Store(struct{ engine.Store }{b}).(engine.StepCommitter); ok {
		t.Error("Store of a store that cannot commit a step claims it can")
	}
	// The same call passed through commits, sends and acknowledges.
	sc := chaos.New(chaos.Config{}).Backend(b).(engine.StepCommitter)
	if _, err := sc.CommitStep(ctx, c, out, ds[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if x, _ := b.Get(ctx, "x"); x.DoneStep != 0 || b.Len() != 1 {
		t.Errorf("after CommitStep: done step %d, queue length %d; want 0 and 1 (the next message)", x.DoneStep, b.Len())
	}
}

// fastClock runs 1000 times faster than the wall clock, so that retry delays
// and lease timeouts of seconds take milliseconds.
type fastClock struct{ start time.Time }

func (c fastClock) Now() time.Time { return c.start.Add(time.Since(c.start) * 1000) }

// TestEngineUnderChaos: with 20% of store, queue and source calls failing, a
// worker that redelivers unacknowledged messages still completes every
// execution, on both of the engine's paths: path=step wraps the backend as one
// value (chaos.Backend), so the engine ends steps with CommitStep; path=separate
// wraps each seam apart, so it sends, commits and acks. No step is in the
// history twice; with CommitStep every step is in it exactly once.
func TestEngineUnderChaos(t *testing.T) {
	for _, path := range []string{"step", "separate"} {
		t.Run("path="+path, func(t *testing.T) { testEngineUnderChaos(t, path == "step") })
	}
}

func testEngineUnderChaos(t *testing.T, step bool) {
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
	// The fast clock would turn the default 30 s lease into 30 ms of wall
	// time, which a loaded machine (the race detector, other test binaries)
	// can outlast between two statements: steps were then taken over for the
	// clock's sake, not chaos's, and a third takeover of one step fails the
	// execution by design. 10 minutes of engine time is 600 ms of wall time.
	// Chaos alone can also let a lease expire under its holder: a commit that
	// fails and whose give-back fails too (4% of attempts at 20%) leaves the
	// lease to expire, and the redelivery counts a takeover; takeovers of one
	// step add up across its attempts, so three on one step of 40 executions
	// happen now and then. This test is about injected faults, not holders
	// that keep dying (TestTakeoversBounded in internal/engine is), so the
	// bound is lifted here.
	opts := engine.Options{Machines: []*engine.Machine{cm}, Metrics: counters, Clock: clock, Rand: rand.New(rand.NewPCG(3, 4)),
		LeaseTimeout: 10 * time.Minute, MaxTakeovers: 1000}
	var src engine.Source
	if step {
		w := inj.Backend(b)
		opts.Store, opts.Queue, opts.Retrier, src = w, w, w, w
	} else {
		opts.Store, opts.Queue, opts.Retrier, src = inj.Store(b), inj.Queue(b), inj.Retrier(b), inj.Source(b)
	}
	eng, err := engine.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var workerErr error
	wg.Go(func() {
		workerErr = engine.RunWorker(ctx, src, eng, engine.WorkerOptions{Concurrency: 4, Visibility: 30 * time.Second, Wait: 5 * time.Millisecond, Batch: 8})
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
	calls, failures := inj.Stats()
	injected := []string{chaos.OpAcquire, chaos.OpReceive}
	if step {
		injected = append(injected, chaos.OpCommitStep)
		if calls[chaos.OpSend]+calls[chaos.OpCommit] != 0 {
			t.Errorf("Send called %d times, Commit %d: the engine did not end steps with CommitStep", calls[chaos.OpSend], calls[chaos.OpCommit])
		}
	} else {
		injected = append(injected, chaos.OpCommit, chaos.OpSend, chaos.OpAck)
		if calls[chaos.OpCommitStep] != 0 {
			t.Errorf("CommitStep called %d times through wrappers of one seam each", calls[chaos.OpCommitStep])
		}
	}
	for _, op := range injected {
		if failures[op] == 0 {
			t.Errorf("no injected %s failure: the test proved nothing about it", op)
		}
	}
	if got := counters.Total(engine.MetricDone); got < n {
		t.Errorf("done counter = %d, want at least %d", got, n)
	}

	// Each step of each execution ends once (failed attempts end as retries):
	// never twice on either path, and never missing with CommitStep. On the
	// general path a Commit that fails after its Send is swallowed (the sent
	// message carries the execution on), so that step has no entry.
	missing := 0
	for _, id := range ids {
		x, err := b.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		h, err := b.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		ended := make([]int, x.DoneStep+1)
		for _, e := range h {
			if e.Outcome == engine.OutcomeRetry {
				continue
			}
			if e.Step < 0 || e.Step > x.DoneStep {
				t.Errorf("%s: history entry of step %d beyond the done step %d", id, e.Step, x.DoneStep)
				continue
			}
			ended[e.Step]++
		}
		for s, k := range ended {
			switch {
			case k > 1:
				t.Errorf("%s: step %d is in the history %d times", id, s, k)
			case k == 0 && step:
				t.Errorf("%s: step %d is not in the history", id, s)
			case k == 0:
				missing++
			}
		}
		if last := h[len(h)-1]; last.Outcome != engine.OutcomeDone {
			t.Errorf("%s: last history entry %+v, want outcome done", id, last)
		}
	}
	if !step {
		t.Logf("general path: %d steps without a history entry (commit failed after send)", missing)
	}
}

// TestDropsRecordedUnderChaos: an engine on a chaos-wrapped backend still
// records the messages it cannot run (lfsm run --chaos), and no failure is
// injected into the recording.
func TestDropsRecordedUnderChaos(t *testing.T) {
	mem := memory.New(memory.Options{})
	inj := chaos.New(chaos.Config{Default: 1, Rand: rand.New(rand.NewPCG(1, 2))})
	b := inj.Backend(mem)
	e, err := engine.New(engine.Options{Store: b, Queue: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Handle(t.Context(), []byte(`{"version":"0.1"}`)); err != nil {
		t.Fatalf("Handle of a malformed message under chaos: %v", err)
	}
	got, err := mem.ListDropped(t.Context(), engine.DropFilter{})
	if err != nil || len(got) != 1 || got[0].Reason != engine.DropMalformed {
		t.Fatalf("drops recorded through the wrapper = %+v, %v; want one", got, err)
	}
	if _, ok := inj.Store(engine.Store(nil)).(engine.DropRecorder); !ok {
		t.Error("the Store wrapper is not a DropRecorder")
	}
}

// TestForBackend: a view for a named backend fails by its "backend.Op"
// key first, then the bare operation, then the default, and counts its
// calls under its own keys; views share the counts.
func TestForBackend(t *testing.T) {
	inj := chaos.New(chaos.Config{Default: 0, Ops: map[string]float64{"dynamodb.Acquire": 1, chaos.OpSend: 1, "kinesis.Send": 0}})
	ddb := inj.For("dynamodb").Store(memory.New(memory.Options{}))
	kin := inj.For("kinesis").Queue(memory.New(memory.Options{}))
	sqs := inj.For("sqs").Queue(memory.New(memory.Options{}))
	plain := inj.Store(memory.New(memory.Options{}))
	ctx := t.Context()
	req := engine.AcquireRequest{CorrelationID: "c", Now: time.Unix(1, 0), Expires: time.Unix(100, 0)}
	if _, err := ddb.Acquire(ctx, req); !errors.Is(err, chaos.ErrInjected) || !strings.Contains(err.Error(), "dynamodb.Acquire") {
		t.Errorf("dynamodb Acquire = %v, want an injected failure of dynamodb.Acquire", err)
	}
	if _, err := plain.Acquire(ctx, req); err != nil {
		t.Errorf("unnamed Acquire = %v, want none (only dynamodb's is targeted)", err)
	}
	if _, err := kin.Send(ctx, engine.OutMessage{Key: "c"}); err != nil {
		t.Errorf("kinesis Send = %v, want none (kinesis.Send=0 beats Send=1)", err)
	}
	if _, err := sqs.Send(ctx, engine.OutMessage{Key: "c"}); !errors.Is(err, chaos.ErrInjected) {
		t.Errorf("sqs Send = %v, want the bare Send's failure", err)
	}
	calls, failures := inj.Stats()
	wantCalls := map[string]int{"dynamodb.Acquire": 1, chaos.OpAcquire: 1, "kinesis.Send": 1, "sqs.Send": 1}
	wantFailures := map[string]int{"dynamodb.Acquire": 1, "sqs.Send": 1}
	if d := cmp.Diff(wantCalls, calls); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantFailures, failures); d != "" {
		t.Errorf("failures (-want +got):\n%s", d)
	}
}

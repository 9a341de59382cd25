package engine_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// batchMem is the memory backend as a BatchCommitter (the DynamoDB store's
// role on AWS): CommitSteps commits each step with CommitStep and counts
// its calls.
type batchMem struct {
	*memory.Backend
	calls atomic.Int32
}

func (b *batchMem) CommitSteps(ctx context.Context, steps []engine.StepCommit) []error {
	b.calls.Add(1)
	errs := make([]error, len(steps))
	for i, st := range steps {
		steps[i].Receipt, errs[i] = b.CommitStep(ctx, st.Commit, st.Out, st.Ack)
	}
	return errs
}

// TestBatchHoldsLeases: a batch's steps are committed together after all
// its records ran, so a record whose actions finished early keeps its
// lease renewed while a later record's actions run longer than the lease:
// a duplicate of it meanwhile is refused (lease held) instead of running
// its step again, and the batch then commits both steps in one call.
func TestBatchHoldsLeases(t *testing.T) {
	const lease = 300 * time.Millisecond
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var runs sync.Map
	var slowID atomic.Value
	m := &spec.Machine{Name: "Slow", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		id := c.Facts().CorrelationID
		n, _ := runs.LoadOrStore(id, new(atomic.Int32))
		if n.(*atomic.Int32).Add(1) > 1 || id != slowID.Load() {
			return "go", nil
		}
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
		return "go", nil
	}}))
	bm := &batchMem{Backend: memory.New(memory.Options{})}
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: bm, Queue: bm, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := e.Start(t.Context(), engine.StartRequest{Machine: "Slow"})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := e.Start(t.Context(), engine.StartRequest{Machine: "Slow"})
	if err != nil {
		t.Fatal(err)
	}
	slowID.Store(slow)
	ds, err := bm.Receive(t.Context(), 2, time.Hour, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("receive: %d deliveries, %v", len(ds), err)
	}
	payloads := [][]byte{ds[0].Payload, ds[1].Payload}
	if !strings.Contains(string(payloads[0]), fast) {
		payloads[0], payloads[1] = payloads[1], payloads[0] // the fast record first
	}
	fastPayload := payloads[0]
	var wg sync.WaitGroup
	var results []engine.Result
	var errs []error
	wg.Go(func() { results, errs = e.HandleBatch(context.WithoutCancel(t.Context()), payloads) })
	<-started
	// Wait (real time: the lease is real) until the fast record's lease
	// would have expired three times over without renewals.
	for granted := time.Now(); time.Since(granted) < 3*lease; {
		time.Sleep(5 * time.Millisecond) // letting real time pass for the real lease; not a wait for an outcome
	}
	dup, err := e.Handle(t.Context(), fastPayload)
	close(release)
	wg.Wait()
	if err != nil || dup.Dropped != engine.DropLeaseHeld {
		t.Errorf("duplicate of the fast record while the batch runs = %+v, %v; want dropped, lease held", dup, err)
	}
	for i, res := range results {
		if errs[i] != nil || res.Outcome != engine.OutcomeNext || res.Dropped != "" {
			t.Errorf("batch record %d = %+v, %v; want committed (next)", i, res, errs[i])
		}
	}
	if n := bm.calls.Load(); n != 1 {
		t.Errorf("%d CommitSteps calls, want 1", n)
	}
	for _, id := range []string{fast, slow} {
		if n, _ := runs.Load(id); n.(*atomic.Int32).Load() != 1 {
			t.Errorf("%s: the action ran %d times, want once", id, n.(*atomic.Int32).Load())
		}
	}
}

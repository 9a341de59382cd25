package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// flaky is a machine whose one step fails on its first attempt: per
// execution one retried step and one that succeeds and finishes.
func flaky(b testing.TB) *engine.Machine {
	var mu sync.Mutex
	tried := map[string]bool{}
	act := fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if !tried[c.CorrelationID()] {
			tried[c.CorrelationID()] = true
			return "", errors.New("first attempt fails")
		}
		return "ok", nil
	})
	m := &spec.Machine{Name: "flaky", States: []*spec.State{
		{Name: "try", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Try"}, Transitions: []*spec.Transition{{Target: "end", Event: "ok"}}},
		{Name: "end", Final: true},
	}}
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) { return act, nil })
	if err != nil {
		b.Fatal(err)
	}
	return cm
}

// BenchmarkDispatch counts the function's AWS calls and DynamoDB capacity
// per step on each dispatch, wired as fsm/host wires it and fed by the
// dispatch's event source mapping (not metered: Lambda's pollers), on the
// emulators: 10 executions of a 10-step chain (every step but the last
// sends), and 10 of a step that fails once (a retried step, then the step
// that finishes). "+tx" is the store with TransactCommit. Counts, not
// times:
//
//	go test -run '^$' -bench Dispatch -benchtime=1x ./internal/dispatch
func BenchmarkDispatch(b *testing.B) {
	for _, kind := range []struct {
		name string
		rig  func(testing.TB, ...*awsconfig.Meter) rig
		tx   bool
	}{{"sqs", sqsRig, false}, {"sqs+tx", sqsRig, true}, {"sns-sqs", snsSQSRig, false}, {"sns", snsRig, false}, {"sns+tx", snsRig, true},
		{"kinesis", kinesisRig, false}, {"kinesis+tx", kinesisRig, true}, {"dynamodb", streamRig, false}} {
		for _, machine := range []string{"chain", "flaky"} {
			b.Run(kind.name+"/"+machine, func(b *testing.B) {
				for range b.N {
					benchOne(b, kind.rig, machine, kind.tx)
				}
			})
		}
	}
}

func benchOne(b *testing.B, mk func(testing.TB, ...*awsconfig.Meter) rig, machine string, tx bool) {
	fn := &awsconfig.Meter{}
	r := mk(b, fn)
	c := ddbClient(b, fn)
	storeName := newTable(b, c, "lfsm-bench-store", dynamodb.CreateTable)
	var retrier engine.Retrier = r.retries
	if r.retries == nil {
		retrier = r.queue.(engine.Retrier)
	}
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: storeName, Queue: r.queue, Retrier: retrier, TransactCommit: tx})
	if err != nil {
		b.Fatal(err)
	}
	m := chain(b, 10)
	if machine == "flaky" {
		m = flaky(b)
	}
	d := &done{}
	const n = 10
	d.left.Store(n)
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: store, Queue: store, Retrier: store, Metrics: d,
		MaxMessageBytes: dynamodb.MaxCheckpointBytes})
	if err != nil {
		b.Fatal(err)
	}
	ho := lambda.Options{Engine: eng, Store: store, Retrier: retrier}
	if r.visib != nil {
		ho.Visibility = r.visib
	}
	h, err := lambda.New(ho)
	if err != nil {
		b.Fatal(err)
	}
	poll, err := r.poll(b.Context(), h)
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for range n {
		id, err := eng.Start(b.Context(), engine.StartRequest{Machine: m.Name()})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	fn.Reset()
	polls := 0
	deadline := time.Now().Add(3 * time.Minute)
	for d.left.Load() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("%d executions not done after 3 minutes", d.left.Load())
		}
		if err := poll(b.Context()); err != nil {
			b.Fatal(err)
		}
		if r.retries != nil {
			polls++
			if _, err := r.retries.Poll(b.Context(), time.Now().Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	}
	usage := fn.Usage()
	steps, retried := 0, 0
	for _, id := range ids {
		hist, err := store.History(b.Context(), id)
		if err != nil {
			b.Fatal(err)
		}
		steps += len(hist)
		for _, e := range hist {
			if e.Outcome == engine.OutcomeRetry {
				retried++
			}
		}
	}
	// The retry table's polls of this loop run far more often than the
	// every-minute schedule: their empty queries are not the function's cost
	// per step; a poll that sends is (its query, send and delete).
	if q := usage["DynamoDB.Query"]; r.retries != nil {
		q.Calls -= int64(polls - retried)
		usage["DynamoDB.Query"] = q
		if q.Calls <= 0 {
			delete(usage, "DynamoDB.Query")
		}
	}
	ops := make([]string, 0, len(usage))
	for op := range usage {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var calls int64
	var units float64
	var parts []string
	for _, op := range ops {
		u := usage[op]
		calls += u.Calls
		units += u.ReadUnits + u.WriteUnits + u.CapacityUnits
		b.ReportMetric(float64(u.Calls)/float64(steps), op+"/step")
		parts = append(parts, fmt.Sprintf("%s %.2f (%.2f units)", op, float64(u.Calls)/float64(steps), (u.ReadUnits+u.WriteUnits+u.CapacityUnits)/float64(steps)))
	}
	b.ReportMetric(float64(calls)/float64(steps), "calls/step")
	b.ReportMetric(units/float64(steps), "units/step")
	b.Logf("%d steps (%d retried): %.2f calls and %.2f capacity units per step: %s", steps, retried,
		float64(calls)/float64(steps), units/float64(steps), strings.Join(parts, ", "))
}

// BenchmarkRetriedStep counts, call by call, what a retried step costs the
// function on each dispatch: n executions (1: a batch of one; 10: started
// at once, so that SQS and Kinesis batches hold several) of a step that
// fails once, with a backoff long enough (a minute) that no retry comes
// back meanwhile. "attempt" is the failed attempts, from the mapping's
// delivery to the retry scheduled; "delivery" is what the scheduled poll
// of the retry table then does to send them (nothing on SQS, which
// delivers a delayed message itself); per retried step. The store is as
// fsm/host has it on each dispatch (on sns, TransactCommit). Counts, not
// times:
//
//	go test -run '^$' -bench RetriedStep -benchtime=1x ./internal/dispatch
func BenchmarkRetriedStep(b *testing.B) {
	for _, kind := range []struct {
		name string
		rig  func(testing.TB, ...*awsconfig.Meter) rig
	}{{"sqs", sqsRig}, {"sns-sqs", snsSQSRig}, {"sns", snsRig}, {"kinesis", kinesisRig}, {"dynamodb", streamRig}} {
		for _, n := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/n=%d", kind.name, n), func(b *testing.B) {
				for range b.N {
					retriedOne(b, kind.rig, n)
				}
			})
		}
	}
}

func retriedOne(b *testing.B, mk func(testing.TB, ...*awsconfig.Meter) rig, n int) {
	fn := &awsconfig.Meter{}
	r := mk(b, fn)
	c := ddbClient(b, fn)
	storeName := newTable(b, c, "lfsm-bench-store", dynamodb.CreateTable)
	var retrier engine.Retrier = r.retries
	if r.retries == nil {
		retrier = r.queue.(engine.Retrier)
	}
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: storeName, Queue: r.queue, Retrier: retrier, TransactCommit: r.tx})
	if err != nil {
		b.Fatal(err)
	}
	one, thirty := 1, 30
	m := &spec.Machine{Name: "once", MaxRetries: &one, RetryDelay: &thirty, States: []*spec.State{
		{Name: "try", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Try"}, Transitions: []*spec.Transition{{Target: "end", Event: "ok"}}},
		{Name: "end", Final: true},
	}}
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "", errors.New("fails once") }), nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// The draw at the top of the range: every retry waits (just under) its
	// bound, 60 s.
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: store, Queue: store, Retrier: store,
		Rand: rand.New(topRand{}), MaxMessageBytes: dynamodb.MaxCheckpointBytes})
	if err != nil {
		b.Fatal(err)
	}
	ho := lambda.Options{Engine: eng, Store: store, Retrier: retrier}
	if r.visib != nil {
		ho.Visibility = r.visib
	}
	h, err := lambda.New(ho)
	if err != nil {
		b.Fatal(err)
	}
	poll, err := r.poll(b.Context(), h)
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for range n {
		id, err := eng.Start(b.Context(), engine.StartRequest{Machine: "once"})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	// The benchmark reads the histories through a client of its own.
	watch, err := dynamodb.New(dynamodb.Options{Client: ddbClient(b), Table: storeName})
	if err != nil {
		b.Fatal(err)
	}
	fn.Reset()
	deadline := time.Now().Add(30 * time.Second)
	for retried := 0; retried < n; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d attempts failed and retried after 30 s", retried, n)
		}
		if err := poll(b.Context()); err != nil {
			b.Fatal(err)
		}
		retried = 0
		for _, id := range ids {
			hist, err := watch.History(b.Context(), id)
			if err != nil {
				b.Fatal(err)
			}
			if len(hist) == 1 && hist[0].Outcome == engine.OutcomeRetry {
				retried++
			}
		}
	}
	attempt := fn.Usage()
	fn.Reset()
	if r.retries != nil {
		sent := 0
		for sent < n {
			p, err := r.retries.Poll(b.Context(), time.Now().Add(2*time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			if p.Sent == 0 {
				b.Fatalf("the retry table's poll sent %d of %d retries", sent, n)
			}
			sent += p.Sent
		}
	}
	delivery := fn.Usage()
	report := func(phase string, usage map[string]awsconfig.OpUsage) {
		ops := make([]string, 0, len(usage))
		for op := range usage {
			ops = append(ops, op)
		}
		sort.Strings(ops)
		var calls int64
		var units float64
		var parts []string
		for _, op := range ops {
			u := usage[op]
			calls += u.Calls
			units += u.ReadUnits + u.WriteUnits + u.CapacityUnits
			parts = append(parts, fmt.Sprintf("%s %.2f (%.2f units)", op, float64(u.Calls)/float64(n), (u.ReadUnits+u.WriteUnits+u.CapacityUnits)/float64(n)))
		}
		b.ReportMetric(float64(calls)/float64(n), phase+"-calls/retry")
		b.ReportMetric(units/float64(n), phase+"-units/retry")
		b.Logf("%s: %.2f calls and %.2f capacity units per retried step: %s", phase, float64(calls)/float64(n), units/float64(n), strings.Join(parts, ", "))
	}
	report("attempt", attempt)
	report("delivery", delivery)
}

package dynamodb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// chain is a machine whose every step sends the next, steps messages in all.
func chain(t *testing.T, steps int) *engine.Machine {
	t.Helper()
	maxSteps := steps + 1
	m := &spec.Machine{Name: "chain", MaxSteps: &maxSteps, States: []*spec.State{
		{Name: "start", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Next"}, Transitions: []*spec.Transition{
			{Target: "start", Event: "ok"}, {Target: "end", Event: "done"},
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
		t.Fatal(err)
	}
	return cm
}

type progress struct {
	dispatched, duplicates, left atomic.Int64
	done                         chan struct{}
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

// TestEngineConcurrentConsumersOnSQS runs executions through the engine with
// the DynamoDB store and a real SQS queue (the emulator) read by several
// concurrent consumers, the setting in which the next message can be
// delivered before its step's commit: every step must be in the history
// exactly once, and nothing is dropped as a lost fence.
func TestEngineConcurrentConsumersOnSQS(t *testing.T) {
	concurrentConsumers(t, 4, 6, func(ctx context.Context, q *sqs.Queue, eng *engine.Engine) error {
		return engine.RunWorker(ctx, q, eng, engine.WorkerOptions{Concurrency: 1, Batch: 1, Wait: time.Second, RepairEvery: -1})
	})
}

// TestEngineConcurrentConsumersOnSQSBatch is TestEngineConcurrentConsumersOnSQS
// with each consumer handling batches of up to 10 messages as the Lambda
// handler does (Engine.NewBatch: the batched commit of the DynamoDB store):
// every step in the history exactly once.
func TestEngineConcurrentConsumersOnSQSBatch(t *testing.T) {
	concurrentConsumers(t, 12, 3, func(ctx context.Context, q *sqs.Queue, eng *engine.Engine) error {
		for ctx.Err() == nil {
			// A visibility timeout well above a batch's time even on a loaded
			// machine: a redelivery because a batch was slow is not the race
			// this test looks for (the next step's message delivered before
			// its step's commit), but would count as a duplicate all the same.
			ds, err := q.Receive(ctx, 10, 30*time.Second, time.Second)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			b := eng.NewBatch()
			for _, d := range ds {
				b.Add(ctx, d.Payload)
			}
			results, errs := b.Commit(ctx)
			for i, d := range ds {
				if errs[i] != nil || results[i].Dropped == engine.DropLeaseHeld {
					continue // it comes back after its visibility timeout
				}
				if err := q.Ack(ctx, d.Receipt); err != nil && ctx.Err() == nil {
					return err
				}
			}
		}
		return nil
	})
}

func concurrentConsumers(t *testing.T, executions, consumers int, consume func(context.Context, *sqs.Queue, *engine.Engine) error) {
	const steps = 8
	sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-engine"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
	})
	q, err := sqs.New(t.Context(), sqs.Options{Client: sc, URL: *qu.QueueUrl})
	if err != nil {
		t.Fatal(err)
	}
	c, table := newTable(t, nil)
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q})
	p := &progress{done: make(chan struct{})}
	p.left.Store(int64(executions))
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, steps)}, Store: s, Queue: s, Retrier: s, Metrics: p})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, executions)
	for i := range ids {
		if ids[i], err = eng.Start(t.Context(), engine.StartRequest{Machine: "chain"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errs := make(chan error, consumers)
	for range consumers {
		go func() { errs <- consume(ctx, q, eng) }()
	}
	select {
	case <-p.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%d executions not done after two minutes", p.left.Load())
	}
	cancel()
	for range consumers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := p.dispatched.Load(); got != int64(executions*steps) || p.duplicates.Load() != 0 {
		t.Errorf("dispatched %d (%d duplicates or lost fences), want %d and none", got, p.duplicates.Load(), executions*steps)
	}
	want := make([]string, steps)
	for i := range want {
		want[i] = fmt.Sprintf("%d next", i)
	}
	want[steps-1] = fmt.Sprintf("%d done", steps-1)
	for _, id := range ids {
		h, err := s.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(h))
		for i, e := range h {
			got[i] = fmt.Sprintf("%d %s", e.Step, e.Outcome)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: history (-want +got), every step exactly once:\n%s", id, diff)
		}
	}
}

package esm_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/lambda"
)

// handlerInvoker invokes a Handler in-process.
type handlerInvoker struct{ h *lambda.Handler }

func (i handlerInvoker) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	return i.h.Invoke(ctx, event)
}

// benchActions are the end-to-end project's actions, in-process.
func benchActions(ref string) (fsm.Action, error) {
	switch ref {
	case "example.com/e2e/actions.Done":
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "done", nil }), nil
	case "example.com/e2e/actions.FailTwice":
		return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
			if c.Facts().Retries < 2 {
				return "", errors.New("not yet")
			}
			return "ok", nil
		}), nil
	}
	return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "", nil }), nil
}

// BenchmarkSQSDispatch counts the AWS calls and the DynamoDB capacity the
// function makes per transition (and the event source mapping's SQS calls
// per batch) when executions run on SQS dispatch with the DynamoDB store,
// the function wired as fsm/host wires it in Lambda. Not timed: it reports
// counts (docs/benchmarks.md records them). Run with -benchtime=1x.
//
//	go test -run '^$' -bench SQSDispatch -benchtime=1x ./internal/esm
func BenchmarkSQSDispatch(b *testing.B) {
	for _, tc := range []struct {
		machine string
		n       int
	}{{"Example", 20}, {"Flaky", 10}} {
		for _, batch := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/batch%d", tc.machine, batch), func(b *testing.B) {
				for range b.N {
					benchDispatch(b, tc.machine, tc.n, batch)
				}
			})
		}
	}
}

// benchDispatch runs n executions of machine through the mapping with
// batches of up to batch messages per invocation.
func benchDispatch(b *testing.B, machine string, n, batch int) {
	r := newRig(b)
	fnMeter, pollMeter := &awsconfig.Meter{}, &awsconfig.Meter{}
	fcfg := awstest.Config(b, "DYNAMODB", fnMeter)
	qc := awssqs.NewFromConfig(awstest.Config(b, "SQS", fnMeter))
	dc := ddb.NewFromConfig(fcfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	q, err := sqs.New(b.Context(), sqs.Options{Client: qc, ARN: r.queueARN})
	if err != nil {
		b.Fatal(err)
	}
	table := r.table
	store, err := dynamodb.New(dynamodb.Options{Client: dc, Table: table, Queue: q, Retrier: q})
	if err != nil {
		b.Fatal(err)
	}
	s, _ := loadSpec(b)
	var machines []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, benchActions)
		if err != nil {
			b.Fatal(err)
		}
		machines = append(machines, cm)
	}
	eng, err := engine.New(engine.Options{Machines: machines, Store: store, Queue: store, Retrier: store})
	if err != nil {
		b.Fatal(err)
	}
	h, err := lambda.New(lambda.Options{Engine: eng, Store: store, Retrier: q, Visibility: sqs.NewVisibility(qc)})
	if err != nil {
		b.Fatal(err)
	}
	ids := r.start(machine, n)
	fnMeter.Reset()
	m, err := esm.New(b.Context(), esm.Options{Client: awssqs.NewFromConfig(awstest.Config(b, "SQS", pollMeter)),
		QueueARN: r.queueARN, Invoker: handlerInvoker{h}, BatchSize: batch, Wait: time.Second, Visibility: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	pollMeter.Reset()
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	r.waitDone(ids, 2*time.Minute)
	cancel()
	<-done

	steps, retried := 0, 0
	for _, id := range ids {
		hist, err := r.store.History(b.Context(), id)
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
	usage := fnMeter.Usage()
	ops := make([]string, 0, len(usage))
	for op := range usage {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var calls int64
	var units float64
	for _, op := range ops {
		u := usage[op]
		calls += u.Calls
		units += u.WriteUnits + u.ReadUnits + u.CapacityUnits
		b.Logf("%-28s %4d calls  %6.2f calls/step  %6.2f write units/step  %6.2f read units/step  (%d errors)", op, u.Calls,
			float64(u.Calls)/float64(steps), u.WriteUnits/float64(steps), u.ReadUnits/float64(steps), u.Errors)
	}
	var pollCalls []string
	for op, u := range pollMeter.Usage() {
		pollCalls = append(pollCalls, fmt.Sprintf("%s %d", op, u.Calls))
	}
	slices.Sort(pollCalls)
	b.Logf("%s: %d executions, %d steps (%d retried), function %d calls (%.2f per step), %.2f capacity units per step; mapping: %v",
		machine, n, steps, retried, calls, float64(calls)/float64(steps), units/float64(steps), pollCalls)
	b.ReportMetric(float64(calls)/float64(steps), "calls/step")
	b.ReportMetric(units/float64(steps), "units/step")
}

package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/config"
	awsdispatch "github.com/lfsm/lfsm/internal/dispatch"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/spec"
)

// chainSteps is how many steps an execution of chainSpec takes.
const chainSteps = 10

// chainSpec is a machine of chainSteps steps: the start into S1, S1 to S9
// by the event next (eight steps), and S9's end (its do action returns no
// event and it has an exit action, so the end is a step of its own, as the
// seed's ThirdState's is).
func chainSpec(t testing.TB) *spec.Spec {
	t.Helper()
	var b strings.Builder
	b.WriteString("machines:\n- name: Chain\n  states:\n")
	for i := 1; i <= 9; i++ {
		action := "Next"
		if i == 9 {
			action = "End"
		}
		fmt.Fprintf(&b, "  - name: S%d\n    do_action: example.com/a.%s\n", i, action)
		if i == 1 {
			b.WriteString("    initial: true\n")
		}
		if i == 9 {
			b.WriteString("    final: true\n    exit_action: example.com/a.End\n")
			continue
		}
		fmt.Fprintf(&b, "    transitions:\n    - target: S%d\n      event: next\n", i+1)
	}
	p := filepath.Join(t.TempDir(), "fsm.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(p)
	if s == nil || diags.HasErrors() {
		t.Fatalf("load spec: %v", diags)
	}
	return s
}

// resolveNext resolves Next to an action that returns next, and End to one
// that returns nothing.
func resolveNext(ref string) (fsm.Action, error) {
	event := "next"
	if ref == "example.com/a.End" {
		event = ""
	}
	return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return event, nil }), nil
}

// rig is the function's world on the emulators: an SQS dispatch queue and
// the DynamoDB store's table (DynamoDB Local), a store without chaos to
// start executions and check them, and Lambda's SQS mapping (internal/esm)
// to feed handlers what the queue holds.
type rig struct {
	t     testing.TB
	spec  *spec.Spec
	env   map[string]string
	store *dynamodb.Store
	eng   *engine.Engine
	sqs   *awssqs.Client
	queue string
	// disp is the dispatch the store sends through (no chaos).
	disp *awsdispatch.Dispatch
	// done, if set, must also hold for drain to stop: no execution left
	// running (one stranded is repaired by a scheduled tick).
	done func() bool
}

func newRig(t testing.TB) *rig {
	t.Helper()
	ctx := context.Background()
	dc := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	table := awstest.Name("lfsm-chaos")
	if err := dynamodb.CreateTable(ctx, dc, table); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = dc.DeleteTable(context.Background(), &ddb.DeleteTableInput{TableName: aws.String(table)})
	})
	q, err := sc.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-chaos"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sc.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	attrs, err := sc.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, spec: chainSpec(t), sqs: sc, queue: attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]}
	r.env = map[string]string{
		envDispatch: dispatchSQS, envDispatchARN: r.queue,
		// DynamoDB Local's own ARNs say ddblocal; clients take the region from the ARN.
		envStoreTableARN: "arn:aws:dynamodb:us-east-1:000000000000:table/" + table,
		// A record put off comes back after the bounce delay, at most the lease.
		envLeaseTimeout: "2s",
	}
	d, err := awsdispatch.Open(ctx, awsdispatch.Options{Kind: dispatchSQS, ARN: r.queue})
	if err != nil {
		t.Fatal(err)
	}
	r.disp = d
	if r.store, err = newStore(ctx, r.env[envStoreTableARN], "", "", 0, d.Queue, d.Retrier, nil, false, nil); err != nil {
		t.Fatal(err)
	}
	m, err := engine.Compile(r.spec.Machines[0], resolveNext)
	if err != nil {
		t.Fatal(err)
	}
	if r.eng, err = engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: r.store, Queue: r.store, Retrier: r.store}); err != nil {
		t.Fatal(err)
	}
	return r
}

// start starts n executions of Chain (in batches, without chaos) and
// returns their ids.
func (r *rig) start(n int) []string {
	r.t.Helper()
	var ids []string
	for len(ids) < n {
		var reqs []engine.StartRequest
		for len(ids)+len(reqs) < n && len(reqs) < 100 {
			reqs = append(reqs, engine.StartRequest{Machine: "Chain"})
		}
		got, errs := r.eng.StartMany(context.Background(), reqs)
		for i, err := range errs {
			if err != nil {
				r.t.Fatalf("start: %v", err)
			}
			ids = append(ids, got[i])
		}
	}
	return ids
}

// handler builds the function's handler from the rig's environment plus
// extra, with w's wiring.
func (r *rig) handler(extra map[string]string, meter *awsconfig.Meter, w wiring) *lambdaHandler {
	r.t.Helper()
	getenv := func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return r.env[k]
	}
	h, err := newAWSHandler(context.Background(), r.spec, resolveNext, getenv, slog.New(slog.DiscardHandler), nil, meter, w)
	if err != nil {
		r.t.Fatal(err)
	}
	return &lambdaHandler{h: h}
}

// lambdaHandler is one function instance: Lambda invokes an instance one
// event at a time.
type lambdaHandler struct {
	mu sync.Mutex
	h  interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}
}

func (l *lambdaHandler) Invoke(ctx context.Context, ev []byte) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.h.Invoke(ctx, ev)
}

// chaosSQS fails the mapping's receives and deletes as lfsm dev's does.
type chaosSQS struct {
	esm.SQSAPI
	inj *chaos.Injector
}

func (c chaosSQS) ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error) {
	if err := c.inj.Fail(chaos.OpReceive); err != nil {
		return nil, err
	}
	return c.SQSAPI.ReceiveMessage(ctx, in, opts...)
}

func (c chaosSQS) DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error) {
	if err := c.inj.Fail(chaos.OpAck); err != nil {
		return nil, err
	}
	return c.SQSAPI.DeleteMessageBatch(ctx, in, opts...)
}

// drained is what feeding the handlers did.
type drained struct {
	batches, records, failed int64
}

// drain feeds the queue's messages to the handlers, one mapping poller
// each, until the queue holds nothing visible, delayed or in flight twice
// in a row, or within; client is the mappings' SQS client (chaos on it
// or not). tick, if set, runs about every second while it drains, with the
// records handled so far.
func (r *rig) drain(hs []*lambdaHandler, client esm.SQSAPI, within time.Duration, tick func(records int64)) drained {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var d drained
	var idle atomic.Int32
	var wg sync.WaitGroup
	maps := make([]*esm.Mapping, len(hs))
	for i, h := range hs {
		m, err := esm.New(ctx, esm.Options{Client: client, QueueARN: r.queue, Invoker: h, Wait: time.Second, Visibility: 5 * time.Second,
			OnBatch: func(recs []events.SQSMessage, failed map[string]bool, err error) {
				atomic.AddInt64(&d.batches, 1)
				atomic.AddInt64(&d.records, int64(len(recs)))
				n := 0
				for _, f := range failed {
					if f {
						n++
					}
				}
				if err != nil {
					n = len(recs)
				}
				atomic.AddInt64(&d.failed, int64(n))
			}})
		if err != nil {
			r.t.Fatal(err)
		}
		maps[i] = m
	}
	for _, m := range maps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && idle.Load() < 2 {
				_, _ = m.Poll(ctx) // injected and emulator errors: poll again
			}
		}()
	}
	// The idle check, without chaos on its calls.
	plain, err := esm.New(ctx, esm.Options{Client: r.sqs, QueueARN: r.queue, Invoker: hs[0]})
	if err != nil {
		r.t.Fatal(err)
	}
	next := time.Now()
	for ctx.Err() == nil && idle.Load() < 2 {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(next)):
		}
		next = time.Now().Add(time.Second)
		if tick != nil {
			tick(atomic.LoadInt64(&d.records))
		}
		if ok, err := plain.Idle(ctx); err == nil && ok && (r.done == nil || r.done()) {
			idle.Add(1)
		} else {
			idle.Store(0)
		}
	}
	cancel()
	wg.Wait()
	return d
}

// check returns, for the executions ids, how many are not done, how many
// steps are in a history more than once, and how many are missing from it.
func (r *rig) check(ids []string) (notDone, twice, missing int, firstProblem string) {
	r.t.Helper()
	ctx := context.Background()
	note := func(format string, args ...any) {
		if firstProblem == "" {
			firstProblem = fmt.Sprintf(format, args...)
		}
	}
	for _, id := range ids {
		x, err := r.store.Get(ctx, id)
		if err != nil {
			r.t.Fatal(err)
		}
		if x.Status != engine.StatusDone {
			notDone++
			note("%s is %s", id, x.Status)
		}
		h, err := r.store.History(ctx, id)
		if err != nil {
			r.t.Fatal(err)
		}
		seen := map[int]int{}
		for _, e := range h {
			seen[e.Step]++
		}
		for step := range chainSteps {
			switch n := seen[step]; {
			case n == 0:
				missing++
				note("%s: step %d is not in the history", id, step)
			case n > 1:
				twice++
				note("%s: step %d is in the history %d times", id, step, n)
			}
		}
	}
	return notDone, twice, missing, firstProblem
}

// TestHandlerUnderChaos: the function's handler with chaos on its AWS
// backends by name (LFSM_FUNCTION_CHAOS: the store's acquire and batched
// commit, the queue's sends and visibility changes), fed by Lambda's SQS
// mapping on the emulators: records that meet an injected failure are
// reported, not acknowledged, and come back; every execution finishes,
// each step once in its history; only the named operations fail.
func TestHandlerUnderChaos(t *testing.T) {
	r := newRig(t)
	ids := r.start(10)
	const spec = "dynamodb.Acquire=0.2,dynamodb.CommitSteps=0.2,sqs.SendBatch=0.2,sqs.Send=0.2,sqs.ChangeVisibility=0.2"
	c, err := config.ParseChaos(spec)
	if err != nil {
		t.Fatal(err)
	}
	inj := chaos.New(c.Config(7))
	hs := []*lambdaHandler{r.handler(nil, nil, wiring{chaos: inj}), r.handler(nil, nil, wiring{chaos: inj})}
	d := r.drain(hs, r.sqs, 3*time.Minute, nil)
	rep := inj.Report()
	t.Logf("%d batches, %d records, %d reported; chaos: %d of %d calls failed", d.batches, d.records, d.failed, rep.Failures, rep.Calls)
	if rep.Failures == 0 || d.failed == 0 {
		t.Errorf("%d injected failures, %d records reported: want some of each", rep.Failures, d.failed)
	}
	for _, o := range rep.Ops {
		if o.Failures > 0 && !strings.Contains(spec, o.Op+"=") {
			t.Errorf("%s failed %d times: not in the chaos setting", o.Op, o.Failures)
		}
	}
	if notDone, twice, missing, first := r.check(ids); notDone+twice+missing > 0 {
		t.Errorf("%d not done, %d steps twice, %d missing; first: %s", notDone, twice, missing, first)
	}
}

// TestHandlerChaosFromEnvironment: awsHandler reads LFSM_FUNCTION_CHAOS and
// writes its counts to LFSM_FUNCTION_CHAOS_REPORT after each invocation,
// as lfsm dev reads them.
func TestHandlerChaosFromEnvironment(t *testing.T) {
	r := newRig(t)
	r.start(1)
	report := filepath.Join(t.TempDir(), "r.json")
	env := map[string]string{envChaos: "dynamodb.Acquire=1", envChaosSeed: "1", envChaosReport: report}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return r.env[k]
	}
	h, err := awsHandler(context.Background(), r.spec, resolveNext, getenv, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := esm.New(t.Context(), esm.Options{Client: r.sqs, QueueARN: r.queue, Invoker: h, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if n, _ := m.Poll(t.Context()); n > 0 {
			break
		}
	}
	got, err := chaos.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]int{}
	for _, o := range got.Ops {
		failed[o.Op] = o.Failures
	}
	if got.Failures != 1 || failed["dynamodb.Acquire"] != 1 {
		t.Errorf("report = %+v, want one failed dynamodb.Acquire", got)
	}
}

package host

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/ddbstream"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/failover"
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	awsdispatch "github.com/lfsm/lfsm/internal/dispatch"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/spec"
)

// primarySwitch is the primary's queue (or retrier) behind a switch: off,
// calls reach it; down, the chaos wrapper fails every call before it does
// (kind.Send at 100 %); ambiguous, the call is made and then reported
// failed (the write applied, the response lost).
type primarySwitch struct {
	mode    atomic.Value // "ok", "down", "ambiguous"
	q       engine.Queue
	r       engine.Retrier
	chaosQ  engine.Queue
	chaosR  engine.Retrier
	reached atomic.Int64 // calls that reached the primary
}

func (p *primarySwitch) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	switch p.mode.Load() {
	case "down":
		return p.chaosQ.Send(ctx, m)
	case "ambiguous":
		if _, err := p.q.Send(ctx, m); err != nil {
			return "", err
		}
		p.reached.Add(1)
		return "", errors.New("read tcp: connection reset by peer (after the message was stored)")
	}
	r, err := p.q.Send(ctx, m)
	if err == nil {
		p.reached.Add(1)
	}
	return r, err
}

type primaryRetrier struct{ p *primarySwitch }

func (r primaryRetrier) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	switch r.p.mode.Load() {
	case "down":
		return r.p.chaosR.ScheduleRetry(ctx, m)
	case "ambiguous":
		if err := r.p.r.ScheduleRetry(ctx, m); err != nil {
			return err
		}
		return errors.New("read tcp: connection reset by peer (after the retry was stored)")
	}
	return r.p.r.ScheduleRetry(ctx, m)
}

type failoverCount struct{ n atomic.Int64 }

func (c *failoverCount) Add(k engine.MetricKey, n int64) {
	if k.Name == failover.MetricFailover {
		c.n.Add(n)
	}
}

// seedEngineSpec is the seed's Example (examples/seed/fsm.yaml) with
// stand-ins for its actions: the do actions of the first two states return
// done, every other action nothing.
func seedEngineSpec(t testing.TB) (*spec.Spec, engine.Resolver) {
	t.Helper()
	s, diags := spec.Load(filepath.Join("..", "..", "examples", "seed", "fsm.yaml"))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return s, func(ref string) (fsm.Action, error) {
		event := ""
		if ref == "github.com/lfsm/lfsm/examples/seed/actions.Action2" || ref == "github.com/lfsm/lfsm/examples/seed/actions.Action5" {
			event = "done"
		}
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return event, nil }), nil
	}
}

// pair is a dispatch pair on the emulators: the environment that names it
// to the function, and a poll of both sources as lfsm dev plays their
// event source mappings.
type pair struct {
	kind string
	env  map[string]string
	poll func(ctx context.Context, inv esm.Invoker) (func(context.Context) error, error)
}

func tableARN(name string) string {
	return "arn:aws:dynamodb:" + os.Getenv("AWS_REGION") + ":000000000000:table/" + name
}

func newTable(t testing.TB, c *ddb.Client, prefix string, create func(context.Context, *ddb.Client, string) error) string {
	t.Helper()
	name := awstest.Name(prefix)
	if err := create(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

func sqsPair(t testing.TB) pair {
	c := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	var arns []string
	for _, role := range []string{"primary", "secondary"} {
		out, err := c.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-fo-" + role)),
			Attributes: map[string]string{"VisibilityTimeout": "2"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = c.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
		})
		a, err := c.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, a.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])
	}
	return pair{kind: "sqs", env: map[string]string{envDispatch: "sqs", envDispatchARN: arns[0], envSecondaryDispatchARN: arns[1]},
		poll: func(ctx context.Context, inv esm.Invoker) (func(context.Context) error, error) {
			var ms []*esm.Mapping
			for _, arn := range arns {
				m, err := esm.New(ctx, esm.Options{Client: c, QueueARN: arn, Invoker: inv, Wait: 100 * time.Millisecond})
				if err != nil {
					return nil, err
				}
				ms = append(ms, m)
			}
			return func(ctx context.Context) error {
				var errs []error
				for _, m := range ms {
					_, err := m.Poll(ctx)
					errs = append(errs, err)
				}
				return errors.Join(errs...)
			}, nil
		}}
}

func kinesisPair(t testing.TB) pair {
	c := awskinesis.NewFromConfig(awstest.Config(t, "KINESIS", nil))
	dc := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	var arns []string
	for _, role := range []string{"primary", "secondary"} {
		name := awstest.Name("lfsm-fo-" + role)
		if _, err := c.CreateStream(t.Context(), &awskinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = c.DeleteStream(context.WithoutCancel(t.Context()), &awskinesis.DeleteStreamInput{StreamName: &name})
		})
		out, err := awskinesis.NewStreamExistsWaiter(c, func(o *awskinesis.StreamExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond }).
			WaitForOutput(t.Context(), &awskinesis.DescribeStreamInput{StreamName: &name}, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		arns = append(arns, aws.ToString(out.StreamDescription.StreamARN))
	}
	retries := newTable(t, dc, "lfsm-fo-retries", dynamodb.CreateRetryTable)
	retries2 := newTable(t, dc, "lfsm-fo-retries2", dynamodb.CreateRetryTable)
	return pair{kind: "kinesis", env: map[string]string{envDispatch: "kinesis", envDispatchARN: arns[0], envSecondaryDispatchARN: arns[1],
		envRetryTableARN: tableARN(retries), envSecondaryRetryTableARN: tableARN(retries2)},
		poll: func(ctx context.Context, inv esm.Invoker) (func(context.Context) error, error) {
			var rs []*kinesis.Reader
			for _, arn := range arns {
				r, err := kinesis.NewReader(kinesis.ReaderOptions{Client: c, ARN: arn, Invoker: inv, Pause: 100 * time.Millisecond, MaxRetries: -1})
				if err != nil {
					return nil, err
				}
				rs = append(rs, r)
			}
			return func(ctx context.Context) error {
				var errs []error
				for _, r := range rs {
					_, err := r.Poll(ctx)
					errs = append(errs, err)
				}
				return errors.Join(errs...)
			}, nil
		}}
}

func streamPair(t testing.TB) pair {
	dc := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	var tables, streamARNs []string
	for _, role := range []string{"primary", "secondary"} {
		var arn string
		name := newTable(t, dc, "lfsm-fo-"+role, func(ctx context.Context, c *ddb.Client, n string) (err error) {
			arn, err = dynamodb.CreateStreamTable(ctx, c, n)
			return err
		})
		tables, streamARNs = append(tables, tableARN(name)), append(streamARNs, arn)
	}
	retries := newTable(t, dc, "lfsm-fo-retries", dynamodb.CreateRetryTable)
	retries2 := newTable(t, dc, "lfsm-fo-retries2", dynamodb.CreateRetryTable)
	sc := streams.NewFromConfig(awstest.Config(t, "DYNAMODB_STREAMS", nil))
	return pair{kind: "dynamodb", env: map[string]string{envDispatch: "dynamodb", envDispatchARN: tables[0], envSecondaryDispatchARN: tables[1],
		envRetryTableARN: tableARN(retries), envSecondaryRetryTableARN: tableARN(retries2)},
		poll: func(ctx context.Context, inv esm.Invoker) (func(context.Context) error, error) {
			var rs []*ddbstream.Reader
			for _, arn := range streamARNs {
				r, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: inv, Pause: 100 * time.Millisecond, MaxRetries: -1})
				if err != nil {
					return nil, err
				}
				rs = append(rs, r)
			}
			return func(ctx context.Context) error {
				var errs []error
				for _, r := range rs {
					_, err := r.Poll(ctx)
					errs = append(errs, err)
				}
				return errors.Join(errs...)
			}, nil
		}}
}

// TestFailoverThroughTheFunction runs the seed's Example through the
// function's handler as awsHandler builds it from the environment (with a
// secondary dispatch, and a secondary retry table where the dispatch has
// one), fed by both sources as lfsm dev --target aws polls them, once per
// dispatch pair: with the primary's sends failing at 100 % (the chaos
// wrapper) every execution still finishes, through the secondary, and the
// primary takes none; with every send to the primary ambiguous (stored, the
// response lost) every message travels both ways and each step still runs
// once; with the primary healthy again (after the cool-down), new
// executions go back to it and none fails over.
func TestFailoverThroughTheFunction(t *testing.T) {
	for _, mk := range []func(testing.TB) pair{sqsPair, kinesisPair, streamPair} {
		p := mk(t)
		t.Run(p.kind, func(t *testing.T) {
			dc := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
			store := newTable(t, dc, "lfsm-fo-store", dynamodb.CreateTable)
			env := map[string]string{envStoreTableARN: tableARN(store), envLeaseTimeout: "5s"}
			for k, v := range p.env {
				env[k] = v
			}
			inj := chaos.New(chaos.Config{Ops: map[string]float64{p.kind + "." + chaos.OpSend: 1, p.kind + "." + chaos.OpScheduleRetry: 1,
				"dynamodb." + chaos.OpScheduleRetry: 1}})
			clock := storetest.NewClock(time.Now())
			counts := &failoverCount{}
			// One switch per side opened: the function's and the starter's
			// dispatch are opened apart, as in a deployment.
			var mu sync.Mutex
			var switches []*primarySwitch
			hook := func(o *awsdispatch.Options) {
				sw := &primarySwitch{}
				sw.mode.Store("down")
				mu.Lock()
				switches = append(switches, sw)
				mu.Unlock()
				o.WrapQueue = func(secondary bool, q engine.Queue) engine.Queue {
					if secondary {
						return q
					}
					sw.q, sw.chaosQ = q, inj.For(p.kind).Queue(q)
					return sw
				}
				o.WrapRetrier = func(secondary bool, r engine.Retrier) engine.Retrier {
					if secondary {
						return r
					}
					backend := p.kind
					if _, table := r.(*dynamodb.RetryTable); table {
						backend = "dynamodb"
					}
					sw.r, sw.chaosR = r, inj.For(backend).Retrier(r)
					return primaryRetrier{sw}
				}
				o.Failover.Clock, o.Failover.Metrics = clock.Now, counts
			}
			dispatchHook = hook
			t.Cleanup(func() { dispatchHook = nil })
			setMode := func(m string) {
				mu.Lock()
				defer mu.Unlock()
				for _, sw := range switches {
					sw.mode.Store(m)
				}
			}
			reached := func() int64 {
				mu.Lock()
				defer mu.Unlock()
				var n int64
				for _, sw := range switches {
					n += sw.reached.Load()
				}
				return n
			}
			s, resolve := seedEngineSpec(t)
			getenv := func(k string) string { return env[k] }
			h, err := awsHandler(t.Context(), s, resolve, getenv, slog.New(slog.DiscardHandler), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			poll, err := p.poll(t.Context(), h)
			if err != nil {
				t.Fatal(err)
			}
			// The starter: lfsm start's path, the store sending through the
			// paired dispatch.
			so := dispatchOptions(getenv, nil)
			hook(&so)
			d, err := awsdispatch.Open(t.Context(), so)
			if err != nil {
				t.Fatal(err)
			}
			st, err := dynamodb.New(dynamodb.Options{Client: dc, Table: store, Queue: d.Queue, Retrier: d.Retrier})
			if err != nil {
				t.Fatal(err)
			}
			var machines []*engine.Machine
			for _, m := range s.Machines {
				cm, err := engine.Compile(m, resolve)
				if err != nil {
					t.Fatal(err)
				}
				machines = append(machines, cm)
			}
			starter, err := engine.New(engine.Options{Machines: machines, Store: st, Queue: st, Retrier: st})
			if err != nil {
				t.Fatal(err)
			}
			run := func(t *testing.T) []string {
				t.Helper()
				ids := make([]string, 3)
				for i := range ids {
					if ids[i], err = starter.Start(t.Context(), engine.StartRequest{Machine: "Example", Context: map[string]any{"arg1": 1}}); err != nil {
						t.Fatal(err)
					}
				}
				deadline := time.Now().Add(2 * time.Minute)
				for {
					left := 0
					for _, id := range ids {
						x, err := st.Get(t.Context(), id)
						if err != nil {
							t.Fatal(err)
						}
						if x.Status != engine.StatusDone {
							left++
						}
					}
					if left == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%d of %d executions not done after two minutes", left, len(ids))
					}
					if err := poll(t.Context()); err != nil {
						t.Logf("poll: %v", err)
					}
					if _, err := h.Invoke(t.Context(), []byte(scheduledEvent)); err != nil {
						t.Logf("scheduled invocation: %v", err)
					}
				}
				for _, id := range ids {
					hist, err := st.History(t.Context(), id)
					if err != nil {
						t.Fatal(err)
					}
					var steps []int
					for _, e := range hist {
						steps = append(steps, e.Step)
					}
					slices.Sort(steps)
					if !slices.Equal(steps, []int{0, 1, 2, 3}) {
						t.Errorf("%s: steps %v in the history, want 0, 1, 2, 3 each once (λ1, λ2, λ4, λ5)", id, steps)
					}
				}
				return ids
			}
			t.Run("primary down", func(t *testing.T) {
				run(t)
				if n := reached(); n != 0 || counts.n.Load() == 0 {
					t.Errorf("the primary took %d calls and %d failed over; want none and some", n, counts.n.Load())
				}
				if calls, failures := inj.Stats(); failures[p.kind+"."+chaos.OpSend] == 0 {
					t.Errorf("no injected failure of %s.Send: %v of %v", p.kind, failures, calls)
				}
			})
			t.Run("ambiguous", func(t *testing.T) {
				setMode("ambiguous")
				clock.Advance(failover.DefaultCooldown) // the breaker tries the primary again
				before := counts.n.Load()
				run(t)
				if reached() == 0 || counts.n.Load() == before {
					t.Errorf("the primary took %d calls and %d failed over; want both (every message went both ways)", reached(), counts.n.Load()-before)
				}
			})
			t.Run("primary back", func(t *testing.T) {
				setMode("ok")
				clock.Advance(failover.DefaultCooldown)
				before, took := counts.n.Load(), reached()
				run(t)
				if counts.n.Load() != before || reached() == took {
					t.Errorf("%d failed over, the primary took %d calls; want none and every one", counts.n.Load()-before, reached()-took)
				}
			})
		})
	}
}

// scheduledEvent is the every-minute rule's event: the retry tables' poll
// and the repair.
const scheduledEvent = `{"version":"0","id":"lfsm-test","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","region":"us-east-1","resources":[],"detail":{}}`

// TestLeaseCacheFailoverThroughTheFunction: the function with a primary
// lease cache that cannot be reached (LFSM_AWS_LEASE_CACHE on a closed
// port) and a secondary (LFSM_AWS_SECONDARY_LEASE_CACHE, memcached) runs
// the seed's Example to the end: each execution's lease store is switched
// to the secondary (fenced, by the epoch on its item) and its steps are in
// its history once each.
func TestLeaseCacheFailoverThroughTheFunction(t *testing.T) {
	p := sqsPair(t)
	dc := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	store := newTable(t, dc, "lfsm-fo-store", dynamodb.CreateTable)
	secondary := "memcached://" + awstest.Addr(t, "MEMCACHED_ADDR")
	env := map[string]string{envStoreTableARN: tableARN(store), envLeaseTimeout: "5s", envDispatch: "sqs", envDispatchARN: p.env[envDispatchARN],
		envLeaseCache: "redis://127.0.0.1:1", envSecondaryLeaseCache: secondary}
	getenv := func(k string) string { return env[k] }
	s, resolve := seedEngineSpec(t)
	h, err := awsHandler(t.Context(), s, resolve, getenv, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	poll, err := p.poll(t.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	d, err := awsdispatch.Open(t.Context(), dispatchOptions(getenv, nil))
	if err != nil {
		t.Fatal(err)
	}
	st, err := newStore(t.Context(), tableARN(store), env[envLeaseCache], secondary, 0, d.Queue, d.Retrier, nil, d.TransactCommit, nil)
	if err != nil {
		t.Fatal(err)
	}
	var machines []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, resolve)
		if err != nil {
			t.Fatal(err)
		}
		machines = append(machines, cm)
	}
	starter, err := engine.New(engine.Options{Machines: machines, Store: st, Queue: st, Retrier: st})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 3)
	for i := range ids {
		if ids[i], err = starter.Start(t.Context(), engine.StartRequest{Machine: "Example", Context: map[string]any{"arg1": 1}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for _, id := range ids {
			x, err := st.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != engine.StatusDone {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d executions not done after two minutes", left, len(ids))
		}
		if err := poll(t.Context()); err != nil {
			t.Logf("poll: %v", err)
		}
	}
	for _, id := range ids {
		hist, err := st.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var steps []int
		for _, e := range hist {
			steps = append(steps, e.Step)
			if e.Fence>>leasecache.EpochShift == 0 {
				t.Errorf("%s step %d committed with fence %d of epoch 0: not the switch's", id, e.Step, e.Fence)
			}
		}
		slices.Sort(steps)
		if !slices.Equal(steps, []int{0, 1, 2, 3}) {
			t.Errorf("%s: steps %v in the history, want 0, 1, 2, 3 each once", id, steps)
		}
	}
}

// BenchmarkFailoverCalls counts the function's AWS calls per transition
// with a healthy primary, with and without a secondary dispatch (and retry
// table), on each dispatch pair: the seed's Example, 10 executions of 4
// transitions, wired by awsHandler and fed as lfsm dev feeds it. Counts,
// not times:
//
//	go test -run '^$' -bench FailoverCalls -benchtime=1x ./fsm/host
func BenchmarkFailoverCalls(b *testing.B) {
	for _, mk := range []func(testing.TB) pair{sqsPair, kinesisPair, streamPair} {
		for _, withSecondary := range []bool{false, true} {
			p := mk(b)
			name := p.kind + "/primary-only"
			if withSecondary {
				name = p.kind + "/with-secondary"
			}
			b.Run(name, func(b *testing.B) {
				for range b.N {
					benchFailoverCalls(b, p, withSecondary)
				}
			})
		}
	}
}

func benchFailoverCalls(b *testing.B, p pair, withSecondary bool) {
	dc := ddb.NewFromConfig(awstest.Config(b, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	store := newTable(b, dc, "lfsm-fo-bench", dynamodb.CreateTable)
	env := map[string]string{envStoreTableARN: tableARN(store)}
	for k, v := range p.env {
		if !withSecondary && (k == envSecondaryDispatchARN || k == envSecondaryRetryTableARN) {
			continue
		}
		env[k] = v
	}
	getenv := func(k string) string { return env[k] }
	s, resolve := seedEngineSpec(b)
	meter := &awsconfig.Meter{}
	h, err := awsHandler(b.Context(), s, resolve, getenv, slog.New(slog.DiscardHandler), nil, meter)
	if err != nil {
		b.Fatal(err)
	}
	poll, err := p.poll(b.Context(), h)
	if err != nil {
		b.Fatal(err)
	}
	d, err := awsdispatch.Open(b.Context(), dispatchOptions(getenv, nil))
	if err != nil {
		b.Fatal(err)
	}
	st, err := dynamodb.New(dynamodb.Options{Client: dc, Table: store, Queue: d.Queue, Retrier: d.Retrier})
	if err != nil {
		b.Fatal(err)
	}
	var machines []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, resolve)
		if err != nil {
			b.Fatal(err)
		}
		machines = append(machines, cm)
	}
	starter, err := engine.New(engine.Options{Machines: machines, Store: st, Queue: st, Retrier: st})
	if err != nil {
		b.Fatal(err)
	}
	const n, transitions = 10, 4
	ids := make([]string, n)
	for i := range ids {
		if ids[i], err = starter.Start(b.Context(), engine.StartRequest{Machine: "Example", Context: map[string]any{"arg1": 1}}); err != nil {
			b.Fatal(err)
		}
	}
	meter.Reset()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		left := 0
		for _, id := range ids {
			x, err := st.Get(b.Context(), id)
			if err != nil {
				b.Fatal(err)
			}
			if x.Status != engine.StatusDone {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d executions not done after two minutes", left)
		}
		if err := poll(b.Context()); err != nil {
			b.Logf("poll: %v", err)
		}
	}
	b.ReportMetric(float64(meter.Calls())/(n*transitions), "calls/transition")
	b.Logf("%v", meter.Ops())
}

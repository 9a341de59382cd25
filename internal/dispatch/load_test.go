package dispatch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
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
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// chain is a machine of steps messages, each step sending the next.
// meterOf returns the optional meter of m.
func meterOf(m []*awsconfig.Meter) *awsconfig.Meter {
	if len(m) == 0 {
		return nil
	}
	return m[0]
}

func chain(t testing.TB, steps int) *engine.Machine {
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

// faultyStore is the DynamoDB store behind the chaos wrapper, still one
// value that is the engine's Store, Queue, Retrier and StepCommitter (so the
// engine takes the AWS path: commit, then send).
type faultyStore struct {
	engine.Store
	sc    engine.StepCommitter
	inner *dynamodb.Store
}

func (f *faultyStore) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	return f.sc.CommitStep(ctx, c, out, ack)
}
func (f *faultyStore) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return f.inner.Send(ctx, m)
}
func (f *faultyStore) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	return f.inner.ScheduleRetry(ctx, m)
}

// faultyFunction fails a share of invocations before the handler runs, as a
// crashed or timed-out function does: the batch comes back.
type faultyFunction struct {
	h        *lambda.Handler
	mu       sync.Mutex
	rnd      *rand.Rand
	p        float64
	calls    int
	failures int
}

func (f *faultyFunction) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	f.mu.Lock()
	f.calls++
	fail := f.rnd.Float64() < f.p
	if fail {
		f.failures++
	}
	f.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("injected function failure")
	}
	return f.h.Invoke(ctx, event)
}

type done struct{ left atomic.Int64 }

func (d *done) Add(k engine.MetricKey, n int64) {
	if k.Name == engine.MetricDone {
		d.left.Add(-n)
	}
}

// loadSize is the load test's size: 200 executions of 10 steps, or
// LFSM_LOAD_EXECUTIONS executions.
func loadSize(t *testing.T) (executions, steps int) {
	executions, steps = 200, 10
	if v := os.Getenv("LFSM_LOAD_EXECUTIONS"); v != "" {
		if _, err := fmt.Sscan(v, &executions); err != nil || executions <= 0 {
			t.Fatalf("LFSM_LOAD_EXECUTIONS=%q: want a positive number", v)
		}
	}
	return executions, steps
}

func ddbClient(t testing.TB, m ...*awsconfig.Meter) *ddb.Client {
	return ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", meterOf(m)), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
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

// rig is one dispatch on the emulators: the queue the store sends to, the
// retry table (nil on SQS), and the event source mapping that feeds an
// invoker.
type rig struct {
	queue engine.Queue
	// start, if set, is where executions are started (other publishers:
	// the sns-sqs dispatch's topic); else queue.
	start   engine.Queue
	retries *dynamodb.RetryTable
	visib   lambda.VisibilityChanger
	// pollers is how many polls may run at once in the load test (Lambda's
	// SQS mapping starts with five; SNS invokes at once; a stream's reader
	// reads each shard in order, one); 0 means 1.
	pollers int
	// tx: the store commits in a transaction, as fsm/host has it on this
	// dispatch (dispatch.Dispatch.TransactCommit).
	tx   bool
	poll func(ctx context.Context, inv interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}) (func(context.Context) error, error)
}

// queueVisibility is the rigs' queues' visibility timeout: longer than a
// batch takes on a loaded machine (Lambda wants six times the function's
// timeout), so that a message is not delivered again while its first
// delivery is still running; it is how long a message whose invocation
// failed waits before it comes back. With 2 s, five pollers on a loaded
// machine redelivered batches still in flight, whose acquires then found
// the lease held and bounced them: 3.6 acquires per step, and four times
// the wall time.
const queueVisibility = "10"

func sqsRig(t testing.TB, m ...*awsconfig.Meter) rig {
	c := awssqs.NewFromConfig(awstest.Config(t, "SQS", meterOf(m)))
	pc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	out, err := c.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-load")),
		Attributes: map[string]string{"VisibilityTimeout": queueVisibility}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	attrs, err := c.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	q, err := sqs.New(t.Context(), sqs.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	return rig{queue: q, visib: sqs.NewVisibility(c), pollers: 5, poll: func(ctx context.Context, inv interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}) (func(context.Context) error, error) {
		m, err := esm.New(ctx, esm.Options{Client: pc, QueueARN: arn, Invoker: inv, Wait: 100 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { _, err := m.Poll(ctx); return err }, nil
	}}
}

func retryTable(t testing.TB, q engine.Queue, m ...*awsconfig.Meter) *dynamodb.RetryTable {
	c := ddbClient(t, m...)
	name := newTable(t, c, "lfsm-load-retry", dynamodb.CreateRetryTable)
	r, err := dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: c, Table: name, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func kinesisRig(t testing.TB, m ...*awsconfig.Meter) rig {
	c := awskinesis.NewFromConfig(awstest.Config(t, "KINESIS", meterOf(m)))
	pc := awskinesis.NewFromConfig(awstest.Config(t, "KINESIS", nil))
	name := awstest.Name("lfsm-load")
	if _, err := c.CreateStream(t.Context(), &awskinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(4)}); err != nil {
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
	arn := aws.ToString(out.StreamDescription.StreamARN)
	s, err := kinesis.New(t.Context(), kinesis.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	return rig{queue: s, retries: retryTable(t, s, m...), poll: func(ctx context.Context, inv interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}) (func(context.Context) error, error) {
		r, err := kinesis.NewReader(kinesis.ReaderOptions{Client: pc, ARN: arn, Invoker: inv, Pause: 200 * time.Millisecond, MaxRetries: -1})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { _, err := r.Poll(ctx); return err }, nil
	}}
}

func streamRig(t testing.TB, m ...*awsconfig.Meter) rig {
	c := ddbClient(t, m...)
	var arn string
	name := newTable(t, c, "lfsm-load-dispatch", func(ctx context.Context, c *ddb.Client, n string) (err error) {
		arn, err = dynamodb.CreateStreamTable(ctx, c, n)
		return err
	})
	q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	sc := streams.NewFromConfig(awstest.Config(t, "DYNAMODB_STREAMS", nil))
	return rig{queue: q, retries: retryTable(t, q, m...), poll: func(ctx context.Context, inv interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}) (func(context.Context) error, error) {
		r, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: inv, Pause: 200 * time.Millisecond, MaxRetries: -1})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { _, err := r.Poll(ctx); return err }, nil
	}}
}

// TestLoadWithFaults runs 200 executions of 10 steps at once through each
// dispatch on the emulators, with 10% of the store's calls, the dispatch's
// sends and the function's invocations failing: every execution finishes,
// every step is in its history exactly once, and nothing is left stranded.
// Skipped with -short; LFSM_LOAD_EXECUTIONS makes it smaller.
func TestLoadWithFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	for _, tc := range []struct {
		name string
		rig  func(testing.TB, ...*awsconfig.Meter) rig
	}{
		{"sqs", sqsRig},
		{"sns-sqs", snsSQSRig},
		{"sns", snsRig},
		{"kinesis", kinesisRig},
		{"dynamodb", streamRig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			executions, steps := loadSize(t)
			r := tc.rig(t)
			inj := chaos.New(chaos.Config{Default: 0.1, Rand: rand.New(rand.NewPCG(1, uint64(len(tc.name))))})
			c := ddbClient(t)
			storeName := newTable(t, c, "lfsm-load-store", dynamodb.CreateTable)
			// Sends fail too, except the DynamoDB stream's, which are part of
			// the commit (whose faults are CommitStep's).
			q := r.queue
			var retrier engine.Retrier
			if r.retries != nil {
				retrier = inj.Retrier(r.retries)
			}
			if _, isItem := q.(dynamodb.ItemSender); !isItem {
				q = inj.Queue(q)
				if r.retries == nil {
					retrier = inj.Retrier(r.queue.(engine.Retrier))
				}
			} else {
				retrier = r.retries // the retry rides in the commit's transaction too
			}
			inner, err := dynamodb.New(dynamodb.Options{Client: c, Table: storeName, Queue: q, Retrier: retrier, TransactCommit: r.tx})
			if err != nil {
				t.Fatal(err)
			}
			wrapped := inj.Store(inner)
			fs := &faultyStore{Store: wrapped, sc: wrapped.(engine.StepCommitter), inner: inner}
			d := &done{}
			d.left.Store(int64(executions))
			m := chain(t, steps)
			eng, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: fs, Queue: fs, Retrier: fs,
				Metrics: d, LeaseTimeout: 2 * time.Second, MaxMessageBytes: dynamodb.MaxCheckpointBytes})
			if err != nil {
				t.Fatal(err)
			}
			ho := lambda.Options{Engine: eng, Store: fs, Retrier: retrier, BounceDelay: time.Second}
			if r.visib != nil {
				ho.Visibility = r.visib
			}
			h, err := lambda.New(ho)
			if err != nil {
				t.Fatal(err)
			}
			fn := &faultyFunction{h: h, rnd: rand.New(rand.NewPCG(3, 4)), p: 0.1}
			poll, err := r.poll(t.Context(), fn)
			if err != nil {
				t.Fatal(err)
			}
			// Starts go through a store without faults: a start that fails
			// half way is the repair's business, tested elsewhere.
			var cleanRetrier engine.Retrier = r.retries
			if r.retries == nil {
				cleanRetrier = r.queue.(engine.Retrier)
			}
			startQueue := r.queue
			if r.start != nil {
				startQueue = r.start
			}
			clean, err := dynamodb.New(dynamodb.Options{Client: c, Table: storeName, Queue: startQueue, Retrier: cleanRetrier})
			if err != nil {
				t.Fatal(err)
			}
			starter, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: clean, Queue: clean, Retrier: clean})
			if err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			ids := make([]string, executions)
			var wg sync.WaitGroup
			errs := make(chan error, executions)
			for i := range ids {
				wg.Go(func() {
					id, err := starter.Start(t.Context(), engine.StartRequest{Machine: "chain"})
					ids[i] = id
					if err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Minute)
			lastRepair := time.Now()
			// When half, 90% and all but one of the executions were done:
			// where the wall time goes.
			var marks []string
			for _, share := range []float64{0.5, 0.9} {
				marks = append(marks, fmt.Sprintf("%.0f%%", share*100))
			}
			var at [3]time.Duration
			mark := func() {
				doneN := int64(executions) - d.left.Load()
				for i, n := range []int64{int64(executions) / 2, int64(executions) * 9 / 10, int64(executions) - 1} {
					if at[i] == 0 && doneN >= n {
						at[i] = time.Since(began)
					}
				}
			}
			// The mapping's pollers beside the first, each polling until
			// every execution is done.
			var pollers sync.WaitGroup
			pctx, stop := context.WithCancel(t.Context())
			for range r.pollers - 1 {
				pollers.Go(func() {
					for d.left.Load() > 0 && pctx.Err() == nil {
						if err := poll(pctx); err != nil && pctx.Err() == nil {
							t.Logf("poll: %v", err)
						}
					}
				})
			}
			defer pollers.Wait()
			defer stop()
			for d.left.Load() > 0 {
				mark()
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d executions not done after 10 minutes", d.left.Load(), executions)
				}
				if err := poll(t.Context()); err != nil {
					t.Logf("poll: %v", err) // an injected failure of a bounce, say: the mapping goes on
				}
				if r.retries != nil {
					if _, err := r.retries.Poll(t.Context(), time.Now().Add(time.Minute)); err != nil {
						t.Logf("retry poll: %v", err)
					}
				}
				if time.Since(lastRepair) > 10*time.Second {
					if _, err := starter.Repair(t.Context(), engine.RepairOptions{Grace: 10 * time.Second}); err != nil {
						t.Logf("repair: %v", err)
					}
					lastRepair = time.Now()
				}
			}
			wall := time.Since(began)
			stop()
			pollers.Wait()
			mark()
			_ = marks
			t.Logf("%s: half done after %s, 90%% after %s, all but one after %s", tc.name,
				at[0].Round(100*time.Millisecond), at[1].Round(100*time.Millisecond), at[2].Round(100*time.Millisecond))
			var bad []string
			for _, id := range ids {
				x, err := clean.Get(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				hist, err := clean.History(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, e := range hist {
					got = append(got, e.Step)
				}
				sort.Ints(got)
				want := make([]int, steps)
				for i := range want {
					want[i] = i
				}
				if x.Status != engine.StatusDone || !slices.Equal(got, want) {
					bad = append(bad, fmt.Sprintf("%s %s steps %v", id, x.Status, got))
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d executions not done with every step once:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
			}
			stranded, err := clean.Stranded(t.Context(), engine.StrandedQuery{Now: time.Now().Add(time.Hour), Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(stranded) > 0 {
				t.Errorf("%d executions stranded", len(stranded))
			}
			calls, failures := inj.Stats()
			total, failed := 0, 0
			for op, n := range calls {
				total += n
				failed += failures[op]
			}
			t.Logf("%s: %d executions x %d steps in %s; injected %d of %d backend calls (%v) and %d of %d invocations",
				tc.name, executions, steps, wall.Round(100*time.Millisecond), failed, total, failures, fn.failures, fn.calls)
		})
	}
}

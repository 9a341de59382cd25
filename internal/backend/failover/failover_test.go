package failover_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/failover"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/sendbatch"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// switchable is a primary whose chaos can be turned off: calls go through
// the chaos wrapper while on, straight to the queue when off.
type switchable struct {
	on           atomic.Bool
	chaos, plain engine.Queue
	sent         atomic.Int64 // sends that reached the queue
}

func (s *switchable) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	q := s.plain
	if s.on.Load() {
		q = s.chaos
	}
	r, err := q.Send(ctx, m)
	if err == nil {
		s.sent.Add(1)
	}
	return r, err
}

func newSwitchable(q engine.Queue, inj *chaos.Injector) *switchable {
	s := &switchable{chaos: inj.Queue(q), plain: q}
	s.on.Store(true)
	return s
}

type counter struct {
	mu sync.Mutex
	n  map[string]int64
}

func (c *counter) Add(k engine.MetricKey, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int64{}
	}
	c.n[k.Name+"/"+k.Event] += n
}

func (c *counter) get(k string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

// TestQueueBreaker: with the primary failing every call, the first
// Threshold sends try it and go to the secondary; then the primary is
// skipped until the cool-down ends, tried once, skipped again; with its
// failures over, sends go back to it.
func TestQueueBreaker(t *testing.T) {
	ctx := t.Context()
	clock := storetest.NewClock(storetest.T0)
	inj := chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpSend: 1}})
	primary, secondary := memory.New(memory.Options{}), memory.New(memory.Options{})
	sw := newSwitchable(primary, inj)
	m := &counter{}
	q := failover.NewQueue(sw, secondary, failover.Options{Threshold: 2, Cooldown: time.Minute, Clock: clock.Now, Metrics: m})
	send := func() {
		t.Helper()
		if _, err := q.Send(ctx, engine.OutMessage{Key: "c", Payload: []byte("m")}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	tried := func() int {
		calls, _ := inj.Stats()
		return calls[chaos.OpSend]
	}
	for range 5 {
		send()
	}
	if got := tried(); got != 2 {
		t.Errorf("primary tried %d times in 5 sends, want 2 (the threshold)", got)
	}
	if got := m.get(failover.MetricFailover + "/Send"); got != 5 {
		t.Errorf("failover counted %d, want 5", got)
	}
	clock.Advance(time.Minute)
	send()
	send()
	if got := tried(); got != 3 {
		t.Errorf("after the cool-down the primary was tried %d times in all, want 3 (one probe)", got)
	}
	sw.on.Store(false)
	clock.Advance(time.Minute)
	for range 3 {
		send()
	}
	if got := sw.sent.Load(); got != 3 {
		t.Errorf("with chaos off the primary took %d sends, want 3", got)
	}
	for _, c := range []struct {
		name string
		q    *memory.Backend
		want int
	}{{"primary", primary, 3}, {"secondary", secondary, 7}} {
		if n, err := c.q.Pending(ctx, "c"); err != nil || n != c.want {
			t.Errorf("%s holds %d messages (%v), want %d", c.name, n, err, c.want)
		}
	}
}

// TestBothFail: the error names both failures; a cancelled call does not
// count against the primary or reach the secondary.
func TestBothFail(t *testing.T) {
	bad := chaos.New(chaos.Config{Default: 1})
	q := failover.NewQueue(bad.Queue(memory.New(memory.Options{})), bad.Queue(memory.New(memory.Options{})), failover.Options{})
	_, err := q.Send(t.Context(), engine.OutMessage{Key: "c"})
	if err == nil || !errors.Is(err, chaos.ErrInjected) {
		t.Fatalf("Send = %v, want both injected failures", err)
	}
	for _, want := range []string{"primary: chaos", "secondary: chaos"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sec := memory.New(memory.Options{})
	q = failover.NewQueue(cancelled{}, sec, failover.Options{})
	if _, err := q.Send(ctx, engine.OutMessage{Key: "c"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Send = %v, want context.Canceled", err)
	}
	if n, _ := sec.Pending(t.Context(), "c"); n != 0 {
		t.Errorf("a cancelled send reached the secondary (%d messages)", n)
	}
}

type cancelled struct{}

func (cancelled) Send(ctx context.Context, _ engine.OutMessage) (string, error) { return "", ctx.Err() }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestRetrier: retries fail over as sends do.
func TestRetrier(t *testing.T) {
	inj := chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpScheduleRetry: 1}})
	primary, secondary := memory.New(memory.Options{}), memory.New(memory.Options{})
	r := failover.NewRetrier(inj.Retrier(primary), secondary, failover.Options{})
	if err := r.ScheduleRetry(t.Context(), engine.OutMessage{Key: "c", Delay: time.Second}); err != nil {
		t.Fatal(err)
	}
	if n, _ := secondary.Pending(t.Context(), "c"); n != 1 {
		t.Errorf("secondary holds %d retries, want 1", n)
	}
}

// partial is a batch sender that refuses the messages whose key is in bad,
// naming them by index as the SQS, Kinesis and SNS backends do.
type partial struct {
	q     *memory.Backend
	bad   map[string]bool
	calls atomic.Int64
}

func (p *partial) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return p.q.Send(ctx, m)
}

func (p *partial) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	p.calls.Add(1)
	receipts := make([]string, len(ms))
	failed := map[int]error{}
	for i, m := range ms {
		if p.bad[m.Key] {
			failed[i] = errors.New("throttled")
			continue
		}
		r, err := p.q.Send(ctx, m)
		if err != nil {
			return receipts, err
		}
		receipts[i] = r
	}
	if len(failed) > 0 {
		return receipts, &sendbatch.Error{Op: "test", Failed: failed}
	}
	return receipts, nil
}

// TestSendBatch: a batch goes to the primary in one call; the messages it
// refused (by index) go to the secondary in one more; what neither took is
// named by its index in the caller's batch; a primary without SendBatch is
// sent one message at a time.
func TestSendBatch(t *testing.T) {
	ctx := t.Context()
	msgs := func(keys ...string) []engine.OutMessage {
		var ms []engine.OutMessage
		for _, k := range keys {
			ms = append(ms, engine.OutMessage{Key: k, Payload: []byte(k)})
		}
		return ms
	}
	pm, sm := memory.New(memory.Options{}), memory.New(memory.Options{})
	p := &partial{q: pm, bad: map[string]bool{"b": true, "d": true}}
	s := &partial{q: sm, bad: map[string]bool{"d": true}}
	m := &counter{}
	q := failover.NewQueue(p, s, failover.Options{Metrics: m})
	receipts, err := q.SendBatch(ctx, msgs("a", "b", "c", "d"))
	var be *sendbatch.Error
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[3] == nil {
		t.Fatalf("SendBatch = %v, want message 3 (d) failed alone", err)
	}
	if !contains(be.Failed[3].Error(), "primary: ") || !contains(be.Failed[3].Error(), "secondary: ") {
		t.Errorf("failure of d %q does not name both sides", be.Failed[3])
	}
	for i, r := range receipts {
		if (r == "") != (i == 3) {
			t.Errorf("receipt %d = %q", i, r)
		}
	}
	if p.calls.Load() != 1 || s.calls.Load() != 1 {
		t.Errorf("primary %d calls, secondary %d; want one each", p.calls.Load(), s.calls.Load())
	}
	for _, c := range []struct {
		b    *memory.Backend
		key  string
		want int
	}{{pm, "a", 1}, {pm, "c", 1}, {pm, "b", 0}, {sm, "b", 1}, {sm, "d", 0}} {
		if n, _ := c.b.Pending(ctx, c.key); n != c.want {
			t.Errorf("%s pending %d, want %d", c.key, n, c.want)
		}
	}
	if got := m.get(failover.MetricFailover + "/Send"); got != 1 {
		t.Errorf("failover counted %d, want 1 (b)", got)
	}
	// A primary that has no SendBatch, failing every send: each message on
	// its own, then the whole batch to the secondary.
	inj := chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpSend: 1}})
	s2 := &partial{q: memory.New(memory.Options{})}
	q = failover.NewQueue(inj.Queue(memory.New(memory.Options{})), s2, failover.Options{})
	if _, err := q.SendBatch(ctx, msgs("x", "y")); err != nil {
		t.Fatal(err)
	}
	if calls, _ := inj.Stats(); calls[chaos.OpSend] != 2 || s2.calls.Load() != 1 {
		t.Errorf("primary tried %d sends, secondary %d batches; want 2 and 1", calls[chaos.OpSend], s2.calls.Load())
	}
}

// chain is a machine whose every step sends the next, steps in all.
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

// lostResponse sends to q and then reports a failure: the ambiguous case,
// the write applied and its response lost.
type lostResponse struct{ q engine.Queue }

func (l lostResponse) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if _, err := l.q.Send(ctx, m); err != nil {
		return "", err
	}
	return "", errors.New("read tcp: connection reset by peer (after the message was stored)")
}

// TestEngineOnAWS runs executions through the engine on the DynamoDB store
// with a primary and a secondary SQS queue (the emulators), consumed by
// workers on a failover.Source, three ways: the primary failing every send
// (chaos at 100 %), every send ambiguous (stored on the primary, the
// response lost, so also sent to the secondary), and the primary healthy
// again. Every execution finishes with every step in its history exactly
// once; the healthy primary takes every message again.
func TestEngineOnAWS(t *testing.T) {
	const executions, steps = 3, 6
	sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	newQueue := func(name string) *sqs.Queue {
		out, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name(name))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = sc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
		})
		q, err := sqs.New(t.Context(), sqs.Options{Client: sc, URL: *out.QueueUrl})
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	dc := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	table := awstest.Name("lfsm-failover")
	if err := dynamodb.CreateTable(t.Context(), dc, table); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = dc.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(table)})
	})

	for _, mode := range []string{"primary down", "ambiguous", "primary back"} {
		t.Run(mode, func(t *testing.T) {
			pq, sq := newQueue("lfsm-primary"), newQueue("lfsm-secondary")
			inj := chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpSend: 1}})
			sw := newSwitchable(pq, inj)
			var primary engine.Queue = sw
			switch mode {
			case "ambiguous":
				primary = lostResponse{sw.plain}
			case "primary back":
				sw.on.Store(false)
			}
			m := &counter{}
			q := failover.NewQueue(primary, sq, failover.Options{Metrics: m})
			s, err := dynamodb.New(dynamodb.Options{Client: dc, Table: table, Queue: q, Retrier: sq})
			if err != nil {
				t.Fatal(err)
			}
			p := &progress{done: make(chan struct{})}
			p.left.Store(executions)
			eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, steps)}, Store: s, Queue: s, Retrier: s,
				Metrics: multi{p, m}})
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
			src := failover.NewSource(pq, sq)
			errs := make(chan error, 2)
			for range 2 {
				go func() {
					errs <- engine.RunWorker(ctx, src, eng, engine.WorkerOptions{Concurrency: 1, Batch: 5, Wait: 200 * time.Millisecond, RepairEvery: -1})
				}()
			}
			select {
			case <-p.done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("%d executions not done after two minutes", p.left.Load())
			}
			cancel()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
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
			failovers := m.get(failover.MetricFailover + "/Send")
			switch mode {
			case "primary down":
				if sw.sent.Load() != 0 || failovers == 0 {
					t.Errorf("primary took %d sends, %d failed over; want none and some", sw.sent.Load(), failovers)
				}
			case "ambiguous":
				if failovers == 0 || p.duplicates.Load() == 0 {
					t.Errorf("%d failovers, %d duplicates dropped; want both (every message went both ways)", failovers, p.duplicates.Load())
				}
			case "primary back":
				if failovers != 0 || sw.sent.Load() == 0 {
					t.Errorf("%d failovers, primary took %d sends; want none and all", failovers, sw.sent.Load())
				}
			}
		})
	}
}

type progress struct {
	duplicates, left atomic.Int64
	done             chan struct{}
}

func (p *progress) Add(k engine.MetricKey, n int64) {
	switch k.Name {
	case engine.MetricDuplicate:
		p.duplicates.Add(n)
	case engine.MetricDone:
		if p.left.Add(-n) == 0 {
			close(p.done)
		}
	}
}

type multi []engine.Metrics

func (ms multi) Add(k engine.MetricKey, n int64) {
	for _, m := range ms {
		m.Add(k, n)
	}
}

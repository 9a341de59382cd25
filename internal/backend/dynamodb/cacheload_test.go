package dynamodb_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestCacheLossUnderLoad runs executions through the engine on the composite
// store (DynamoDB Local, and a redis-server or memcached the test starts on
// a free loopback port) with several concurrent consumers of one SQS queue,
// and loses every cached record half way: FLUSHALL on Redis, a kill and a
// restart of memcached. The step whose action runs at that moment also
// meets a duplicate delivery's acquire right after the loss (made here by
// the test, as another worker's would be), which reseeds the record and is
// granted the lease the loss forgot, so the step's own commit is a commit
// of a lost epoch. Every execution must finish with every step in its
// history exactly once, none stranded. The reseeds and refused commits the
// loss cost are logged (docs/benchmarks.md):
//
//	go test -v -run TestCacheLossUnderLoad ./internal/backend/dynamodb
func TestCacheLossUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		bin  string
		args func(int) []string
		url  func(addr string) string
		lose func(t *testing.T, srv *awstest.Server)
	}{
		{"redis FLUSHALL", "redis-server", awstest.RedisArgs, func(a string) string { return "redis://" + a },
			func(t *testing.T, srv *awstest.Server) {
				c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
				defer c.Close()
				if err := c.FlushAll(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
			}},
		{"memcached restart", "memcached", awstest.MemcachedArgs, func(a string) string { return "memcached://" + a },
			func(t *testing.T, srv *awstest.Server) { srv.Restart(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := awstest.StartServer(t, tc.bin, tc.args)
			var lc leasecache.Cache
			if tc.bin == "redis-server" {
				lc = redisCache(t, srv.Addr)
			} else {
				lc = memcachedCache(t, srv.Addr)
			}
			cacheLossUnderLoad(t, lc, func() { tc.lose(t, srv) })
		})
	}
}

func cacheLossUnderLoad(t *testing.T, lc leasecache.Cache, lose func()) {
	const (
		executions = 40
		steps      = 10
		consumers  = 4
	)
	sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-cacheload"))})
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
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q, Cache: lc})

	// The action counts its runs per step and, at the run half way through
	// the transitions, hands over to the test (which loses the cache and
	// plays the duplicate's acquire) before it returns.
	var (
		mu      sync.Mutex
		runs    = map[string]int{}
		total   atomic.Int64
		halfway = make(chan fsm.Facts, 1)
		resume  = make(chan struct{})
	)
	m := &spec.Machine{Name: "chain", States: []*spec.State{
		{Name: "start", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Next"}, Transitions: []*spec.Transition{
			{Target: "start", Event: "ok"}, {Target: "end", Event: "done"},
		}},
		{Name: "end", Final: true},
	}}
	next := fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
		mu.Lock()
		runs[fmt.Sprintf("%s/%d", c.CorrelationID(), c.Steps())]++
		mu.Unlock()
		if total.Add(1) == executions*steps/2 {
			halfway <- c.Facts()
			select {
			case <-resume:
			case <-ctx.Done():
			}
		}
		if c.Steps() >= steps-2 {
			return "done", nil
		}
		return "ok", nil
	})
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) { return next, nil })
	if err != nil {
		t.Fatal(err)
	}
	p := &progress{done: make(chan struct{})}
	p.left.Store(executions)
	const leaseTimeout = 3 * time.Second
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: s, Queue: s, Retrier: s, Metrics: p, LeaseTimeout: leaseTimeout})
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
		go func() {
			errs <- engine.RunWorker(ctx, q, eng, engine.WorkerOptions{Concurrency: 4, Batch: 4, Visibility: 2 * time.Second,
				Wait: time.Second, RepairEvery: -1})
		}()
	}
	deadline := time.After(3 * time.Minute)
	select {
	case f := <-halfway:
		lose()
		// A duplicate delivery of the same step, on another worker: its
		// acquire misses, reseeds under a new epoch and is granted. Right
		// after a restart the client's pooled connections are dead and
		// calls fail until it has new ones: a failed acquire's message
		// comes back, so the duplicate tries again (polling, with a
		// deadline).
		until := time.Now().Add(30 * time.Second)
		for {
			now := time.Now()
			_, err := s.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: f.CorrelationID, Machine: f.Machine,
				Step: f.Steps, Retries: f.Retries, Now: now, Expires: now.Add(leaseTimeout)})
			if err == nil {
				break
			}
			if now.After(until) {
				t.Errorf("the duplicate's acquire after the loss: %v", err)
				break
			}
			time.Sleep(20 * time.Millisecond) // polling the cache back, with a deadline
		}
		close(resume)
	case <-deadline:
		t.Fatal("half the transitions not run after three minutes")
	}
	select {
	case <-p.done:
	case <-deadline:
		t.Fatalf("%d executions not done after three minutes", p.left.Load())
	}
	cancel()
	for range consumers {
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
		if x, err := s.Get(t.Context(), id); err != nil || x.Status != engine.StatusDone {
			t.Errorf("%s: %s, %v; want done", id, x.Status, err)
		}
	}
	stranded, err := s.Stranded(t.Context(), engine.StrandedQuery{Now: time.Now().Add(time.Hour), Limit: executions})
	if err != nil || len(stranded) != 0 {
		t.Errorf("Stranded = %d executions, %v; want none", len(stranded), err)
	}
	again := 0
	for _, n := range runs {
		again += n - 1
	}
	st := s.CacheStats()
	if st.Reseeds == 0 || st.Refused == 0 {
		t.Errorf("cache stats %+v: want the loss to have cost reseeds and the lost epoch's commit refused", st)
	}
	t.Logf("%d executions x %d steps, %d consumers: %d grants, %d reseeds (one write unit each), %d commits refused by the guard, %d actions run again, %d duplicates dropped",
		executions, steps, consumers, st.Grants, st.Reseeds, st.Refused, again, p.duplicates.Load())
}

package dynamodb_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// flaky is a lease cache behind a switch: "ok" passes every call; "down"
// fails every call before it reaches the server (a node unreachable);
// "ambiguous" makes the call and then reports it failed (the write applied,
// the response lost).
type flaky struct {
	leasecache.Cache
	mode  atomic.Value
	calls atomic.Int64 // calls that reached the server
}

func newFlaky(c leasecache.Cache) *flaky {
	f := &flaky{Cache: c}
	f.mode.Store("ok")
	return f
}

var errLost = errors.New("read tcp 127.0.0.1: i/o timeout (the lease cache's answer was lost)")

func (f *flaky) do(call func() error) error {
	switch f.mode.Load() {
	case "down":
		return errors.New("dial tcp 127.0.0.1: connection refused")
	case "ambiguous":
		f.calls.Add(1)
		if err := call(); err != nil {
			return err
		}
		return errLost
	}
	f.calls.Add(1)
	return call()
}

func (f *flaky) Seed(ctx context.Context, id string, rec leasecache.Record) (got leasecache.Record, err error) {
	err = f.do(func() (err error) { got, err = f.Cache.Seed(ctx, id, rec); return err })
	return got, err
}

func (f *flaky) Acquire(ctx context.Context, q engine.AcquireRequest) (l engine.Lease, rec leasecache.Record, err error) {
	err = f.do(func() (err error) { l, rec, err = f.Cache.Acquire(ctx, q); return err })
	return l, rec, err
}

func (f *flaky) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	return f.do(func() error { return f.Cache.Renew(ctx, r) })
}

func (f *flaky) Settle(ctx context.Context, s leasecache.Settlement) error {
	return f.do(func() error { return f.Cache.Settle(ctx, s) })
}

func (f *flaky) Forget(ctx context.Context, id string) error {
	return f.do(func() error { return f.Cache.Forget(ctx, id) })
}

func (f *flaky) Get(ctx context.Context, id string) (rec leasecache.Record, err error) {
	err = f.do(func() (err error) { rec, err = f.Cache.Get(ctx, id); return err })
	return rec, err
}

// pairOfCaches is a primary on the shared redis-server behind a switch and a
// secondary on the shared memcached (two kinds of server, as a deployment
// may have them).
func pairOfCaches(t *testing.T) (*flaky, leasecache.Cache) {
	return newFlaky(redisCache(t, awstest.Addr(t, "REDIS_ADDR"))), memcachedCache(t, awstest.Addr(t, "MEMCACHED_ADDR"))
}

func hint(primary bool) *bool { return &primary }

// TestLeaseStoreSwitch plays the lease store's failover on one execution at
// a time: a healthy primary takes new executions and the secondary holds
// nothing of them; a primary that fails is left by a fenced switch (the
// epoch bump that reseeds the secondary), after which the execution's
// messages name the secondary and its primary is not asked again; and an
// ambiguous acquire (granted on the primary, the answer lost) leaves a
// grant on each store for one step, of which only the switch's can commit,
// in either order, so the step is committed once.
func TestLeaseStoreSwitch(t *testing.T) {
	ctx := t.Context()
	create := func(t *testing.T, s *dynamodb.Store, id string) {
		t.Helper()
		if err := s.Create(ctx, engine.Execution{CorrelationID: id, Machine: "M", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(s *dynamodb.Store, id string, n int, fence int64) error {
		c, _ := step(id, n, 0, fence, t0)
		return s.Commit(ctx, c)
	}
	history := func(t *testing.T, s *dynamodb.Store, id string) []int {
		t.Helper()
		h, err := s.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, e := range h {
			got = append(got, e.Step)
		}
		return got
	}
	newPair := func(t *testing.T) (*dynamodb.Store, *flaky, leasecache.Cache) {
		p, sec := pairOfCaches(t)
		return newStore(t, dynamodb.Options{Cache: p, SecondaryCache: sec}), p, sec
	}

	t.Run("a healthy primary takes new executions", func(t *testing.T) {
		s, _, sec := newPair(t)
		create(t, s, "x")
		l, err := s.Acquire(ctx, acq("x", 0, 0, t0))
		if err != nil {
			t.Fatal(err)
		}
		if l.LeasePrimary == nil || !*l.LeasePrimary || l.Fence>>leasecache.EpochShift != 0 {
			t.Errorf("lease %+v: want the primary's, epoch 0", l)
		}
		if err := commit(s, "x", 0, l.Fence); err != nil {
			t.Fatal(err)
		}
		if _, err := sec.Get(ctx, "x"); !errors.Is(err, leasecache.ErrMiss) {
			t.Errorf("the secondary holds a record of x (%v): it should know nothing of it", err)
		}
	})

	t.Run("a failing primary is left by a fenced switch", func(t *testing.T) {
		s, p, _ := newPair(t)
		p.mode.Store("down")
		create(t, s, "y")
		l, err := s.Acquire(ctx, acq("y", 0, 0, t0))
		if err != nil {
			t.Fatal(err)
		}
		if l.LeasePrimary == nil || *l.LeasePrimary || l.Fence>>leasecache.EpochShift != 1 {
			t.Fatalf("lease %+v: want the secondary's, epoch 1 (the switch's bump)", l)
		}
		if err := commit(s, "y", 0, l.Fence); err != nil {
			t.Fatal(err)
		}
		// The next message names the secondary: the primary, back or not,
		// is not asked.
		p.mode.Store("ok")
		before := p.calls.Load()
		q := acq("y", 1, 0, t0)
		q.LeasePrimary = hint(false)
		l, err = s.Acquire(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := commit(s, "y", 1, l.Fence); err != nil {
			t.Fatal(err)
		}
		if n := p.calls.Load() - before; n != 0 || *l.LeasePrimary {
			t.Errorf("the primary got %d calls for a step on the secondary (lease %+v)", n, l)
		}
		if st := s.CacheStats(); st.Switches != 1 {
			t.Errorf("stats %+v: want one switch", st)
		}
		if got := history(t, s, "y"); !slices.Equal(got, []int{0, 1}) {
			t.Errorf("history %v, want [0 1]", got)
		}
	})

	// ambiguous: A's acquire is granted on the primary but answered with an
	// error; A switches and is granted on the secondary. D, a duplicate of
	// the same message (its lease_primary still says the primary), finds the
	// primary's lease held, then takes it over once it expires.
	ambiguous := func(t *testing.T) (s *dynamodb.Store, a, d engine.Lease) {
		s, p, _ := newPair(t)
		create(t, s, "z")
		p.mode.Store("ambiguous")
		a, err := s.Acquire(ctx, acq("z", 0, 0, t0))
		if err != nil {
			t.Fatal(err)
		}
		if *a.LeasePrimary || p.calls.Load() == 0 {
			t.Fatalf("A's lease %+v after %d primary calls: want the secondary's after the ambiguous one", a, p.calls.Load())
		}
		p.mode.Store("ok")
		if _, err := s.Acquire(ctx, acq("z", 0, 0, t0.Add(time.Second))); !errors.Is(err, engine.ErrLeaseHeld) {
			t.Fatalf("D's acquire on the primary = %v, want the lease the lost answer granted held", err)
		}
		late := t0.Add(time.Hour)
		d, err = s.Acquire(ctx, acq("z", 0, 0, late))
		if err != nil {
			t.Fatal(err)
		}
		if !*d.LeasePrimary || d.Fence>>leasecache.EpochShift >= a.Fence>>leasecache.EpochShift {
			t.Fatalf("D's lease %+v: want the primary's, of an epoch before A's %d", d, a.Fence)
		}
		return s, a, d
	}
	t.Run("ambiguous acquire, the duplicate commits first", func(t *testing.T) {
		s, a, d := ambiguous(t)
		if err := commit(s, "z", 0, d.Fence); err == nil {
			t.Fatal("the primary's grant of the old epoch committed")
		}
		if err := commit(s, "z", 0, a.Fence); err != nil {
			t.Fatalf("the switch's grant: %v", err)
		}
		// D's message comes back: the step is done.
		if _, err := s.Acquire(ctx, acq("z", 0, 0, t0.Add(2*time.Hour))); !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("the redelivered duplicate = %v, want ErrDuplicate", err)
		}
		if got := history(t, s, "z"); !slices.Equal(got, []int{0}) {
			t.Errorf("history %v, want step 0 once", got)
		}
	})
	t.Run("ambiguous acquire, the switch's holder commits first", func(t *testing.T) {
		s, a, d := ambiguous(t)
		if err := commit(s, "z", 0, a.Fence); err != nil {
			t.Fatalf("the switch's grant: %v", err)
		}
		if err := commit(s, "z", 0, d.Fence); !errors.Is(err, engine.ErrFenceLost) {
			t.Errorf("the old epoch's commit after the step was done = %v, want ErrFenceLost", err)
		}
		if got := history(t, s, "z"); !slices.Equal(got, []int{0}) {
			t.Errorf("history %v, want step 0 once", got)
		}
	})
}

// dupQueue sends every message twice, so that two workers race for each
// step (the copies of a failed-over send, a redelivery).
type dupQueue struct{ q *memory.Backend }

func (d dupQueue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if _, err := d.q.Send(ctx, m); err != nil {
		return "", err
	}
	return d.q.Send(ctx, m)
}

func (d dupQueue) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	return d.q.ScheduleRetry(ctx, m)
}

type doneCount struct {
	left atomic.Int64
	done chan struct{}
}

func (d *doneCount) Add(k engine.MetricKey, n int64) {
	if k.Name == engine.MetricDone && d.left.Add(-n) == 0 {
		close(d.done)
	}
}

// TestLeaseStoreFailoverUnderLoad runs executions through the engine on the
// store with a primary and a secondary lease cache, every message sent
// twice to two workers, three ways: the primary down (every execution
// switches and finishes on the secondary), every primary call ambiguous
// (applied, its answer lost), and the primary healthy again (new executions
// take it). Every step is in each history exactly once, none missing.
func TestLeaseStoreFailoverUnderLoad(t *testing.T) {
	const executions, steps = 8, 5
	for _, mode := range []string{"down", "ambiguous", "ok"} {
		t.Run(mode, func(t *testing.T) {
			p, sec := pairOfCaches(t)
			mem := memory.New(memory.Options{})
			q := dupQueue{mem}
			s := newStore(t, dynamodb.Options{Cache: p, SecondaryCache: sec, Queue: q, Retrier: q})
			d := &doneCount{done: make(chan struct{})}
			d.left.Store(executions)
			eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, steps)}, Store: s, Queue: s, Retrier: s,
				Metrics: d, LeaseTimeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			p.mode.Store(mode)
			ids := make([]string, executions)
			for i := range ids {
				if ids[i], err = eng.Start(t.Context(), engine.StartRequest{Machine: "chain"}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			errs := make(chan error, 2)
			for range 2 {
				go func() {
					errs <- engine.RunWorker(ctx, mem, eng, engine.WorkerOptions{Concurrency: 2, Batch: 4, Wait: 50 * time.Millisecond, RepairEvery: -1})
				}()
			}
			select {
			case <-d.done:
			case <-time.After(2 * time.Minute):
				t.Fatalf("%d of %d executions not done after two minutes", d.left.Load(), executions)
			}
			cancel()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			want := make([]int, steps)
			for i := range want {
				want[i] = i
			}
			for _, id := range ids {
				h, err := s.History(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, e := range h {
					got = append(got, e.Step)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s: steps %v in the history, want each of %v once", id, got, want)
				}
			}
			st := s.CacheStats()
			switch mode {
			case "down", "ambiguous":
				if st.Switches == 0 {
					t.Errorf("stats %+v: want switches", st)
				}
			case "ok":
				if st.Switches != 0 {
					t.Errorf("stats %+v: a healthy primary, yet switches", st)
				}
				for _, id := range ids {
					if _, err := sec.Get(t.Context(), id); !errors.Is(err, leasecache.ErrMiss) {
						t.Errorf("the secondary holds a record of %s (%v): new executions take the healthy primary", id, err)
					}
				}
			}
			t.Logf("%s: %+v", mode, st)
		})
	}
}

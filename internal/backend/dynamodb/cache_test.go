package dynamodb_test

import (
	"errors"

	"github.com/google/go-cmp/cmp"

	"testing"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/memcached"
	"github.com/lfsm/lfsm/internal/backend/redis"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
)

// caches are the lease caches the composite store is tested on: each
// returns a cache on the shared server (REDIS_ADDR, MEMCACHED_ADDR) whose
// keys no other test shares.
var caches = []struct {
	name string
	new  func(t *testing.T) leasecache.Cache
}{
	{"redis", func(t *testing.T) leasecache.Cache { return redisCache(t, awstest.Addr(t, "REDIS_ADDR")) }},
	{"memcached", func(t *testing.T) leasecache.Cache { return memcachedCache(t, awstest.Addr(t, "MEMCACHED_ADDR")) }},
}

// TestCachedStoreWithSecondary runs the store suites unchanged on the
// composite store with a secondary lease cache (redis primary, memcached
// secondary), both healthy: nothing of the store's behaviour changes.
func TestCachedStoreWithSecondary(t *testing.T) {
	newPair := func(t *testing.T) *dynamodb.Store {
		return newStore(t, dynamodb.Options{Cache: redisCache(t, awstest.Addr(t, "REDIS_ADDR")),
			SecondaryCache: memcachedCache(t, awstest.Addr(t, "MEMCACHED_ADDR"))})
	}
	t.Run("Store", func(t *testing.T) {
		storetest.RunStore(t, func(t *testing.T) engine.Store { return newPair(t) })
	})
	t.Run("Protocol", func(t *testing.T) {
		storetest.RunProtocol(t, func(t *testing.T) engine.Store { return newPair(t) })
	})
}

func redisCache(t *testing.T, addr string) leasecache.Cache {
	t.Helper()
	c, err := redis.New(redis.Options{URL: "redis://" + addr, Prefix: awstest.Name("lfsm-ddb") + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func memcachedCache(t *testing.T, addr string) leasecache.Cache {
	t.Helper()
	c, err := memcached.New(memcached.Options{URL: "memcached://" + addr, Prefix: awstest.Name("lfsm-ddb") + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCachedStore runs the store suites unchanged on the composite store:
// DynamoDB Local for status, checkpoint and history, and each lease cache
// for the lease, fence and done marker.
func TestCachedStore(t *testing.T) {
	for _, c := range caches {
		t.Run(c.name, func(t *testing.T) {
			newCached := func(t *testing.T) *dynamodb.Store { return newStore(t, dynamodb.Options{Cache: c.new(t)}) }
			t.Run("Store", func(t *testing.T) {
				storetest.RunStore(t, func(t *testing.T) engine.Store { return newCached(t) })
			})
			t.Run("Protocol", func(t *testing.T) {
				storetest.RunProtocol(t, func(t *testing.T) engine.Store { return newCached(t) })
			})
			t.Run("DropRecorder", func(t *testing.T) {
				storetest.RunDropRecorder(t, func(t *testing.T) engine.DropRecorder { return newCached(t) })
			})
			t.Run("Pruner", func(t *testing.T) {
				storetest.RunPruner(t, func(t *testing.T) engine.Store { return newCached(t) })
			})
		})
	}
}

// TestCacheLossGuard plays each way a lost record meets a step in flight,
// on a record forgotten as a flush loses it: the holder of the lost epoch
// commits iff nobody reseeded before its commit; after a reseed its commit
// writes nothing and the new epoch's holder commits; a record left out of
// date by a failed settle is caught by the guard and replaced; and a
// done step stays done after the loss.
func TestCacheLossGuard(t *testing.T) {
	for _, c := range caches {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			newCached := func(t *testing.T) (*dynamodb.Store, leasecache.Cache) {
				lc := c.new(t)
				return newStore(t, dynamodb.Options{Cache: lc}), lc
			}
			commit := func(s *dynamodb.Store, id string, n int, fence int64) error {
				cm, _ := step(id, n, 0, fence, t0)
				return s.Commit(ctx, cm)
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
			create := func(t *testing.T, s *dynamodb.Store, id string) {
				t.Helper()
				if err := s.Create(ctx, engine.Execution{CorrelationID: id, Machine: "M", CreatedAt: t0}); err != nil {
					t.Fatal(err)
				}
			}

			t.Run("lost before the commit, nobody reseeded", func(t *testing.T) {
				s, lc := newCached(t)
				create(t, s, "x")
				l, err := s.Acquire(ctx, acq("x", 0, 0, t0))
				if err != nil {
					t.Fatal(err)
				}
				if err := lc.Forget(ctx, "x"); err != nil {
					t.Fatal(err)
				}
				if err := commit(s, "x", 0, l.Fence); err != nil {
					t.Fatalf("commit after the loss, before any reseed: %v", err)
				}
				if _, err := s.Acquire(ctx, acq("x", 0, 0, t0)); !errors.Is(err, engine.ErrDuplicate) {
					t.Errorf("redelivery after the commit = %v, want ErrDuplicate (the reseed reads the done step)", err)
				}
				if diff := cmp.Diff([]int{0}, history(t, s, "x")); diff != "" {
					t.Errorf("history (-want +got):\n%s", diff)
				}
			})

			t.Run("lost and reseeded: the old epoch's commit writes nothing", func(t *testing.T) {
				s, lc := newCached(t)
				create(t, s, "x")
				old, err := s.Acquire(ctx, acq("x", 0, 0, t0))
				if err != nil {
					t.Fatal(err)
				}
				if err := lc.Forget(ctx, "x"); err != nil {
					t.Fatal(err)
				}
				// The redelivery finds no record: the reseed starts epoch 1,
				// and the lease (held in the lost record) is granted again.
				l, err := s.Acquire(ctx, acq("x", 0, 0, t0))
				if err != nil {
					t.Fatalf("redelivery after the loss: %v", err)
				}
				if l.Fence>>leasecache.EpochShift != 1 || l.Fence <= old.Fence {
					t.Errorf("fence after the reseed %#x, want epoch 1, above the lost %#x", l.Fence, old.Fence)
				}
				err = commit(s, "x", 0, old.Fence)
				if err == nil || errors.Is(err, engine.ErrFenceLost) {
					t.Errorf("commit of the lost epoch = %v, want an error that brings the message back", err)
				}
				if err := commit(s, "x", 0, l.Fence); err != nil {
					t.Errorf("commit of the new epoch: %v", err)
				}
				if diff := cmp.Diff([]int{0}, history(t, s, "x")); diff != "" {
					t.Errorf("history (-want +got):\n%s", diff)
				}
				if got := s.CacheStats(); got.Reseeds != 1 || got.Refused != 1 {
					t.Errorf("cache stats %+v, want 1 reseed and 1 refused commit", got)
				}
			})

			t.Run("the new epoch's holder commits first", func(t *testing.T) {
				s, lc := newCached(t)
				create(t, s, "x")
				old, _ := s.Acquire(ctx, acq("x", 0, 0, t0))
				_ = lc.Forget(ctx, "x")
				l, err := s.Acquire(ctx, acq("x", 0, 0, t0))
				if err != nil {
					t.Fatal(err)
				}
				if err := commit(s, "x", 0, l.Fence); err != nil {
					t.Fatal(err)
				}
				if err := commit(s, "x", 0, old.Fence); !errors.Is(err, engine.ErrFenceLost) {
					t.Errorf("commit of the lost epoch after the step was committed = %v, want ErrFenceLost", err)
				}
				if diff := cmp.Diff([]int{0}, history(t, s, "x")); diff != "" {
					t.Errorf("history (-want +got):\n%s", diff)
				}
			})

			t.Run("a stale record is replaced", func(t *testing.T) {
				s, lc := newCached(t)
				create(t, s, "x")
				l, _ := s.Acquire(ctx, acq("x", 0, 0, t0))
				// The record a settle that failed (and whose Forget failed too)
				// leaves behind: the step's lease still held, the commit and
				// the done step not recorded.
				stale, err := lc.Get(ctx, "x")
				if err != nil {
					t.Fatal(err)
				}
				if err := commit(s, "x", 0, l.Fence); err != nil {
					t.Fatal(err)
				}
				_ = lc.Forget(ctx, "x")
				if _, err := lc.Seed(ctx, "x", stale); err != nil {
					t.Fatal(err)
				}
				l1, err := s.Acquire(ctx, acq("x", 1, 0, t0))
				if err != nil {
					t.Fatal(err)
				}
				if err := commit(s, "x", 1, l1.Fence); err == nil || errors.Is(err, engine.ErrFenceLost) {
					t.Fatalf("commit on a stale record = %v, want an error that brings the message back", err)
				}
				l1, err = s.Acquire(ctx, acq("x", 1, 0, t0))
				if err != nil {
					t.Fatalf("redelivery after the stale record was forgotten: %v", err)
				}
				if err := commit(s, "x", 1, l1.Fence); err != nil {
					t.Errorf("commit after the reseed: %v", err)
				}
				if diff := cmp.Diff([]int{0, 1}, history(t, s, "x")); diff != "" {
					t.Errorf("history (-want +got):\n%s", diff)
				}
			})
		})
	}
}

package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/engine"
)

// RunLeaseCache runs the conformance suite of leasecache.Cache: a cache
// applies leasecache.Grant, Extend and Settle to its records exactly as the
// Go rules do (the Redis cache runs them in Lua), atomically under
// concurrent callers, never creates a record but by Seed, and reports a lost
// record as leasecache.ErrMiss. newCache returns a cache whose records no
// other test shares (a key prefix of its own on a shared server). lose, if
// not nil, drops every record of the cache's server (FLUSHALL, a restart):
// only on a server the test started itself.
func RunLeaseCache(t *testing.T, newCache func(t *testing.T) leasecache.Cache, lose func(t *testing.T)) {
	t.Run("Miss", func(t *testing.T) { testCacheMiss(t, newCache(t)) })
	t.Run("Seed", func(t *testing.T) { testCacheSeed(t, newCache(t)) })
	t.Run("Grant", func(t *testing.T) { testCacheGrant(t, newCache) })
	t.Run("Renew", func(t *testing.T) { testCacheRenew(t, newCache(t)) })
	t.Run("Settle", func(t *testing.T) { testCacheSettle(t, newCache(t)) })
	t.Run("Forget", func(t *testing.T) { testCacheForget(t, newCache(t)) })
	t.Run("Concurrent", func(t *testing.T) { testCacheConcurrent(t, newCache(t)) })
	if lose != nil {
		t.Run("Loss", func(t *testing.T) { testCacheLoss(t, newCache(t), lose) })
	}
}

func cacheReq(id string, step, attempt int, now time.Time) engine.AcquireRequest {
	return engine.AcquireRequest{CorrelationID: id, Machine: machine, Step: step, Retries: attempt, Now: now, Expires: now.Add(Lease)}
}

func mustSeed(t *testing.T, c leasecache.Cache, id string, rec leasecache.Record) {
	t.Helper()
	if _, err := c.Seed(t.Context(), id, rec); err != nil {
		t.Fatalf("Seed %s: %v", id, err)
	}
}

func mustRecord(t *testing.T, c leasecache.Cache, id string) leasecache.Record {
	t.Helper()
	rec, err := c.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return rec
}

// refusal names the sentinel err wraps, for comparisons.
func refusal(err error) string {
	for _, s := range []error{leasecache.ErrMiss, engine.ErrDuplicate, engine.ErrLeaseHeld, engine.ErrInactive, engine.ErrFenceLost} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func testCacheMiss(t *testing.T, c leasecache.Cache) {
	ctx := t.Context()
	if _, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0)); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Acquire without a record = %v, want ErrMiss", err)
	}
	if err := c.Renew(ctx, engine.LeaseRenewal{CorrelationID: "c", Fence: 1, Now: T0, Expires: T0.Add(Lease)}); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Renew without a record = %v, want ErrMiss", err)
	}
	if err := c.Settle(ctx, leasecache.Settlement{CorrelationID: "c", Fence: 1, Outcome: engine.OutcomeNext}); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Settle without a record = %v, want ErrMiss", err)
	}
	if _, err := c.Get(ctx, "c"); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Get without a record = %v, want ErrMiss", err)
	}
	// Nothing above created a record.
	if _, err := c.Get(ctx, "c"); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Get after the calls = %v, want ErrMiss", err)
	}
}

func testCacheSeed(t *testing.T, c leasecache.Cache) {
	first := leasecache.NewRecord(3)
	first.DoneStep, first.CommitFence = 4, leasecache.FirstFence(2)+7
	first.Restarted = T0.Add(123456789 * time.Nanosecond) // nanoseconds survive
	got, err := c.Seed(t.Context(), "c", first)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if d := cmp.Diff(first, got); d != "" {
		t.Errorf("Seed returned (-want +got):\n%s", d)
	}
	// A second seed (a caller that missed concurrently) gets the first.
	got, err = c.Seed(t.Context(), "c", leasecache.NewRecord(4))
	if err != nil {
		t.Fatalf("second Seed: %v", err)
	}
	if d := cmp.Diff(first, got); d != "" {
		t.Errorf("second Seed returned (-want the first +got):\n%s", d)
	}
	if d := cmp.Diff(first, mustRecord(t, c, "c")); d != "" {
		t.Errorf("record after two seeds (-want +got):\n%s", d)
	}
}

// testCacheGrant holds the cache to leasecache.Grant on records of every
// case of the rule: the same lease or the same refusal, the same record.
func testCacheGrant(t *testing.T, newCache func(t *testing.T) leasecache.Cache) {
	held := func(step int, expires time.Time) leasecache.Record {
		r := leasecache.NewRecord(1)
		r.Fence, r.LeaseStep, r.LeaseExpires, r.DoneStep = leasecache.FirstFence(1)+5, step, expires, step-1
		return r
	}
	for _, tc := range []struct {
		name string
		rec  leasecache.Record
		req  engine.AcquireRequest
		want string // the refusal, "" for a grant
	}{
		{"a fresh record", leasecache.NewRecord(0), cacheReq("c", 0, 0, T0), ""},
		{"a later epoch", leasecache.NewRecord(9), cacheReq("c", 0, 0, T0), ""},
		{"stopped", func() leasecache.Record { r := leasecache.NewRecord(0); r.Stopped = true; return r }(), cacheReq("c", 0, 0, T0), "execution is not active"},
		{"restarted before the resume", func() leasecache.Record { r := leasecache.NewRecord(0); r.Restarted = T0; return r }(),
			func() engine.AcquireRequest {
				q := cacheReq("c", 0, 0, T0)
				q.Restarted = T0.Add(-time.Nanosecond)
				return q
			}(), engine.ErrDuplicate.Error()},
		{"restarted at the resume", func() leasecache.Record { r := leasecache.NewRecord(0); r.Restarted = T0; return r }(),
			func() engine.AcquireRequest { q := cacheReq("c", 0, 0, T0); q.Restarted = T0; return q }(), ""},
		{"step done", func() leasecache.Record { r := leasecache.NewRecord(0); r.DoneStep = 2; return r }(), cacheReq("c", 2, 0, T0), engine.ErrDuplicate.Error()},
		{"next step", func() leasecache.Record { r := leasecache.NewRecord(0); r.DoneStep = 2; return r }(), cacheReq("c", 3, 0, T0), ""},
		{"held for the step", held(3, T0.Add(Lease)), cacheReq("c", 3, 0, T0), engine.ErrLeaseHeld.Error()},
		{"held a nanosecond more", held(3, T0.Add(time.Nanosecond)), cacheReq("c", 3, 0, T0), engine.ErrLeaseHeld.Error()},
		{"expired at now", held(3, T0), cacheReq("c", 3, 0, T0), ""},
		{"held for a later step", held(4, T0.Add(Lease)), cacheReq("c", 3, 0, T0), engine.ErrDuplicate.Error()},
		{"held for an earlier step", held(2, T0.Add(Lease)), cacheReq("c", 3, 0, T0), ""},
		{"expired, taken over twice", func() leasecache.Record { r := held(3, T0.Add(-time.Second)); r.Takeovers = 1; return r }(), cacheReq("c", 3, 1, T0), ""},
		{"attempt failed", func() leasecache.Record { r := leasecache.NewRecord(0); r.FailedStep, r.FailedAttempt = 2, 1; return r }(), cacheReq("c", 2, 1, T0), engine.ErrDuplicate.Error()},
		{"a later attempt", func() leasecache.Record { r := leasecache.NewRecord(0); r.FailedStep, r.FailedAttempt = 2, 1; return r }(), cacheReq("c", 2, 2, T0), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t)
			mustSeed(t, c, "c", tc.rec)
			want := tc.rec
			wantLease, wantErr := leasecache.Grant(&want, tc.req)
			if got := refusal(wantErr); got != tc.want {
				t.Fatalf("the Go rule gives %q, the case expects %q", got, tc.want)
			}
			lease, after, err := c.Acquire(t.Context(), tc.req)
			if refusal(err) != refusal(wantErr) {
				t.Fatalf("Acquire = %v, want %v", err, wantErr)
			}
			if err != nil && err.Error() != wantErr.Error() {
				t.Errorf("Acquire's refusal reads %q, want %q", err, wantErr)
			}
			if d := cmp.Diff(wantLease, lease); d != "" {
				t.Errorf("lease (-want +got):\n%s", d)
			}
			if d := cmp.Diff(want, after); d != "" {
				t.Errorf("record returned (-want +got):\n%s", d)
			}
			if d := cmp.Diff(want, mustRecord(t, c, "c")); d != "" {
				t.Errorf("record kept (-want +got):\n%s", d)
			}
		})
	}
	t.Run("fences count from the epoch", func(t *testing.T) {
		c := newCache(t)
		mustSeed(t, c, "c", leasecache.NewRecord(2))
		for i := range 3 {
			l, _, err := c.Acquire(t.Context(), cacheReq("c", i, 0, T0))
			if err != nil {
				t.Fatalf("Acquire step %d: %v", i, err)
			}
			if want := leasecache.FirstFence(2) + int64(i) + 1; l.Fence != want {
				t.Errorf("step %d fence %d, want %d", i, l.Fence, want)
			}
		}
	})
}

func testCacheRenew(t *testing.T, c leasecache.Cache) {
	ctx := t.Context()
	mustSeed(t, c, "c", leasecache.NewRecord(0))
	l, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0))
	if err != nil {
		t.Fatal(err)
	}
	later := T0.Add(Lease + time.Minute)
	if err := c.Renew(ctx, engine.LeaseRenewal{CorrelationID: "c", Fence: l.Fence + 1, Now: T0, Expires: later}); !errors.Is(err, engine.ErrFenceLost) {
		t.Errorf("Renew with another fence = %v, want ErrFenceLost", err)
	}
	if err := c.Renew(ctx, engine.LeaseRenewal{CorrelationID: "c", Fence: l.Fence, Now: T0, Expires: later}); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if got := mustRecord(t, c, "c").LeaseExpires; !got.Equal(later) {
		t.Errorf("lease expires at %v, want %v", got, later)
	}
	// Given back (zero expiry), the step's next delivery takes it at once,
	// with no takeover counted, and the old fence renews nothing.
	if err := c.Renew(ctx, engine.LeaseRenewal{CorrelationID: "c", Fence: l.Fence, Now: T0}); err != nil {
		t.Fatalf("give back: %v", err)
	}
	if err := c.Renew(ctx, engine.LeaseRenewal{CorrelationID: "c", Fence: l.Fence, Now: T0, Expires: later}); !errors.Is(err, engine.ErrFenceLost) {
		t.Errorf("Renew of a given-back lease = %v, want ErrFenceLost", err)
	}
	l2, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0))
	if err != nil {
		t.Fatalf("Acquire after the give-back: %v", err)
	}
	if l2.Takeovers != 0 || l2.Fence != l.Fence+1 {
		t.Errorf("lease after the give-back %+v, want fence %d and no takeover", l2, l.Fence+1)
	}
}

func testCacheSettle(t *testing.T, c leasecache.Cache) {
	ctx := t.Context()
	mustSeed(t, c, "c", leasecache.NewRecord(0))
	grant := func(step, attempt int) engine.Lease {
		t.Helper()
		l, _, err := c.Acquire(ctx, cacheReq("c", step, attempt, T0))
		if err != nil {
			t.Fatalf("Acquire step %d attempt %d: %v", step, attempt, err)
		}
		return l
	}
	settle := func(step, attempt int, fence int64, o engine.Outcome, stopped bool) error {
		return c.Settle(ctx, leasecache.Settlement{CorrelationID: "c", Step: step, Retries: attempt, Fence: fence, Outcome: o, Stopped: stopped})
	}
	l := grant(0, 0)
	if err := settle(0, 0, l.Fence+1, engine.OutcomeNext, false); !errors.Is(err, engine.ErrFenceLost) {
		t.Errorf("Settle with another fence = %v, want ErrFenceLost", err)
	}
	if got := mustRecord(t, c, "c"); got.DoneStep != -1 || got.LeaseExpires.IsZero() {
		t.Errorf("a refused Settle changed the record: %+v", got)
	}
	if err := settle(0, 0, l.Fence, engine.OutcomeNext, false); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if err := settle(0, 0, l.Fence, engine.OutcomeNext, false); !errors.Is(err, engine.ErrFenceLost) {
		t.Errorf("second Settle = %v, want ErrFenceLost", err)
	}
	want := leasecache.NewRecord(0)
	want.Fence, want.DoneStep, want.LeaseStep, want.CommitFence, want.Granted = l.Fence, 0, 0, l.Fence, T0
	if d := cmp.Diff(want, mustRecord(t, c, "c")); d != "" {
		t.Errorf("record after Settle (-want +got):\n%s", d)
	}
	if _, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0)); !errors.Is(err, engine.ErrDuplicate) {
		t.Errorf("Acquire of the settled step = %v, want ErrDuplicate", err)
	}
	// A retry records the failed attempt, not the step.
	l = grant(1, 0)
	if err := settle(1, 0, l.Fence, engine.OutcomeRetry, false); err != nil {
		t.Fatalf("Settle retry: %v", err)
	}
	if got := mustRecord(t, c, "c"); got.DoneStep != 0 || got.FailedStep != 1 || got.FailedAttempt != 0 {
		t.Errorf("after a retry: done %d failed %d/%d, want 0 and 1/0", got.DoneStep, got.FailedStep, got.FailedAttempt)
	}
	if _, _, err := c.Acquire(ctx, cacheReq("c", 1, 0, T0)); !errors.Is(err, engine.ErrDuplicate) {
		t.Errorf("Acquire of the failed attempt = %v, want ErrDuplicate", err)
	}
	// A commit that kept an operator's stop leaves the record stopped.
	l = grant(1, 1)
	if err := settle(1, 1, l.Fence, engine.OutcomeNext, true); err != nil {
		t.Fatalf("Settle stopped: %v", err)
	}
	if _, _, err := c.Acquire(ctx, cacheReq("c", 2, 0, T0)); !errors.Is(err, engine.ErrInactive) {
		t.Errorf("Acquire after a stopped settle = %v, want ErrInactive", err)
	}
}

func testCacheForget(t *testing.T, c leasecache.Cache) {
	mustSeed(t, c, "c", leasecache.NewRecord(0))
	mustSeed(t, c, "d", leasecache.NewRecord(0))
	if err := c.Forget(t.Context(), "c"); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if err := c.Forget(t.Context(), "c"); err != nil {
		t.Errorf("Forget of a forgotten record: %v", err)
	}
	if _, _, err := c.Acquire(t.Context(), cacheReq("c", 0, 0, T0)); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Acquire after Forget = %v, want ErrMiss", err)
	}
	mustRecord(t, c, "d") // another execution's record stays
}

// testCacheConcurrent races acquires of one step, and of successive steps
// with settles between, so that a rule applied in two steps (read, then
// write) grants one step twice.
func testCacheConcurrent(t *testing.T, c leasecache.Cache) {
	const workers = 12
	ctx := t.Context()
	mustSeed(t, c, "c", leasecache.NewRecord(0))
	for step := range 5 {
		var mu sync.Mutex
		var granted []engine.Lease
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				l, _, err := c.Acquire(ctx, cacheReq("c", step, 0, T0))
				switch {
				case err == nil:
					mu.Lock()
					granted = append(granted, l)
					mu.Unlock()
				case !errors.Is(err, engine.ErrLeaseHeld):
					errs <- fmt.Errorf("step %d: %w", step, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Acquire: %v", err)
		}
		if len(granted) != 1 {
			t.Fatalf("step %d granted %d times, want once: %+v", step, len(granted), granted)
		}
		if err := c.Settle(ctx, leasecache.Settlement{CorrelationID: "c", Step: step, Fence: granted[0].Fence, Outcome: engine.OutcomeNext}); err != nil {
			t.Fatalf("Settle step %d: %v", step, err)
		}
	}
	if got := mustRecord(t, c, "c"); got.DoneStep != 4 || got.Fence != 5 {
		t.Errorf("after 5 steps: done %d fence %d, want 4 and 5", got.DoneStep, got.Fence)
	}
}

// testCacheLoss drops the server's records: every call then misses (no
// record made up, no fence restarted from zero), and a reseed under a new
// epoch grants fences above every fence granted before.
func testCacheLoss(t *testing.T, c leasecache.Cache, lose func(t *testing.T)) {
	ctx := t.Context()
	mustSeed(t, c, "c", leasecache.NewRecord(0))
	l, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0))
	if err != nil {
		t.Fatal(err)
	}
	lose(t)
	if _, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0)); !errors.Is(err, leasecache.ErrMiss) {
		t.Fatalf("Acquire after the loss = %v, want ErrMiss", err)
	}
	if err := c.Settle(ctx, leasecache.Settlement{CorrelationID: "c", Fence: l.Fence, Outcome: engine.OutcomeNext}); !errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("the old holder's Settle after the loss = %v, want ErrMiss", err)
	}
	mustSeed(t, c, "c", leasecache.NewRecord(1))
	l2, _, err := c.Acquire(ctx, cacheReq("c", 0, 0, T0))
	if err != nil {
		t.Fatalf("Acquire after the reseed: %v", err)
	}
	if l2.Fence <= l.Fence {
		t.Errorf("fence after the reseed %d, not above the lost epoch's %d", l2.Fence, l.Fence)
	}
	if err := c.Settle(ctx, leasecache.Settlement{CorrelationID: "c", Fence: l.Fence, Outcome: engine.OutcomeNext}); !errors.Is(err, engine.ErrFenceLost) {
		t.Errorf("the old holder's Settle after the reseed = %v, want ErrFenceLost", err)
	}
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrLeaseLost is the cause of an action's context cancellation when the
// step's lease could not be renewed: another worker took the step over (this
// one was frozen or cut off longer than the lease), so nothing this attempt
// does will be committed.
var ErrLeaseLost = errors.New("lease lost: another worker took the step over")

// heartbeat renews a step's lease while its actions run (Store.Renew), every
// third of the lease timeout. Steps do not each arm a timer: they register
// with the engine's sweeper (beats), one goroutine that runs only while steps
// are in flight, so a fast step costs a map insert and delete, no store call.
// A renewal refused on the fence (or one that could not be made before the
// lease ran out) cancels the actions' context with ErrLeaseLost.
type heartbeat struct {
	ctx     context.Context // the step's; renewals run without its cancellation
	cancel  context.CancelCauseFunc
	req     LeaseRenewal
	timeout time.Duration

	// expires, renewing and lost are guarded by the engine's beats.mu.
	expires  time.Time
	renewing bool
	lost     bool
}

// beats is the engine's set of steps in flight whose leases it renews.
type beats struct {
	mu      sync.Mutex
	live    map[*heartbeat]struct{}
	running bool
	// every is the sweeper's current period; wake cuts its wait short when
	// a step with a shorter lease registers.
	every time.Duration
	wake  chan struct{}
}

// sweepEvery bounds how late a renewal may start: a sixth of the shortest
// lease in flight (a renewal is due at a third).
func sweepEvery(timeout time.Duration) time.Duration {
	return max(timeout/6, time.Millisecond)
}

// startHeartbeat returns the context the actions of the step leased with l
// run under, and its heartbeat.
func (e *Engine) startHeartbeat(ctx context.Context, sys *SystemContext, l Lease, timeout time.Duration) (context.Context, *heartbeat) {
	actx, cancel := context.WithCancelCause(ctx)
	hb := &heartbeat{
		ctx:     ctx,
		cancel:  cancel,
		req:     LeaseRenewal{CorrelationID: sys.CorrelationID, Fence: l.Fence},
		timeout: timeout,
		expires: l.Expires,
	}
	b := &e.beats
	b.mu.Lock()
	if b.live == nil {
		b.live = make(map[*heartbeat]struct{})
		b.wake = make(chan struct{}, 1)
	}
	b.live[hb] = struct{}{}
	if !b.running {
		b.running = true
		b.every = sweepEvery(timeout)
		go e.sweep()
	} else if sweepEvery(timeout) < b.every {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
	return actx, hb
}

// sweep renews the leases of the steps in flight that are due, until none is
// in flight.
func (e *Engine) sweep() {
	b := &e.beats
	var due []*heartbeat
	for {
		b.mu.Lock()
		if len(b.live) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		every := time.Hour
		now := e.clock.Now()
		due = due[:0]
		for hb := range b.live {
			every = min(every, sweepEvery(hb.timeout))
			if !hb.renewing && !hb.expires.After(now.Add(2*hb.timeout/3)) {
				hb.renewing = true
				due = append(due, hb)
			}
		}
		b.every = every
		b.mu.Unlock()
		for _, hb := range due {
			go e.beat(hb)
		}
		t := time.NewTimer(every)
		select {
		case <-t.C:
		case <-b.wake:
			t.Stop()
		}
	}
}

// beat renews hb's lease once.
func (e *Engine) beat(hb *heartbeat) {
	now := e.clock.Now()
	r := hb.req
	r.Now, r.Expires = now, now.Add(hb.timeout)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(hb.ctx), hb.timeout/3)
	err := e.store.Renew(ctx, r)
	cancel()
	b := &e.beats
	b.mu.Lock()
	defer b.mu.Unlock()
	hb.renewing = false
	switch {
	case err == nil:
		hb.expires = r.Expires
	case errors.Is(err, ErrFenceLost) || !now.Before(hb.expires):
		hb.lost = true
		delete(b.live, hb)
		hb.cancel(fmt.Errorf("%w: %w", ErrLeaseLost, err))
	default:
		// The next sweep tries again; the lease has not run out yet.
		if e.logEnabled {
			e.logger.LogAttrs(hb.ctx, slog.LevelWarn, "lease renewal failed, will retry", slog.String("correlation_id", r.CorrelationID),
				slog.Any("err", err))
		}
	}
}

// lostYet reports whether the lease was lost, leaving the renewals running.
func (hb *heartbeat) lostYet(e *Engine) bool {
	b := &e.beats
	b.mu.Lock()
	defer b.mu.Unlock()
	return hb.lost
}

// stop ends the renewals; it reports whether the lease was lost meanwhile.
func (hb *heartbeat) stop(e *Engine) (lost bool) {
	b := &e.beats
	b.mu.Lock()
	delete(b.live, hb)
	lost = hb.lost
	b.mu.Unlock()
	hb.cancel(nil)
	return lost
}

// renewIfOld renews lease l before the step starts when a third of it or more
// has gone by since it was granted (a delivery that waited in the worker with
// the lease its receive took). It reports false when the lease was lost.
func (e *Engine) renewIfOld(ctx context.Context, sys *SystemContext, l *Lease, timeout time.Duration) bool {
	now := e.clock.Now()
	if l.Expires.IsZero() || l.Expires.Sub(now) > 2*timeout/3 {
		return true
	}
	r := LeaseRenewal{CorrelationID: sys.CorrelationID, Fence: l.Fence, Now: now, Expires: now.Add(timeout)}
	err := e.store.Renew(ctx, r)
	switch {
	case err == nil:
		l.Expires = r.Expires
	case errors.Is(err, ErrFenceLost):
		return false
	default:
		// The heartbeat tries again; if the lease runs out meanwhile the
		// step is taken over and its commit fails on the fence.
		if e.logEnabled {
			e.logger.LogAttrs(ctx, slog.LevelWarn, "lease renewal failed", slog.String("correlation_id", sys.CorrelationID), slog.Any("err", err))
		}
	}
	return true
}

// release gives the lease back after a step that could not be committed, so
// its next delivery takes it at once instead of waiting for it to expire.
// Best effort: a release that fails leaves the lease to expire.
func (e *Engine) release(ctx context.Context, sys *SystemContext, fence int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r := LeaseRenewal{CorrelationID: sys.CorrelationID, Fence: fence, Now: e.clock.Now()}
	if err := e.store.Renew(ctx, r); err != nil && e.logEnabled && !errors.Is(err, ErrFenceLost) {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "cannot give the lease back", slog.String("correlation_id", sys.CorrelationID),
			slog.Any("err", err))
	}
}

// leaseTimeoutOf is the lease timeout of sys's step: its message's
// lease_timeout, else the engine's.
func (e *Engine) leaseTimeoutOf(sys *SystemContext) time.Duration {
	if sys.LeaseTimeout > 0 {
		return seconds(sys.LeaseTimeout)
	}
	return e.leaseTimeout
}

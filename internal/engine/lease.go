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
// third of the lease timeout. A fast step never sees it fire: it costs a
// timer, no store call. A renewal refused on the fence (or one that could not
// be made before the lease ran out) cancels the actions' context with
// ErrLeaseLost.
type heartbeat struct {
	e       *Engine
	ctx     context.Context // for the renewals; not cancelled with the step
	cancel  context.CancelCauseFunc
	req     LeaseRenewal
	timeout time.Duration
	logger  *slog.Logger

	mu      sync.Mutex
	timer   *time.Timer
	expires time.Time
	stopped bool
	lost    bool
}

// startHeartbeat returns the context the actions of the step leased with l
// run under, and its heartbeat. expires is the lease's expiry.
func (e *Engine) startHeartbeat(ctx context.Context, sys *SystemContext, l Lease, timeout time.Duration) (context.Context, *heartbeat) {
	actx, cancel := context.WithCancelCause(ctx)
	hb := &heartbeat{
		e:       e,
		ctx:     context.WithoutCancel(ctx),
		cancel:  cancel,
		req:     LeaseRenewal{CorrelationID: sys.CorrelationID, Fence: l.Fence},
		timeout: timeout,
		expires: l.Expires,
		logger:  e.logger,
	}
	hb.mu.Lock()
	hb.timer = time.AfterFunc(hb.next(), hb.beat)
	hb.mu.Unlock()
	return actx, hb
}

// next is how long to wait before the next renewal: until a third of the
// lease has gone by since it was granted or renewed. The caller holds mu.
func (hb *heartbeat) next() time.Duration {
	left := hb.expires.Sub(hb.e.clock.Now())
	return max(left-2*hb.timeout/3, time.Millisecond)
}

// beat renews the lease and schedules the next renewal.
func (hb *heartbeat) beat() {
	hb.mu.Lock()
	if hb.stopped {
		hb.mu.Unlock()
		return
	}
	hb.mu.Unlock()
	now := hb.e.clock.Now()
	r := hb.req
	r.Now, r.Expires = now, now.Add(hb.timeout)
	ctx, cancel := context.WithTimeout(hb.ctx, hb.timeout/3)
	err := hb.e.store.Renew(ctx, r)
	cancel()
	hb.mu.Lock()
	defer hb.mu.Unlock()
	switch {
	case err == nil:
		hb.expires = r.Expires
	case errors.Is(err, ErrFenceLost) || !now.Before(hb.expires):
		hb.lost = true
		hb.stopped = true
		hb.cancel(fmt.Errorf("%w: %w", ErrLeaseLost, err))
		return
	default:
		// Try again soon; the lease has not run out yet.
		hb.logger.LogAttrs(hb.ctx, slog.LevelWarn, "lease renewal failed, will retry", slog.String("correlation_id", r.CorrelationID),
			slog.Any("err", err))
	}
	if !hb.stopped {
		hb.timer.Reset(hb.next())
	}
}

// stop ends the renewals; it reports whether the lease was lost meanwhile.
func (hb *heartbeat) stop() (lost bool) {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	hb.stopped = true
	hb.timer.Stop()
	hb.cancel(nil)
	return hb.lost
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

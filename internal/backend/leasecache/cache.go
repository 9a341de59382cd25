// Package leasecache is the seam between the engine's lease rule and a cache
// server (Redis or Valkey, Memcached) that keeps an execution's hot path:
// its lease, fence and done marker. Status, checkpoint and history stay in
// the durable store (DynamoDB); see docs/design.md, "Lease caches".
//
// A cache loses data (eviction, a node replaced, a restart, FLUSHALL). The
// seam makes that loss visible instead of silent: a record is never created
// by Acquire, so a lost record is a miss (ErrMiss), and the caller reseeds it
// from the durable store under a new epoch. Fences carry the epoch in their
// high 32 bits, so a fence granted after a loss is greater than every fence
// granted before it, and a stale holder's fence is never current again.
package leasecache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// ErrMiss: the cache holds no record for the execution (never seeded,
// evicted, expired, or lost with the server). The caller seeds it from the
// durable store under a new epoch (Cache.Seed) and asks again.
var ErrMiss = errors.New("lease cache has no record")

// EpochShift is where the epoch sits in a fence: fence = epoch<<EpochShift +
// grants in that epoch.
const EpochShift = 32

// FirstFence is the fence before the first grant of epoch e.
func FirstFence(epoch int64) int64 { return epoch << EpochShift }

// Record is what the acquire rule reads and writes, as a cache holds it for
// one execution.
type Record struct {
	// Epoch is the durable store's epoch the record was seeded under.
	Epoch int64 `json:"ep"`
	// Fence is the last fence granted (or FirstFence(Epoch) before any).
	Fence int64 `json:"f"`
	// DoneStep is the highest step committed as done (-1 when none).
	DoneStep int `json:"ds"`
	// LeaseStep is the step of the last grant (-1 when none); LeaseExpires
	// is zero when the lease is free (committed, given back, never granted).
	LeaseStep    int       `json:"ls"`
	LeaseExpires time.Time `json:"le"`
	// FailedStep and FailedAttempt are the highest failed attempt of the step
	// that last failed with a retry outcome (-1 when none).
	FailedStep    int `json:"fs"`
	FailedAttempt int `json:"fa"`
	// Takeovers counts the current step's lease takeovers (engine.Lease).
	Takeovers int `json:"to"`
	// Stopped refuses every grant (engine.ErrInactive).
	Stopped bool `json:"st,omitempty"`
	// Restarted is the execution's last resume: messages restarted before it
	// are refused.
	Restarted time.Time `json:"rs"`
	// CommitFence is the fence of the last settled commit (0 when none).
	CommitFence int64 `json:"cf"`
	// Retries and Granted are the attempt and the time of the last grant
	// (what the durable store's Acquire would have written: inspect shows
	// them while the step runs).
	Retries int       `json:"rt,omitempty"`
	Granted time.Time `json:"ga"`
}

// NewRecord is the record of an execution the durable store knows nothing
// of beyond its epoch: nothing done, no lease, no failed attempt.
func NewRecord(epoch int64) Record {
	return Record{Epoch: epoch, Fence: FirstFence(epoch), DoneStep: -1, LeaseStep: -1, FailedStep: -1, FailedAttempt: -1}
}

// Settlement is a commit the durable store accepted, as the cache records
// it (Cache.Settle).
type Settlement struct {
	CorrelationID string
	Step, Retries int
	Fence         int64
	Outcome       engine.Outcome
	// Stopped is whether the execution is stopped after the commit (an
	// operator's stop that the commit kept).
	Stopped bool
}

// Cache keeps Records, one per execution, and applies the rules to them
// atomically on the server (a Lua script on Redis, compare-and-swap on
// Memcached). storetest.RunLeaseCache is its conformance suite.
type Cache interface {
	// Seed stores rec for id iff the cache has none, and returns the record
	// the cache then holds: rec, or the one another caller seeded first.
	Seed(ctx context.Context, id string, rec Record) (Record, error)
	// Acquire applies Grant to the request's record in one atomic step and
	// returns the lease and the record after the grant. A refusal is
	// Grant's (engine.ErrDuplicate, ErrLeaseHeld, ErrInactive), with the
	// record unchanged; ErrMiss when there is no record.
	Acquire(ctx context.Context, r engine.AcquireRequest) (engine.Lease, Record, error)
	// Renew applies Extend: ErrFenceLost unless r.Fence is the record's
	// fence and its lease is held; ErrMiss when there is no record.
	Renew(ctx context.Context, r engine.LeaseRenewal) error
	// Settle applies Settle's rule: ErrFenceLost unless s.Fence is the
	// record's fence and its lease is held; ErrMiss when there is no record.
	Settle(ctx context.Context, s Settlement) error
	// Forget deletes id's record, if any (an operator call changed what the
	// rule reads; the next Acquire misses and reseeds).
	Forget(ctx context.Context, id string) error
	// Get returns id's record, or ErrMiss.
	Get(ctx context.Context, id string) (Record, error)
}

// Grant applies the acquire rule of engine.Store.Acquire to rec for q: on a
// grant it updates rec (fence, lease, takeovers) and returns the lease;
// otherwise it returns the refusal and leaves rec as it was. It is the rule
// Memcached's compare-and-swap loop runs; Redis runs the same rule in Lua
// (redis.acquireScript), and RunLeaseCache holds both to it.
func Grant(rec *Record, q engine.AcquireRequest) (engine.Lease, error) {
	switch {
	case rec.Stopped:
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrInactive)
	case q.Restarted.Before(rec.Restarted):
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: message restarted at %s, before the resume at %s: %w",
			q.CorrelationID, q.Step, q.Restarted.Format(time.RFC3339), rec.Restarted.Format(time.RFC3339), engine.ErrDuplicate)
	case rec.DoneStep >= q.Step:
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: step %d done: %w", q.CorrelationID, q.Step, rec.DoneStep, engine.ErrDuplicate)
	case !rec.LeaseExpires.IsZero() && q.Now.Before(rec.LeaseExpires) && rec.LeaseStep >= q.Step:
		if rec.LeaseStep == q.Step {
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrLeaseHeld)
		}
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: step %d holds the lease: %w", q.CorrelationID, q.Step, rec.LeaseStep, engine.ErrDuplicate)
	case rec.FailedStep == q.Step && rec.FailedAttempt >= q.Retries:
		return engine.Lease{}, fmt.Errorf("acquire %s step %d attempt %d: attempt %d failed: %w", q.CorrelationID, q.Step, q.Retries, rec.FailedAttempt, engine.ErrDuplicate)
	}
	if !rec.LeaseExpires.IsZero() && rec.LeaseStep == q.Step {
		rec.Takeovers++ // its holder let it expire
	} else if rec.LeaseStep != q.Step {
		rec.Takeovers = 0
	}
	rec.Fence++
	rec.LeaseStep = q.Step
	rec.LeaseExpires = q.Expires
	rec.Retries = q.Retries
	rec.Granted = q.Now
	return engine.Lease{Fence: rec.Fence, Takeovers: rec.Takeovers, Expires: q.Expires}, nil
}

// Extend applies engine.Store.Renew's rule to rec.
func Extend(rec *Record, r engine.LeaseRenewal) error {
	if rec.Fence != r.Fence || rec.LeaseExpires.IsZero() {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	}
	rec.LeaseExpires = r.Expires
	return nil
}

// Settle records in rec a commit the durable store accepted: the done step
// (or the failed attempt of a retry), the lease freed, the commit's fence.
// It refuses (ErrFenceLost) a fence that is not current or a lease already
// freed, as engine.Store.Commit does.
func Settle(rec *Record, s Settlement) error {
	if rec.Fence != s.Fence || rec.LeaseExpires.IsZero() {
		return fmt.Errorf("settle %s step %d fence %d: %w", s.CorrelationID, s.Step, s.Fence, engine.ErrFenceLost)
	}
	if s.Outcome == engine.OutcomeRetry {
		if rec.FailedStep != s.Step {
			rec.FailedStep, rec.FailedAttempt = s.Step, s.Retries
		} else {
			rec.FailedAttempt = max(rec.FailedAttempt, s.Retries)
		}
	} else if s.Step > rec.DoneStep {
		rec.DoneStep = s.Step
	}
	rec.LeaseExpires = time.Time{}
	rec.Stopped = s.Stopped
	rec.CommitFence = s.Fence
	return nil
}

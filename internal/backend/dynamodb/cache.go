package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/engine"
)

// The composite store: with Options.Cache, an execution's lease, fence and
// done marker live in a lease cache (Redis, Memcached) and Acquire writes
// nothing to DynamoDB; status, checkpoint and history stay in the table
// (docs/design.md, "Lease caches"). A cache loses records (eviction, a
// flush, a node replaced), so the table keeps an epoch per execution (ep):
// a miss bumps it and reseeds the record from the execution item under the
// new epoch, fences carry the epoch in their high bits, and the commit is
// conditioned on the guard below, so that nothing granted before a loss can
// commit after it, and no step is committed twice.

// cacheGuard is the commit's condition with a lease cache: the grant's epoch
// is the execution's (or its lease was carried over by an operator's stop,
// lf), the last commit is the one the grant followed (cf = :pf), and the
// step is not done yet.
const cacheGuard = "attribute_exists(pk) AND attribute_not_exists(tomb) AND (ep = :ep OR lf = :f) AND cf = :pf AND ds < :step"

// epochOf is the epoch a fence was granted in.
func epochOf(fence int64) int64 { return fence >> leasecache.EpochShift }

// newItem is e's item as Create writes it; with a lease cache it starts at
// epoch 0, which Create seeds.
func (s *Store) newItem(e engine.Execution) map[string]av {
	m := encodeNew(e)
	if s.cache != nil {
		m["ep"] = vn(0)
	}
	return m
}

// seedNew seeds the record of an execution just created at epoch 0, so
// that its first Acquire needs no reseed. Best effort: without it the first
// Acquire misses and reseeds (one more write). A new execution starts on
// the primary lease store.
func (s *Store) seedNew(ctx context.Context, id string) {
	if s.cache != nil {
		_, _ = s.cache.Seed(ctx, id, leasecache.NewRecord(0))
	}
}

// forget drops id's record from the lease store sd, best effort: a record
// that outlives it is caught by the commit's guard and forgotten then.
func (s *Store) forget(ctx context.Context, id string, sd side) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.cacheOf(sd).Forget(ctx, id)
}

// forgetAll drops id's record from the lease store r names (its error is
// returned: an operator's change must reach it) and, best effort, from the
// other one.
func (s *Store) forgetAll(ctx context.Context, r record) error {
	sd := sideOf(r)
	if s.cache2 != nil {
		s.forget(ctx, r.e.CorrelationID, 1-sd)
	}
	return s.cacheOf(sd).Forget(ctx, r.e.CorrelationID)
}

// acquireCached is Acquire on the lease cache: one cache call on the happy
// path. A miss reseeds the record (reseed) and asks again.
func (s *Store) acquireCached(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	sd := primary
	if s.cache2 != nil && q.LeasePrimary != nil && !*q.LeasePrimary {
		sd = secondary
	}
	// moved: sd is not the store the message names. The other store may
	// grant only from a record of its own (seeded by an earlier switch: if
	// the execution has switched again since, its epoch is behind the
	// item's and the commit's guard refuses the grant); on a miss there the
	// reseed is the fenced switch.
	moved := false
	if s.cache2 != nil && !s.health[sd].up() && s.health[1-sd].up() {
		sd, moved = 1-sd, true // it keeps failing: no call to it
	}
	for range 4 {
		l, rec, err := s.cacheOf(sd).Acquire(ctx, q)
		if s.cache2 != nil && (err == nil || errors.Is(err, leasecache.ErrMiss) || errors.Is(err, engine.ErrDuplicate) ||
			errors.Is(err, engine.ErrLeaseHeld) || errors.Is(err, engine.ErrInactive)) {
			s.health[sd].record(nil)
		}
		switch {
		case err == nil:
			if l.Takeovers > 0 {
				if err := s.checkTakeover(ctx, q, sd); err != nil {
					return engine.Lease{}, err
				}
			}
			s.remember(q.CorrelationID, l.Fence, grant{rec.CommitFence, rec.Takeovers})
			if s.cache2 != nil {
				s.rememberSide(q.CorrelationID, l.Fence, sd)
				isPrimary := sd == primary
				l.LeasePrimary = &isPrimary
			}
			s.stats.grants.Add(1)
			return l, nil
		case errors.Is(err, leasecache.ErrMiss):
			if moved {
				s.stats.switches.Add(1)
			}
			if err := s.reseed(ctx, q, sd); err != nil {
				return engine.Lease{}, err
			}
		case errors.Is(err, engine.ErrDuplicate):
			if s.q != nil && mayBeLastCommit(q, rec) {
				if rerr := s.resendIfUnsent(ctx, q); rerr != nil {
					return engine.Lease{}, rerr
				}
			}
			return engine.Lease{}, err
		case errors.Is(err, engine.ErrLeaseHeld), errors.Is(err, engine.ErrInactive):
			return engine.Lease{}, err
		default:
			if s.cache2 == nil || moved || ctx.Err() != nil {
				return engine.Lease{}, fmt.Errorf("acquire %s step %d on the %s lease cache: %w", q.CorrelationID, q.Step, sd, err)
			}
			// Not a failover call by call: the failed call may have granted
			// the lease (its answer lost), so the other store grants only
			// from a record of its own, or after the fenced switch, whose
			// epoch bump makes every grant of this one uncommittable.
			s.health[sd].record(err)
			sd, moved = 1-sd, true
		}
	}
	return engine.Lease{}, fmt.Errorf("acquire %s step %d: the lease cache kept losing the record; the message comes back", q.CorrelationID, q.Step)
}

// mayBeLastCommit reports whether a refused q may be a redelivery of the
// execution's last commit's own message with nothing leased since (the
// cache's view of outboxMayBeUnsent): then its outgoing message may never
// have been sent, and the execution item says for sure. Nothing was leased
// since when the last grant is the last commit's, or when nothing was
// granted since the record was seeded (a reseed after a failed settle or a
// loss: the seeded lease is the item's, the last commit's).
func mayBeLastCommit(q engine.AcquireRequest, rec leasecache.Record) bool {
	doneHere := rec.DoneStep == q.Step || (rec.FailedStep == q.Step && rec.FailedAttempt == q.Retries)
	unleased := rec.Fence == rec.CommitFence || rec.Fence == leasecache.FirstFence(rec.Epoch)
	return doneHere && rec.LeaseStep == q.Step && rec.LeaseExpires.IsZero() && unleased && !rec.Stopped
}

// checkTakeover reads the execution item after the cache granted q's step
// by a takeover (or again after one): a record whose settle and forget both
// failed still holds the lease of a commit DynamoDB accepted, and its
// expiry is no sign that the holder died. When the table says the step is
// done (or the attempt failed), the grant is refused as the plain store's
// Acquire refuses it (ErrDuplicate), the record is forgotten so that the
// next acquire reseeds, and the commit's outbox is sent again when q is
// that commit's message: otherwise the step would run again, its commit be
// refused by the guard, and nothing resend the outbox. One read per
// takeover, which is rare (a holder that crashed or ran out its lease).
func (s *Store) checkTakeover(ctx context.Context, q engine.AcquireRequest, sd side) error {
	r, err := s.get(ctx, q.CorrelationID)
	if errors.Is(err, engine.ErrNotFound) {
		return nil // no item: the guard decides
	}
	if err != nil {
		return fmt.Errorf("acquire %s step %d: check the takeover in DynamoDB table %s: %w; the message comes back", q.CorrelationID, q.Step, *s.table, err)
	}
	rerr := refusal(q, r)
	if !errors.Is(rerr, engine.ErrDuplicate) {
		return nil
	}
	s.stats.refused.Add(1)
	s.forget(ctx, q.CorrelationID, sd)
	if !errors.Is(rerr, engine.ErrPruned) && s.q != nil && outboxMayBeUnsent(q, r, r.lastStep) {
		if err := s.resendOutbox(ctx, q.CorrelationID, r.lastStep); err != nil {
			return err
		}
	}
	return rerr
}

// resendIfUnsent reads the execution item and re-sends its last commit's
// outbox when q is that commit's message (see outboxMayBeUnsent).
func (s *Store) resendIfUnsent(ctx context.Context, q engine.AcquireRequest) error {
	r, err := s.get(ctx, q.CorrelationID)
	if err != nil {
		return nil // refused anyway; a missing item has no outbox
	}
	if r.e.LeaseExpires.IsZero() && outboxMayBeUnsent(q, r, r.lastStep) {
		return s.resendOutbox(ctx, q.CorrelationID, r.lastStep)
	}
	return nil
}

// reseed bumps the execution's epoch with one UpdateItem (ALL_NEW) and
// seeds the lease store sd from the item it returns, under the new epoch.
// With a secondary lease store the same update records sd as the
// execution's lease store (lc): that is the fenced switch, since nothing
// granted under an earlier epoch, on either store, passes the commit's
// guard any more. An execution with no item (another producer's message)
// is created at epoch 0 and seeded.
func (s *Store) reseed(ctx context.Context, q engine.AcquireRequest, sd side) error {
	update := "SET ep = if_not_exists(ep, :zero) + :one"
	vals := map[string]av{":zero": vn(0), ":one": vn(1)}
	if s.cache2 != nil {
		update += ", lc = :lc"
		vals[":lc"] = vs(sd.attr())
	}
	out, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: s.table, Key: key(q.CorrelationID, execSK),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND attribute_not_exists(tomb)"),
		UpdateExpression:                    aws.String(update),
		ExpressionAttributeValues:           vals,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf) && len(ccf.Item) > 0:
		return fmt.Errorf("acquire %s step %d: %w: %w", q.CorrelationID, q.Step, engine.ErrPruned, engine.ErrDuplicate)
	case errors.As(err, &ccf):
		// No execution item: another producer's first message, or one TTL
		// or a prune deleted (its tombstone says so).
		if t, retired, err := s.tombstoneOf(ctx, q.CorrelationID); err != nil {
			return fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, err)
		} else if retired {
			return fmt.Errorf("acquire %s step %d: execution retired (%s): %w: %w", q.CorrelationID, q.Step, t, engine.ErrPruned, engine.ErrDuplicate)
		}
		item := s.newItem(engine.Execution{
			CorrelationID: q.CorrelationID, Machine: q.Machine, Status: engine.StatusRunning,
			DoneStep: -1, LeaseStep: -1, CreatedAt: q.Now, UpdatedAt: q.Now,
		})
		if sd == secondary {
			item["lc"] = vs(sd.attr())
		}
		_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
			TableName: s.table, Item: item,
			ConditionExpression:    aws.String("attribute_not_exists(pk)"),
			ReturnConsumedCapacity: capacity,
		})
		if errors.As(err, &ccf) {
			return nil // created meanwhile: the next miss reseeds it
		}
		if err != nil {
			return fmt.Errorf("acquire %s step %d in DynamoDB table %s: %w", q.CorrelationID, q.Step, *s.table, err)
		}
		_, _ = s.cacheOf(sd).Seed(ctx, q.CorrelationID, leasecache.NewRecord(0))
		return nil
	case err != nil:
		return fmt.Errorf("acquire %s step %d: reseed the lease cache from DynamoDB table %s: %w", q.CorrelationID, q.Step, *s.table, err)
	}
	s.stats.reseeds.Add(1)
	r := decodeExec(out.Attributes)
	rec := seedFrom(r)
	for range 3 {
		got, err := s.cacheOf(sd).Seed(ctx, q.CorrelationID, rec)
		if err != nil {
			return fmt.Errorf("acquire %s step %d: seed the lease cache: %w", q.CorrelationID, q.Step, err)
		}
		if got.Epoch >= rec.Epoch {
			return nil // ours, or a later reseed's
		}
		// A record of an earlier epoch (seeded before our bump): nothing
		// granted from it can commit any more.
		if err := s.cacheOf(sd).Forget(ctx, q.CorrelationID); err != nil {
			return fmt.Errorf("acquire %s step %d: replace a stale lease record: %w", q.CorrelationID, q.Step, err)
		}
	}
	return nil
}

// seedFrom is the cache record of execution item r under its epoch: what
// the acquire rule reads, as the table holds it. The lease (step, expiry)
// is the last commit's, or one an operator's stop carried over; its fence
// is of an earlier epoch, so no grant of the new one equals it.
func seedFrom(r record) leasecache.Record {
	rec := leasecache.NewRecord(r.epoch)
	rec.DoneStep = r.e.DoneStep
	rec.LeaseStep = r.e.LeaseStep
	rec.LeaseExpires = r.e.LeaseExpires
	rec.FailedStep, rec.FailedAttempt = r.failedStep, r.failedAttempt
	rec.Takeovers = r.e.Takeovers
	rec.Stopped = r.e.Status == engine.StatusStopped
	rec.Restarted = fromNano(r.restarted)
	rec.CommitFence = r.committed
	rec.Retries = r.e.Retries
	return rec
}

// precheck is the cache's half of the commit's fence check: a grant of
// c's epoch that is not c's (a takeover), or a lease already freed
// (committed, given back), is ErrFenceLost before anything is written, as
// on the plain store. A record of another epoch, or none (lost), leaves it
// to the guard on DynamoDB. It returns what the grant remembered.
func (s *Store) precheck(ctx context.Context, c engine.Commit, g grant, ok bool) (grant, error) {
	rec, err := s.cacheOf(s.sideOfGrant(c.CorrelationID, c.Fence, false)).Get(ctx, c.CorrelationID)
	if err == nil && rec.Epoch == epochOf(c.Fence) {
		if rec.Fence != c.Fence || rec.LeaseExpires.IsZero() {
			return g, lostFence(c)
		}
		if !ok {
			g, ok = grant{rec.CommitFence, rec.Takeovers}, true
		}
	}
	if !ok {
		return g, lostFence(c)
	}
	return g, nil
}

// settle records a commit DynamoDB accepted in the cache; a record that
// refuses it (a loss, a reseed, a takeover meanwhile) no longer matches the
// table and is forgotten, so the next Acquire reseeds.
func (s *Store) settle(ctx context.Context, c engine.Commit, stopped bool) {
	sd := s.sideOfGrant(c.CorrelationID, c.Fence, true)
	err := s.cacheOf(sd).Settle(ctx, leasecache.Settlement{
		CorrelationID: c.CorrelationID, Step: c.Step, Retries: c.Retries, Fence: c.Fence,
		Outcome: c.Outcome, Stopped: stopped,
	})
	if err != nil {
		s.forget(ctx, c.CorrelationID, sd)
	}
}

// guardFailed classifies a commit whose guard may have failed, from the
// item the failed condition returned: nil when the guard holds (the
// condition failed on the status: an operator's stop), ErrFenceLost when
// the step is done already (another holder committed it and carries on),
// else an error that brings the message back (the cached record was of a
// lost epoch or out of date: nobody committed the step, so dropping the
// message would strand the execution). The cached record is forgotten
// unless the guard holds.
func (s *Store) guardFailed(ctx context.Context, c engine.Commit, r record, prev int64) error {
	if !r.tomb && (r.epoch == epochOf(c.Fence) || r.carried == c.Fence) && r.committed == prev && r.e.DoneStep < c.Step {
		return nil
	}
	s.stats.refused.Add(1)
	s.forget(ctx, c.CorrelationID, s.sideOfGrant(c.CorrelationID, c.Fence, true))
	if r.tomb || r.e.DoneStep >= c.Step {
		return lostFence(c)
	}
	return fmt.Errorf("commit %s step %d fence %d: the lease cache's record was out of date (lost or reseeded): nothing written; the message comes back",
		c.CorrelationID, c.Step, c.Fence)
}

// overlay shows on r the lease the cache granted since the last commit, as
// the plain store's Acquire would have written it on the execution item:
// fence, lease, attempt, takeovers, the grant's time, and running. A cache
// that cannot be read (or has no record) leaves the table's view.
func (s *Store) overlay(ctx context.Context, r *record) {
	rec, err := s.cacheOf(sideOf(*r)).Get(ctx, r.e.CorrelationID)
	if err != nil {
		return
	}
	overlayRecord(r, rec)
}

func overlayRecord(r *record, rec leasecache.Record) {
	if rec.Epoch != r.epoch || rec.Fence <= leasecache.FirstFence(rec.Epoch) || rec.Fence <= r.committed {
		return // no grant since the last commit (or a record of another epoch)
	}
	r.e.Fence, r.e.LeaseStep, r.e.LeaseExpires = rec.Fence, rec.LeaseStep, rec.LeaseExpires
	r.e.Takeovers, r.e.Retries = rec.Takeovers, rec.Retries
	if rec.Granted.After(r.e.UpdatedAt) {
		r.e.UpdatedAt = rec.Granted
	}
	if r.e.Status != engine.StatusStopped {
		r.e.Status = engine.StatusRunning
	}
}

// viewed reads id's item and its cached lease for an operator call: the
// record as the table holds it, the execution as the plain store would
// hold it, and the cached record (ok false on a miss). A cache that cannot
// be read fails the call: an operator's change must reach the cache.
func (s *Store) viewed(ctx context.Context, id string) (raw, view record, rec leasecache.Record, ok bool, err error) {
	raw, err = s.get(ctx, id)
	if err != nil {
		return raw, raw, rec, false, err
	}
	view = raw
	rec, err = s.cacheOf(sideOf(raw)).Get(ctx, id)
	switch {
	case err == nil:
		overlayRecord(&view, rec)
		return raw, view, rec, true, nil
	case errors.Is(err, leasecache.ErrMiss):
		return raw, view, rec, false, nil
	default:
		return raw, view, rec, false, fmt.Errorf("read the lease of %s: %w", id, err)
	}
}

// renewCached is Renew on the cache. A miss is not a lost fence while the
// table's epoch is still the grant's (nobody reseeded, so the commit can
// still land): the heartbeat tries again, and the engine gives the step up
// only when the lease would have run out.
func (s *Store) renewCached(ctx context.Context, r engine.LeaseRenewal) error {
	err := s.cacheOf(s.sideOfGrant(r.CorrelationID, r.Fence, false)).Renew(ctx, r)
	if !errors.Is(err, leasecache.ErrMiss) {
		if err != nil && !errors.Is(err, engine.ErrFenceLost) {
			return fmt.Errorf("renew the lease of %s on the lease cache: %w", r.CorrelationID, err)
		}
		return err
	}
	x, gerr := s.get(ctx, r.CorrelationID)
	switch {
	case errors.Is(gerr, engine.ErrNotFound):
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	case gerr != nil:
		return gerr
	case x.epoch != epochOf(r.Fence) && x.carried != r.Fence:
		return fmt.Errorf("renew the lease of %s fence %d: the lease cache was reseeded: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	case r.Expires.IsZero():
		return nil // nothing left to give back
	}
	return fmt.Errorf("renew the lease of %s fence %d: the lease cache lost its record (the commit can still land)", r.CorrelationID, r.Fence)
}

// CacheStats counts what the lease cache cost the store since it was made.
type CacheStats struct {
	// Grants is the leases the cache granted.
	Grants int64
	// Reseeds is the records reseeded from the table after a miss (one
	// UpdateItem each).
	Reseeds int64
	// Refused is the commits the guard refused: a holder of a lost epoch, or
	// of a record that was out of date.
	Refused int64
	// Switches is the fenced switches to the other lease store after a
	// failed call (one UpdateItem each, counted in Reseeds too).
	Switches int64
}

// CacheStats reports the lease cache's counts (zero without a cache).
func (s *Store) CacheStats() CacheStats {
	return CacheStats{Grants: s.stats.grants.Load(), Reseeds: s.stats.reseeds.Load(), Refused: s.stats.refused.Load(), Switches: s.stats.switches.Load()}
}

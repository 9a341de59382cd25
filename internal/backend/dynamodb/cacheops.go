package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// The operator calls with a lease cache: each reads the execution item and
// the cached lease, applies the plain store's rule to what the plain store
// would hold, writes the table on the condition that no commit came in
// between (cf, status, done step, failed attempt), and then forgets the
// cached record, so that the next Acquire reseeds it from what the call
// wrote (docs/design.md, "Lease caches").

// setStatusCached is SetStatus with a lease cache. A stop carries the
// lease in flight over to the table (fence, step, expiry, attempt, and lf,
// which the commit's guard accepts in place of the epoch), because the
// reseed that follows the Forget starts a new epoch: the step in flight
// may still commit, keeping the stop, as on the plain store. A resume
// drops the carried lease.
func (s *Store) setStatusCached(ctx context.Context, id string, st engine.Status, reason string, now time.Time) error {
	for range 8 {
		raw, r, rec, cached, err := s.viewed(ctx, id)
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("set status of %s: %w", id, engine.ErrNotFound)
		}
		if err != nil {
			return err
		}
		e := r.e
		if e.Status == engine.StatusDone || e.Status == engine.StatusFailed && st == engine.StatusStopped {
			return fmt.Errorf("set status of %s to %s: execution is %s: %w", id, st, e.Status, engine.ErrInactive)
		}
		done, fs, fa := e.DoneStep, r.failedStep, r.failedAttempt
		if e.Status == engine.StatusFailed && !st.Terminal() && done >= e.LeaseStep {
			done = e.LeaseStep - 1
		}
		if e.Status.Terminal() && !st.Terminal() {
			fs, fa = -1, -1
		}
		vals := map[string]av{
			":ocf": vn(raw.committed), ":ost": vs(string(raw.e.Status)), ":ods": vn(int64(raw.e.DoneStep)),
			":ofs": vn(int64(raw.failedStep)), ":ofa": vn(int64(raw.failedAttempt)),
			":st": vs(string(st)), ":ds": vn(int64(done)), ":fs": vn(int64(fs)), ":fa": vn(int64(fa)), ":now": vn(unixNano(now)),
		}
		set := []string{"st = :st", "ds = :ds", "fs = :fs", "fa = :fa", "ua = :now"}
		var remove []string
		if e.Machine != "" {
			vals[":gs"] = vs(statusKey(e.Machine, st))
			set = append(set, "gs = :gs")
		}
		if reason != "" {
			vals[":err"] = vs(reason)
			set = append(set, "err = :err")
		}
		names := map[string]string{"#ttl": ttlAttr}
		switch {
		case st == engine.StatusStopped && cached && e.Fence != raw.ddbFence:
			// A lease granted since the last commit: carry it over.
			vals[":f"], vals[":ls"], vals[":le"] = vn(e.Fence), vn(int64(e.LeaseStep)), vn(unixNano(e.LeaseExpires))
			vals[":rt"], vals[":to"] = vn(int64(e.Retries)), vn(int64(e.Takeovers))
			set = append(set, "f = :f", "ls = :ls", "le = :le", "rt = :rt", "#to = :to")
			names["#to"] = "to"
			if !rec.LeaseExpires.IsZero() {
				set = append(set, "lf = :f")
			} else {
				remove = append(remove, "lf")
			}
		case !st.Terminal():
			remove = append(remove, "lf")
		}
		expr, err := s.retire(ctx, id, e.Machine, st, done, now, vals, set, remove)
		if err != nil {
			return fmt.Errorf("set status of %s: %w", id, err)
		}
		_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: s.table, Key: key(id, execSK),
			ConditionExpression:       aws.String("cf = :ocf AND st = :ost AND ds = :ods AND fs = :ofs AND fa = :ofa"),
			UpdateExpression:          aws.String(expr),
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: vals,
			ReturnConsumedCapacity:    capacity,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set status of %s in DynamoDB table %s: %w", id, *s.table, err)
		}
		if err := s.forgetAll(ctx, raw); err != nil {
			return fmt.Errorf("set status of %s to %s: written to DynamoDB, but the lease cache still holds the old record (run it again): %w", id, st, err)
		}
		return nil
	}
	return fmt.Errorf("set status of %s: the execution kept changing; try again", id)
}

// reopenCached is Reopen with a lease cache: the plain store's rule on the
// cached lease, one conditional write (which drops a carried lease), then
// Forget.
func (s *Store) reopenCached(ctx context.Context, r engine.Reopen) error {
	for range 8 {
		raw, x, _, _, err := s.viewed(ctx, r.CorrelationID)
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("reopen %s: %w", r.CorrelationID, engine.ErrNotFound)
		}
		if err != nil {
			return err
		}
		e := x.e
		if raw.expires != 0 && raw.expires <= r.Now.Unix() {
			// Past its retention: TTL deletes it (and its history) any time.
			return fmt.Errorf("reopen %s: its retention ended at %s: %w: %w", r.CorrelationID,
				time.Unix(raw.expires, 0).UTC().Format(time.RFC3339), engine.ErrPruned, engine.ErrNotFound)
		}
		if e.Status != r.From || (r.From != engine.StatusFailed && r.From != engine.StatusStopped) || r.To.Terminal() {
			return fmt.Errorf("reopen %s from %s to %s: %w", r.CorrelationID, r.From, r.To,
				&engine.StatusError{CorrelationID: r.CorrelationID, Status: e.Status, DoneStep: e.DoneStep,
					Want: engine.StatusSwap{CorrelationID: r.CorrelationID, Step: e.DoneStep, From: r.From, To: r.To}})
		}
		done := e.DoneStep
		if e.Status == engine.StatusFailed && done >= e.LeaseStep {
			done = e.LeaseStep - 1
		}
		vals := map[string]av{
			":ocf": vn(raw.committed), ":ost": vs(string(raw.e.Status)), ":ods": vn(int64(raw.e.DoneStep)),
			":st": vs(string(r.To)), ":ds": vn(int64(done)), ":none": vn(-1), ":zero": vn(0),
			":du": vn(unixNano(r.DueAt)), ":now": vn(unixNano(r.Now)),
		}
		set := []string{"st = :st", "ds = :ds", "fs = :none", "fa = :none", "#to = :zero", "du = :du", "ua = :now"}
		if e.Machine != "" {
			vals[":gs"] = vs(statusKey(e.Machine, r.To))
			set = append(set, "gs = :gs")
		}
		if r.Checkpoint != nil {
			vals[":cp"] = vb(r.Checkpoint)
			set = append(set, "cp = :cp")
		}
		if r.To == engine.StatusRunning {
			set = append(set, "rs = :now")
		}
		_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: s.table, Key: key(r.CorrelationID, execSK),
			ConditionExpression:       aws.String("cf = :ocf AND st = :ost AND ds = :ods"),
			UpdateExpression:          aws.String("SET " + strings.Join(set, ", ") + " REMOVE lf, #ttl"),
			ExpressionAttributeNames:  map[string]string{"#to": "to", "#ttl": ttlAttr},
			ExpressionAttributeValues: vals,
			ReturnConsumedCapacity:    capacity,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reopen %s in DynamoDB table %s: %w", r.CorrelationID, *s.table, err)
		}
		if err := s.forgetAll(ctx, raw); err != nil {
			return fmt.Errorf("reopen %s: written to DynamoDB, but the lease cache still holds the old record (resume it again): %w", r.CorrelationID, err)
		}
		return nil
	}
	return fmt.Errorf("reopen %s: the execution kept changing; try again", r.CorrelationID)
}

// swapStatusCached is SwapStatus with a lease cache: the lease step is the
// cache's, so a claim is refused when the cache granted a later step; the
// write is conditional on the table's status and done step as on the plain
// store. Nothing the acquire rule reads changes (a swap never stops), so
// the cached record stays.
func (s *Store) swapStatusCached(ctx context.Context, w engine.StatusSwap) error {
	raw, x, _, _, err := s.viewed(ctx, w.CorrelationID)
	if errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("swap status of %s: %w", w.CorrelationID, engine.ErrNotFound)
	}
	if err != nil {
		return err
	}
	refused := func(r record) error {
		return fmt.Errorf("swap status of %s from %s to %s: %w", w.CorrelationID, w.From, w.To,
			&engine.StatusError{CorrelationID: w.CorrelationID, Status: r.e.Status, DoneStep: r.e.DoneStep, Want: w})
	}
	if x.e.Status != w.From || x.e.DoneStep != w.Step || x.e.LeaseStep > w.Step {
		return refused(x)
	}
	vals := map[string]av{":from": vs(string(w.From)), ":to": vs(string(w.To)), ":step": vn(int64(w.Step)), ":now": vn(unixNano(w.Now)),
		":du": vn(unixNano(w.DueAt)), ":cf": vn(raw.committed)}
	set := []string{"st = :to", "ua = :now", "du = :du"}
	if x.e.Machine != "" {
		vals[":gs"] = vs(statusKey(x.e.Machine, w.To))
		set = append(set, "gs = :gs")
	}
	if w.Checkpoint != nil {
		vals[":cp"] = vb(w.Checkpoint)
		set = append(set, "cp = :cp")
	}
	expr, err := s.retire(ctx, w.CorrelationID, x.e.Machine, w.To, w.Step, w.Now, vals, set, nil)
	if err != nil {
		return fmt.Errorf("swap status of %s: %w", w.CorrelationID, err)
	}
	_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: s.table, Key: key(w.CorrelationID, execSK),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND st = :from AND ds = :step AND cf = :cf"),
		UpdateExpression:                    aws.String(expr),
		ExpressionAttributeNames:            map[string]string{"#ttl": ttlAttr},
		ExpressionAttributeValues:           vals,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if len(ccf.Item) == 0 {
			return fmt.Errorf("swap status of %s: %w", w.CorrelationID, engine.ErrNotFound)
		}
		r := decodeExec(ccf.Item)
		s.overlay(ctx, &r)
		return refused(r)
	}
	if err != nil {
		return fmt.Errorf("swap status of %s in DynamoDB table %s: %w", w.CorrelationID, *s.table, err)
	}
	return nil
}

package dynamodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// The protocol-hardening seams of issue 6 (docs/design.md, "Leases and
// heartbeats", "Never stranded"): Renew, Reopen and Stranded, with due
// times (du), takeover counts (to) and the restart time (rs) in the
// execution item.

// Renew implements engine.Store: one conditional UpdateItem of the lease's
// expiry (le), on the fence and a held lease.
func (s *Store) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	if s.cache != nil {
		return s.renewCached(ctx, r)
	}
	_, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: s.table, Key: key(r.CorrelationID, execSK),
		ConditionExpression:       aws.String("attribute_exists(pk) AND f = :f AND le <> :zero"),
		UpdateExpression:          aws.String("SET le = :exp"),
		ExpressionAttributeValues: map[string]av{":f": vn(r.Fence), ":zero": vn(0), ":exp": vn(unixNano(r.Expires))},
		ReturnConsumedCapacity:    capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	}
	if err != nil {
		return fmt.Errorf("renew the lease of %s in DynamoDB table %s: %w", r.CorrelationID, *s.table, err)
	}
	return nil
}

// Reopen implements engine.Store: a read, then one write conditional on
// what the rule read (status, done and lease step, fence), retried if a
// step came in between. It applies SetStatus's resume rule, forgets failed
// attempts and takeovers, and records the restart time for running.
func (s *Store) Reopen(ctx context.Context, r engine.Reopen) error {
	if s.cache != nil {
		return s.reopenCached(ctx, r)
	}
	for range 8 {
		x, err := s.get(ctx, r.CorrelationID)
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("reopen %s: %w", r.CorrelationID, engine.ErrNotFound)
		}
		if err != nil {
			return err
		}
		e := x.e
		if x.expires != 0 && x.expires <= r.Now.Unix() {
			// Past its retention: TTL deletes it (and its history) any time.
			return fmt.Errorf("reopen %s: its retention ended at %s: %w: %w", r.CorrelationID,
				time.Unix(x.expires, 0).UTC().Format(time.RFC3339), engine.ErrPruned, engine.ErrNotFound)
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
			":f": vn(e.Fence), ":ost": vs(string(e.Status)), ":ods": vn(int64(e.DoneStep)), ":ols": vn(int64(e.LeaseStep)),
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
			ConditionExpression:       aws.String("f = :f AND st = :ost AND ds = :ods AND ls = :ols"),
			UpdateExpression:          aws.String("SET " + strings.Join(set, ", ") + " REMOVE #ttl"),
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
		return nil
	}
	return fmt.Errorf("reopen %s: the execution kept changing; try again", r.CorrelationID)
}

// Stranded implements engine.Store. DynamoDB has no index of due times:
// one would be written by every commit (the due time changes with every
// message), two more write units per transition. So Stranded sweeps the
// by_shard index (keys only) and reads the executions with BatchGetItem:
// read units in proportion to the executions the table holds, once per
// repair (docs/design.md, "The DynamoDB store"). Each stranded one is
// claimed with a conditional UpdateItem that moves its due time to q.Now,
// so that concurrent repairs return it once.
func (s *Store) Stranded(ctx context.Context, q engine.StrandedQuery) ([]engine.Execution, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	cutoff := unixNano(q.Now.Add(-q.Grace))
	now := unixNano(q.Now)
	var cands []record
	for _, p := range partitions(engine.ListFilter{}) {
		in := &ddb.QueryInput{
			TableName: s.table, IndexName: aws.String(p.index),
			KeyConditionExpression:    aws.String("#k = :v"),
			ExpressionAttributeNames:  map[string]string{"#k": p.attr},
			ExpressionAttributeValues: map[string]av{":v": vs(p.value)},
			ReturnConsumedCapacity:    capacity,
		}
		for {
			out, err := s.c.Query(ctx, in)
			if err != nil {
				return nil, fmt.Errorf("stranded executions from DynamoDB table %s: %w", *s.table, err)
			}
			ids := make([]string, 0, len(out.Items))
			for _, it := range out.Items {
				ids = append(ids, getS(it, attrPK))
			}
			recs, err := s.batchGet(ctx, ids)
			if err != nil {
				return nil, err
			}
			for _, r := range recs {
				if s.cache != nil && r.e.Status == engine.StatusRunning {
					s.overlay(ctx, &r)
				}
				du, le := unixNano(r.e.DueAt), unixNano(r.e.LeaseExpires)
				if r.e.Status == engine.StatusRunning && du != 0 && du <= cutoff && (le == 0 || now >= le) && !r.tomb {
					cands = append(cands, r)
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	slices.SortFunc(cands, func(x, y record) int {
		if c := x.e.DueAt.Compare(y.e.DueAt); c != 0 {
			return c
		}
		return cmp.Compare(x.e.CorrelationID, y.e.CorrelationID)
	})
	out := []engine.Execution{}
	for _, r := range cands {
		if len(out) == limit {
			break
		}
		_, err := s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: s.table, Key: key(r.e.CorrelationID, execSK),
			ConditionExpression:       aws.String("st = :running AND du = :du AND f = :f"),
			UpdateExpression:          aws.String("SET du = :now"),
			ExpressionAttributeValues: map[string]av{":running": vs(string(engine.StatusRunning)), ":du": vn(unixNano(r.e.DueAt)), ":f": vn(r.ddbFence), ":now": vn(now)},
			ReturnConsumedCapacity:    capacity,
		})
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			continue // it moved on, or another repair claimed it
		}
		if err != nil {
			return out, fmt.Errorf("claim stranded %s in DynamoDB table %s: %w", r.e.CorrelationID, *s.table, err)
		}
		x, err := s.Get(ctx, r.e.CorrelationID)
		if err != nil {
			return out, err
		}
		out = append(out, x)
	}
	return out, nil
}

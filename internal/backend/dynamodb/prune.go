package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// attrTomb marks an execution item that an earlier version of Prune cut
// down to a tombstone in place; such items are still honoured as
// tombstones (retention.go has the one rule).
const attrTomb = "tomb"

// Prune implements engine.Pruner. It reads the executions through the
// by_shard index (keys only) and the items with BatchGetItem, and for each
// finished one updated before r.Before writes its tombstone (the item a
// finish with a retention writes too: status, done step, machine), deletes
// its execution item on the condition that it is still as read (so it
// leaves every index, and Acquire, Get and List see it as pruned), then
// deletes its step items. A crash between the writes leaves a tombstone
// beside an execution that is still there (it counts only once the
// execution item is gone) or step items no chain reaches and no later
// prune finds: at most one execution's worth per crash. Dropped-message
// records older than r.Before are deleted too.
func (s *Store) Prune(ctx context.Context, r engine.PruneRequest) (engine.PruneResult, error) {
	var res engine.PruneResult
	before := unixNano(r.Before)
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
				return res, fmt.Errorf("prune: list executions from DynamoDB table %s: %w", *s.table, err)
			}
			ids := make([]string, 0, len(out.Items))
			for _, it := range out.Items {
				ids = append(ids, getS(it, attrPK))
			}
			recs, err := s.batchGet(ctx, ids)
			if err != nil {
				return res, err
			}
			for _, id := range ids {
				rec, ok := recs[id]
				if !ok || !rec.e.Status.Terminal() || unixNano(rec.e.UpdatedAt) >= before {
					continue
				}
				if r.Limit > 0 && res.Executions >= r.Limit {
					return s.pruneDropped(ctx, before, res)
				}
				n, pruned, err := s.pruneOne(ctx, rec, r.Now)
				if err != nil {
					return res, err
				}
				if pruned {
					res.Executions++
					res.History += n
				}
			}
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return s.pruneDropped(ctx, before, res)
}

// pruneOne retires rec's execution if it is still as read: its tombstone
// first, then its execution item, then its step items; it returns the
// number of history entries it had.
func (s *Store) pruneOne(ctx context.Context, rec record, now time.Time) (int, bool, error) {
	id := rec.e.CorrelationID
	hist, err := s.History(ctx, id)
	if err != nil {
		return 0, false, err
	}
	t := tombstone(id, rec.e.Machine, rec.e.Status, rec.e.DoneStep, now)
	if _, err := s.c.PutItem(ctx, &ddb.PutItemInput{TableName: s.table, Item: t, ReturnConsumedCapacity: capacity}); err != nil {
		return 0, false, fmt.Errorf("prune %s: write its tombstone to DynamoDB table %s: %w", id, *s.table, err)
	}
	_, err = s.c.DeleteItem(ctx, &ddb.DeleteItemInput{
		TableName: s.table, Key: key(id, execSK),
		ConditionExpression: aws.String("attribute_not_exists(tomb) AND st = :st AND ua = :ua AND f = :f"),
		ExpressionAttributeValues: map[string]av{
			":st": vs(string(rec.e.Status)), ":ua": vn(unixNano(rec.e.UpdatedAt)), ":f": vn(rec.e.Fence),
		},
		ReturnConsumedCapacity: capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return 0, false, nil // resumed (or pruned) meanwhile
	}
	if err != nil {
		return 0, false, fmt.Errorf("prune %s in DynamoDB table %s: %w", id, *s.table, err)
	}
	if s.cache != nil {
		// A late message reseeds from the tombstone, which refuses it.
		s.forget(ctx, id, primary)
		if s.cache2 != nil {
			s.forget(ctx, id, secondary)
		}
	}
	var keys []map[string]av
	in := &ddb.QueryInput{
		TableName: s.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :h)"),
		ExpressionAttributeValues: map[string]av{":pk": vs(id), ":h": vs(stepPrefix)},
		ProjectionExpression:      aws.String("pk, sk"),
		ReturnConsumedCapacity:    capacity,
	}
	for {
		out, err := s.c.Query(ctx, in)
		if err != nil {
			return 0, false, fmt.Errorf("prune %s: %w", id, err)
		}
		keys = append(keys, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if err := s.deleteKeys(ctx, keys); err != nil {
		return 0, false, fmt.Errorf("prune %s: %w", id, err)
	}
	return len(hist), true, nil
}

// pruneDropped deletes the dropped-message records older than before.
func (s *Store) pruneDropped(ctx context.Context, before int64, res engine.PruneResult) (engine.PruneResult, error) {
	in := &ddb.QueryInput{
		TableName: s.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk AND sk < :before"),
		ExpressionAttributeValues: map[string]av{":pk": vs(dropPK), ":before": vs(dropSK(before, 0))},
		ProjectionExpression:      aws.String("pk, sk"),
		ReturnConsumedCapacity:    capacity,
	}
	var keys []map[string]av
	for {
		out, err := s.c.Query(ctx, in)
		if err != nil {
			return res, fmt.Errorf("prune dropped messages: %w", err)
		}
		keys = append(keys, out.Items...)
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if err := s.deleteKeys(ctx, keys); err != nil {
		return res, fmt.Errorf("prune dropped messages: %w", err)
	}
	res.Dropped += len(keys)
	return res, nil
}

// deleteKeys deletes items with BatchWriteItem, 25 at a time, until none is
// left unprocessed.
func (s *Store) deleteKeys(ctx context.Context, keys []map[string]av) error {
	for len(keys) > 0 {
		n := min(len(keys), 25)
		reqs := make([]types.WriteRequest, 0, n)
		for _, k := range keys[:n] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(getS(k, attrPK), getS(k, attrSK))}})
		}
		keys = keys[n:]
		req := map[string][]types.WriteRequest{*s.table: reqs}
		for len(req) > 0 {
			out, err := s.c.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{RequestItems: req, ReturnConsumedCapacity: capacity})
			if err != nil {
				return fmt.Errorf("delete from DynamoDB table %s: %w", *s.table, err)
			}
			req = out.UnprocessedItems
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

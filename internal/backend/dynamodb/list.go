package dynamodb

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// partition is one index partition a listing reads.
type partition struct {
	index, attr, value string
}

// partitions returns the index partitions that hold every execution f can
// match. Status lives in the index key (by_status) only as the last commit
// or operator call wrote it: Acquire, which must write no indexed
// attribute, moves waiting, failed and done executions to running without
// it, so a listing of running executions also reads those partitions, and
// every listing checks each execution's real status.
func partitions(f engine.ListFilter) []partition {
	switch {
	case f.Machine != "" && f.Status != "":
		ps := []partition{{indexStatus, attrGS, statusKey(f.Machine, f.Status)}}
		if f.Status == engine.StatusRunning {
			for _, st := range []engine.Status{engine.StatusWaiting, engine.StatusFailed, engine.StatusDone} {
				ps = append(ps, partition{indexStatus, attrGS, statusKey(f.Machine, st)})
			}
		}
		return ps
	case f.Machine != "":
		return []partition{{indexMachine, attrGM, f.Machine}}
	default:
		ps := make([]partition, shards)
		for i := range ps {
			ps[i] = partition{indexShard, attrGA, fmt.Sprintf("s%d", i)}
		}
		return ps
	}
}

func matches(f engine.ListFilter, e engine.Execution) bool {
	return (f.Machine == "" || e.Machine == f.Machine) && (f.Status == "" || e.Status == f.Status) && (f.State == "" || e.State == f.State)
}

// newer orders executions as List returns them.
func newer(x, y engine.Execution) int {
	if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(y.CorrelationID, x.CorrelationID)
}

// List implements engine.Store. Each index partition (one for a machine,
// or a machine and status; 16 shards across machines) is queried newest
// first from the cursor (keyset paging on the creation key, which nothing
// rewrites), the executions it names are read with BatchGetItem (the
// indexes project keys only, so that transitions write no index), filtered,
// and the partitions' matches are merged.
func (s *Store) List(ctx context.Context, f engine.ListFilter) (engine.ListPage, error) {
	var after *cursor
	if f.Cursor != "" {
		c, err := parseCursor(f.Cursor)
		if err != nil {
			return engine.ListPage{}, fmt.Errorf("list executions: %w", err)
		}
		after = &c
	}
	var all []engine.Execution
	more := false
	for _, p := range partitions(f) {
		got, exhausted, err := s.listPartition(ctx, p, after, f)
		if err != nil {
			return engine.ListPage{}, err
		}
		all = append(all, got...)
		more = more || !exhausted
	}
	slices.SortFunc(all, newer)
	page := engine.ListPage{Executions: all}
	if page.Executions == nil {
		page.Executions = []engine.Execution{}
	}
	if f.Limit > 0 && len(all) > f.Limit {
		page.Executions, more = all[:f.Limit], true
	}
	if more && len(page.Executions) > 0 {
		last := page.Executions[len(page.Executions)-1]
		page.Next = cursor{created: unixNano(last.CreatedAt), id: last.CorrelationID}.String()
	}
	if err := s.loadCheckpoints(ctx, page.Executions); err != nil {
		return engine.ListPage{}, err
	}
	return page, nil
}

// listPartition returns p's executions after the cursor that match f, at
// least f.Limit of them unless the partition has fewer (exhausted).
func (s *Store) listPartition(ctx context.Context, p partition, after *cursor, f engine.ListFilter) ([]engine.Execution, bool, error) {
	in := &ddb.QueryInput{
		TableName: s.table, IndexName: aws.String(p.index), ScanIndexForward: aws.Bool(false),
		KeyConditionExpression:    aws.String("#k = :v"),
		ExpressionAttributeNames:  map[string]string{"#k": p.attr},
		ExpressionAttributeValues: map[string]av{":v": vs(p.value)},
		ReturnConsumedCapacity:    capacity,
	}
	if after != nil {
		in.KeyConditionExpression = aws.String("#k = :v AND gc < :gc")
		in.ExpressionAttributeValues[":gc"] = vs(createdKey(after.created, after.id))
	}
	if f.Limit > 0 {
		in.Limit = aws.Int32(int32(min(max(f.Limit, 25), 1000)))
	}
	var got []engine.Execution
	for {
		out, err := s.c.Query(ctx, in)
		if err != nil {
			return nil, false, fmt.Errorf("list executions from DynamoDB table %s index %s: %w", *s.table, p.index, err)
		}
		ids := make([]string, 0, len(out.Items))
		for _, it := range out.Items {
			ids = append(ids, getS(it, attrPK))
		}
		execs, err := s.batchGet(ctx, ids)
		if err != nil {
			return nil, false, err
		}
		for _, id := range ids {
			e, ok := execs[id]
			if ok && s.cache != nil {
				s.overlay(ctx, &e)
			}
			if ok && matches(f, e.e) {
				got = append(got, e.e)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return got, true, nil
		}
		if f.Limit > 0 && len(got) >= f.Limit {
			return got, false, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// batchGet reads execution items by id (strongly consistent).
func (s *Store) batchGet(ctx context.Context, ids []string) (map[string]record, error) {
	out := make(map[string]record, len(ids))
	keys := make([]map[string]av, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, key(id, execSK))
	}
	items, err := s.batchGetKeys(ctx, keys, "")
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		r := decodeExec(it)
		out[r.e.CorrelationID] = r
	}
	return out, nil
}

func (s *Store) batchGetKeys(ctx context.Context, keys []map[string]av, projection string) ([]map[string]av, error) {
	var items []map[string]av
	for len(keys) > 0 {
		n := min(len(keys), 100)
		ka := types.KeysAndAttributes{Keys: keys[:n], ConsistentRead: aws.Bool(true)}
		if projection != "" {
			ka.ProjectionExpression = aws.String(projection)
		}
		req := map[string]types.KeysAndAttributes{*s.table: ka}
		keys = keys[n:]
		for len(req) > 0 {
			out, err := s.c.BatchGetItem(ctx, &ddb.BatchGetItemInput{RequestItems: req, ReturnConsumedCapacity: capacity})
			if err != nil {
				return nil, fmt.Errorf("read executions from DynamoDB table %s: %w", *s.table, err)
			}
			items = append(items, out.Responses[*s.table]...)
			req = out.UnprocessedKeys
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	return items, nil
}

// loadCheckpoints fills in the checkpoints kept in step items.
func (s *Store) loadCheckpoints(ctx context.Context, es []engine.Execution) error {
	_ = ctx
	for i := range es {
		if es[i].Checkpoint != nil {
			continue
		}
		e, err := s.Get(ctx, es[i].CorrelationID)
		if err != nil {
			return err
		}
		es[i].Checkpoint = e.Checkpoint
	}
	return nil
}

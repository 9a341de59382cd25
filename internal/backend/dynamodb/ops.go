package dynamodb

import (
	"context"
	"encoding/json"
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

// SetStatus implements engine.Store with the memory store's rules: a read,
// then a write conditional on everything the rules read, retried if a
// step's acquire or commit came in between.
func (s *Store) SetStatus(ctx context.Context, id string, st engine.Status, reason string, now time.Time) error {
	if s.cache != nil {
		return s.setStatusCached(ctx, id, st, reason, now)
	}
	for range 8 {
		r, err := s.get(ctx, id)
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
			":f": vn(e.Fence), ":ost": vs(string(e.Status)), ":ods": vn(int64(e.DoneStep)), ":ole": vn(unixNano(e.LeaseExpires)),
			":ols": vn(int64(e.LeaseStep)), ":ofs": vn(int64(r.failedStep)), ":ofa": vn(int64(r.failedAttempt)),
			":st": vs(string(st)), ":ds": vn(int64(done)), ":fs": vn(int64(fs)), ":fa": vn(int64(fa)), ":now": vn(unixNano(now)),
		}
		set := []string{"st = :st", "ds = :ds", "fs = :fs", "fa = :fa", "ua = :now"}
		if e.Machine != "" {
			vals[":gs"] = vs(statusKey(e.Machine, st))
			set = append(set, "gs = :gs")
		}
		if reason != "" {
			vals[":err"] = vs(reason)
			set = append(set, "err = :err")
		}
		expr, err := s.retire(ctx, id, e.Machine, st, done, now, vals, set, nil)
		if err != nil {
			return fmt.Errorf("set status of %s: %w", id, err)
		}
		_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: s.table, Key: key(id, execSK),
			ConditionExpression:       aws.String("f = :f AND st = :ost AND ds = :ods AND le = :ole AND ls = :ols AND fs = :ofs AND fa = :ofa"),
			UpdateExpression:          aws.String(expr),
			ExpressionAttributeNames:  map[string]string{"#ttl": ttlAttr},
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
		return nil
	}
	return fmt.Errorf("set status of %s: the execution kept changing; try again", id)
}

// SwapStatus implements engine.Store: one conditional UpdateItem (after a
// read for the machine, which the status index's key holds).
func (s *Store) SwapStatus(ctx context.Context, w engine.StatusSwap) error {
	if s.cache != nil {
		return s.swapStatusCached(ctx, w)
	}
	r, err := s.get(ctx, w.CorrelationID)
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
	vals := map[string]av{":from": vs(string(w.From)), ":to": vs(string(w.To)), ":step": vn(int64(w.Step)), ":now": vn(unixNano(w.Now)),
		":du": vn(unixNano(w.DueAt))}
	set := []string{"st = :to", "ua = :now", "du = :du"}
	if r.e.Machine != "" {
		vals[":gs"] = vs(statusKey(r.e.Machine, w.To))
		set = append(set, "gs = :gs")
	}
	if w.Checkpoint != nil {
		vals[":cp"] = vb(w.Checkpoint)
		set = append(set, "cp = :cp")
	}
	expr, err := s.retire(ctx, w.CorrelationID, r.e.Machine, w.To, w.Step, w.Now, vals, set, nil)
	if err != nil {
		return fmt.Errorf("swap status of %s: %w", w.CorrelationID, err)
	}
	_, err = s.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName: s.table, Key: key(w.CorrelationID, execSK),
		ConditionExpression:                 aws.String("attribute_exists(pk) AND st = :from AND ds = :step AND ls <= :step"),
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
		return refused(decodeExec(ccf.Item))
	}
	if err != nil {
		return fmt.Errorf("swap status of %s in DynamoDB table %s: %w", w.CorrelationID, *s.table, err)
	}
	return nil
}

// retire completes an operator call's update expression (SET set, REMOVE
// remove; the caller names #ttl) for a move to st: to a finished status
// with a retention, the tombstone is written first and the execution item
// gets its ttl (R after now); to any other status the ttl goes, so nothing
// running expires.
func (s *Store) retire(ctx context.Context, id, machine string, st engine.Status, done int, now time.Time, vals map[string]av, set, remove []string) (string, error) {
	set, remove = slices.Clip(set), slices.Clip(remove)
	if s.ret <= 0 || !st.Terminal() {
		remove = append(remove, "#ttl")
	} else {
		if _, err := s.c.PutItem(ctx, &ddb.PutItemInput{TableName: s.table, Item: tombstone(id, machine, st, done, now), ReturnConsumedCapacity: capacity}); err != nil {
			return "", fmt.Errorf("write the tombstone of %s to DynamoDB table %s: %w", id, *s.table, err)
		}
		vals[":ttl"] = ttlOf(now, s.ret)
		set = append(set, "#ttl = :ttl")
	}
	expr := "SET " + strings.Join(set, ", ")
	if len(remove) > 0 {
		expr += " REMOVE " + strings.Join(remove, ", ")
	}
	return expr, nil
}

// dropPK is the partition of the dropped-message records: drops are rare
// (malformed messages), so one partition holds them, newest first by time.
const dropPK = "d"

// dropSK orders dropped-message records by time (shifted so that times
// before 1970 sort too), then by the order this process recorded them.
func dropSK(ns, seq int64) string {
	return fmt.Sprintf("%020d#%020d", uint64(ns)+1<<63, seq)
}

// RecordDrop implements engine.DropRecorder.
func (s *Store) RecordDrop(ctx context.Context, d engine.DroppedMessage) error {
	j, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("record dropped message: %w", err)
	}
	sk := dropSK(d.Time.UnixNano(), s.dropSeq.Add(1))
	item := key(dropPK, sk)
	item["j"] = vs(string(j))
	if s.ret > 0 {
		item[ttlAttr] = ttlOf(d.Time, s.ret)
	}
	if d.Machine != "" {
		item["m"] = vs(d.Machine)
	}
	if _, err := s.c.PutItem(ctx, &ddb.PutItemInput{TableName: s.table, Item: item, ReturnConsumedCapacity: capacity}); err != nil {
		return fmt.Errorf("record dropped message in DynamoDB table %s: %w", *s.table, err)
	}
	return nil
}

// ListDropped implements engine.DropRecorder.
func (s *Store) ListDropped(ctx context.Context, f engine.DropFilter) ([]engine.DroppedMessage, error) {
	out := []engine.DroppedMessage{}
	in := &ddb.QueryInput{
		TableName: s.table, ScanIndexForward: aws.Bool(false), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]av{":pk": vs(dropPK)},
		ReturnConsumedCapacity:    capacity,
	}
	if f.Machine != "" {
		in.FilterExpression = aws.String("m = :m")
		in.ExpressionAttributeValues[":m"] = vs(f.Machine)
	}
	for {
		res, err := s.c.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list dropped messages from DynamoDB table %s: %w", *s.table, err)
		}
		for _, it := range res.Items {
			var d engine.DroppedMessage
			if err := json.Unmarshal([]byte(getS(it, "j")), &d); err != nil {
				return nil, fmt.Errorf("list dropped messages: %w", err)
			}
			out = append(out, d)
			if f.Limit > 0 && len(out) == f.Limit {
				return out, nil
			}
		}
		if len(res.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

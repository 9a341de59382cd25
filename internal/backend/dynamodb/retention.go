package dynamodb

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// Retention and tombstones (docs/design.md, "Retention by TTL and the
// tombstone rule"). With Options.Retention R set:
//
//   - a commit or operator call that finishes an execution (done, failed,
//     stopped) sets the execution item's ttl to the finish + R in the update
//     it makes anyway, and writes the execution's tombstone (sort key "t",
//     no ttl) in the same call as its step item (a BatchWriteItem, or the
//     commit's transaction);
//   - every step item carries ttl = its commit time + 2R (the finishing
//     one: the finish + R), set in the write that creates it, so history
//     needs no write at the finish: an execution that ran for less than R
//     keeps its whole history until it expires, a longer one at least the
//     history of its last R;
//   - a commit that leaves the execution waiting (or its next message due
//     more than R later) keeps its checkpoint in the execution item, which
//     has no ttl while the execution is not finished, so a long wait never
//     loses it;
//   - Acquire and the operator calls that restart an execution remove the
//     ttl, so nothing running expires;
//   - dropped-message records carry ttl = their time + R.
//
// The tombstone rule, for TTL and prune alike: an id whose tombstone item
// exists is retired. Create refuses it (ErrExists joined with ErrPruned),
// Acquire refuses its messages (ErrPruned joined with ErrDuplicate) once
// the execution item is gone, and Get reports it pruned. The tombstone is
// written before the execution item can go (at the finish for TTL, before
// the delete for Prune), so a missing execution item with no tombstone is
// one that never existed. Execution items marked tomb by earlier versions
// of Prune are honoured as tombstones too.

// tombSK is the sort key of an execution's tombstone.
const tombSK = "t"

// ttlOf is the TTL attribute's value (unix seconds) d after t.
func ttlOf(t time.Time, d time.Duration) av { return vn(t.Add(d).Unix()) }

// tombstone is the tombstone item of an execution leaving st at step done
// at time at.
func tombstone(id, machine string, st engine.Status, done int, at time.Time) map[string]av {
	m := key(id, tombSK)
	m["st"], m["ds"], m["ua"] = vs(string(st)), vn(int64(done)), vn(unixNano(at))
	if machine != "" {
		m["m"] = vs(machine)
	}
	return m
}

// tomb is a tombstone read back.
type tomb struct {
	status engine.Status
	done   int
	at     time.Time
}

func (t tomb) String() string {
	return fmt.Sprintf("%s at step %d, retired %s", t.status, t.done, t.at.Format(time.RFC3339))
}

// tombstoneOf reads id's tombstone (strongly consistent); ok is false when
// it has none.
func (s *Store) tombstoneOf(ctx context.Context, id string) (t tomb, ok bool, err error) {
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: s.table, Key: key(id, tombSK), ConsistentRead: aws.Bool(true), ReturnConsumedCapacity: capacity})
	if err != nil {
		return tomb{}, false, fmt.Errorf("read the tombstone of %s from DynamoDB table %s: %w", id, *s.table, err)
	}
	if len(out.Item) == 0 {
		return tomb{}, false, nil
	}
	return tomb{status: engine.Status(getS(out.Item, "st")), done: int(getN(out.Item, "ds")), at: fromNano(getN(out.Item, "ua"))}, true, nil
}

// finishTomb is the tombstone c's commit writes with its step item, or nil
// when c does not finish the execution or no retention is set.
func (s *Store) finishTomb(c engine.Commit) map[string]av {
	st := c.NextStatus()
	if s.ret <= 0 || !st.Terminal() {
		return nil
	}
	done := c.Step
	if c.Outcome == engine.OutcomeRetry {
		done = c.Step - 1
	}
	return tombstone(c.CorrelationID, c.Machine, st, done, c.Now)
}

// keepsCheckpoint reports whether c's commit keeps its checkpoint in the
// execution item rather than pointing at its step item: with a retention,
// when the execution may wait longer than its step items live.
func (s *Store) keepsCheckpoint(c engine.Commit) bool {
	if s.ret <= 0 || c.Checkpoint == nil {
		return false
	}
	return c.NextStatus() == engine.StatusWaiting || !c.DueAt.IsZero() && c.DueAt.Sub(c.Now) > s.ret
}

// putItems writes items (at most 25) with BatchWriteItem, retrying the
// unprocessed ones with backoff.
func (s *Store) putItems(ctx context.Context, items ...map[string]av) error {
	reqs := make([]types.WriteRequest, 0, len(items))
	for _, it := range items {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
	}
	req := map[string][]types.WriteRequest{*s.table: reqs}
	for attempt := 0; len(req) > 0; attempt++ {
		if attempt == batchAttempts {
			return fmt.Errorf("still unprocessed after %d attempts", batchAttempts)
		}
		if attempt > 0 {
			if err := pause(ctx, time.Duration(attempt)*50*time.Millisecond); err != nil {
				return err
			}
		}
		out, err := s.c.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{RequestItems: req, ReturnConsumedCapacity: capacity})
		if err != nil {
			return err
		}
		req = out.UnprocessedItems
	}
	return nil
}

package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.BatchCommitter = (*Store)(nil)

// CommitSteps implements engine.BatchCommitter: CommitStep's order (commit
// first, the outgoing message in the step item as an outbox, then send)
// for a whole batch, in three phases instead of three calls per step:
//
//  1. every step item in BatchWriteItem calls of 25 (unprocessed items
//     retried with backoff);
//  2. each execution's fenced UpdateItem, as Commit does: a step whose
//     fence is lost is refused here, and its step item stays on no chain;
//  3. the outgoing messages of the steps that committed, in the queue's
//     batched sends (SQS SendMessageBatch, partial failures retried), or
//     one by one on a queue without them.
//
// A crash between phases leaves what a crash inside CommitStep leaves: a
// step item without its update (the step runs again once its lease
// expires), or a commit without its send (the redelivery finds the step
// done and sends the outbox, see resendOutbox). On a dispatch that sends
// in the commit's transaction (an ItemSender), and for a batch of one, each
// step is committed with CommitStep.
func (s *Store) CommitSteps(ctx context.Context, steps []engine.StepCommit) []error {
	errs := make([]error, len(steps))
	if s.transactional() || len(steps) == 1 {
		for i := range steps {
			steps[i].Receipt, errs[i] = s.CommitStep(ctx, steps[i].Commit, steps[i].Out, steps[i].Ack)
		}
		return errs
	}
	items := make([]map[string]av, len(steps))
	for i, st := range steps {
		c := st.Commit
		if st.Out != nil && s.q == nil {
			errs[i] = fmt.Errorf("commit %s step %d: the DynamoDB store has no queue to send the next message to", c.CorrelationID, c.Step)
			continue
		}
		items[i], errs[i] = s.stepItem(ctx, c, st.Out, nil)
	}
	s.writeSteps(ctx, steps, items, errs)
	for i, st := range steps {
		if errs[i] == nil {
			s.at("after-step-item", st.Commit)
		}
	}
	for i, st := range steps {
		if errs[i] != nil {
			continue
		}
		if errs[i] = s.updateExec(ctx, st.Commit, items[i], false, nil, nil); errs[i] == nil {
			s.at("after-commit", st.Commit)
		}
	}
	s.sendSteps(ctx, steps, errs)
	return errs
}

// transactional reports whether commits are transactions with their
// message (CommitStep's one-write path).
func (s *Store) transactional() bool {
	_, tx := s.c.(TransactAPI)
	_, is := s.q.(ItemSender)
	return tx && is
}

// writeSteps puts the step items of the steps without an error yet (with
// the tombstone of each step that finishes its execution, when a retention
// is set), and sets the error of those it could not write.
func (s *Store) writeSteps(ctx context.Context, steps []engine.StepCommit, items []map[string]av, errs []error) {
	type entry struct {
		item map[string]av
		i    int
	}
	var todo []entry
	for i := range steps {
		if errs[i] == nil {
			todo = append(todo, entry{items[i], i})
			if t := s.finishTomb(steps[i].Commit); t != nil {
				todo = append(todo, entry{t, i})
			}
		}
	}
	for start := 0; start < len(todo); start += 25 {
		chunk := todo[start:min(start+25, len(todo))]
		pending := map[string]int{}
		reqs := make([]types.WriteRequest, 0, len(chunk))
		for _, e := range chunk {
			pending[itemKey(e.item)] = e.i
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: e.item}})
		}
		req := map[string][]types.WriteRequest{*s.table: reqs}
		var callErr error
		for attempt := 0; len(req) > 0 && attempt < batchAttempts; attempt++ {
			out, err := s.c.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{RequestItems: req, ReturnConsumedCapacity: capacity})
			if err != nil {
				callErr = err
				break
			}
			left := map[string]bool{}
			for _, w := range out.UnprocessedItems[*s.table] {
				if w.PutRequest != nil {
					left[itemKey(w.PutRequest.Item)] = true
				}
			}
			for k := range pending {
				if !left[k] {
					delete(pending, k)
				}
			}
			req = out.UnprocessedItems
			if len(req) > 0 {
				if err := pause(ctx, time.Duration(attempt+1)*50*time.Millisecond); err != nil {
					callErr = err
					break
				}
			}
		}
		failed := map[int]bool{}
		for _, i := range pending {
			if failed[i] {
				continue
			}
			failed[i] = true
			c := steps[i].Commit
			if callErr != nil {
				errs[i] = fmt.Errorf("commit %s step %d: write step item to DynamoDB table %s: %w", c.CorrelationID, c.Step, *s.table, callErr)
			} else {
				errs[i] = fmt.Errorf("commit %s step %d: write step item to DynamoDB table %s: still unprocessed after %d attempts", c.CorrelationID, c.Step, *s.table, batchAttempts)
			}
		}
	}
}

func itemKey(item map[string]av) string { return getS(item, attrPK) + "\x00" + getS(item, attrSK) }

// sendSteps sends the outgoing messages of the committed steps (errs[i]
// nil), grouped by where each goes (the queue, or the retrier for a retry),
// and sets the receipts and the errors of the messages not sent.
func (s *Store) sendSteps(ctx context.Context, steps []engine.StepCommit, errs []error) {
	type group struct {
		to  any
		at  []int
		out []engine.OutMessage
	}
	var groups []*group
	for i, st := range steps {
		if errs[i] != nil || st.Out == nil {
			continue
		}
		s.at("before-send", st.Commit)
		var to any = s.q
		if s.toRetrier(st.Commit, st.Out) {
			to = s.r
		}
		var g *group
		for _, x := range groups {
			if same(x.to, to) {
				g = x
			}
		}
		if g == nil {
			g = &group{to: to}
			groups = append(groups, g)
		}
		g.at, g.out = append(g.at, i), append(g.out, *st.Out)
	}
	notSent := func(i int, err error) {
		c := steps[i].Commit
		what := "next message"
		if c.Outcome == engine.OutcomeRetry {
			what = "retry"
		}
		errs[i] = fmt.Errorf("commit %s step %d: committed, %s not sent: %w", c.CorrelationID, c.Step, what, err)
	}
	for _, g := range groups {
		bq, ok := g.to.(batchSender)
		if !ok || len(g.out) == 1 {
			for j, i := range g.at {
				receipt, err := s.send(ctx, steps[i].Commit, g.out[j])
				if err != nil {
					errs[i] = err
					continue
				}
				steps[i].Receipt = receipt
			}
			continue
		}
		receipts, err := bq.SendBatch(ctx, g.out)
		var bf batchFailures
		failed := map[int]error{}
		switch {
		case err == nil:
		case errors.As(err, &bf):
			failed = bf.FailedIndexes()
		default:
			for j := range g.at {
				if j >= len(receipts) || receipts[j] == "" {
					failed[j] = err
				}
			}
		}
		for j, i := range g.at {
			if ferr, bad := failed[j]; bad {
				notSent(i, ferr)
				continue
			}
			if j < len(receipts) && steps[i].Commit.Outcome != engine.OutcomeRetry {
				steps[i].Receipt = receipts[j]
			}
		}
	}
}

// same reports whether a and b are the same queue.
func same(a, b any) bool {
	if a == nil || b == nil {
		return false
	}
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.BatchStarter = (*Store)(nil)

// batchSender is a queue that sends many messages in batched calls (the
// SQS queue's SendBatch): receipts by index and, for the messages it could
// not send, an error that batchFailures reads.
type batchSender interface {
	SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error)
}

// batchFailures is the per-message view of a SendBatch error.
type batchFailures interface {
	FailedIndexes() map[int]error
}

// batchAttempts bounds the BatchWriteItem calls for one batch of 25 (the
// first and the retries of its unprocessed items).
const batchAttempts = 8

// StartBatch implements engine.BatchStarter: the executions' items in
// BatchWriteItem calls of 25 (unprocessed items retried with backoff),
// then the start messages in the queue's batched sends of 10 (partial
// failures retried there). The puts are not conditional: the engine passes
// only fresh random ids.
func (s *Store) StartBatch(ctx context.Context, xs []engine.Execution, outs []engine.OutMessage) []error {
	errs := make([]error, len(xs))
	created := make([]bool, len(xs))
	for start := 0; start < len(xs); start += 25 {
		end := min(start+25, len(xs))
		pending := map[string]int{}
		var reqs []types.WriteRequest
		for i := start; i < end; i++ {
			x := xs[i]
			if x.Status == "" {
				x.Status = engine.StatusRunning
			}
			x.DoneStep, x.LeaseStep, x.LeaseExpires = -1, -1, time.Time{}
			pending[x.CorrelationID] = i
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: s.newItem(x)}})
		}
		req := map[string][]types.WriteRequest{*s.table: reqs}
		for attempt := 0; len(req) > 0 && attempt < batchAttempts; attempt++ {
			out, err := s.c.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{RequestItems: req, ReturnConsumedCapacity: capacity})
			if err != nil {
				for _, i := range pending {
					errs[i] = fmt.Errorf("create execution %s in DynamoDB table %s: %w", xs[i].CorrelationID, *s.table, err)
				}
				pending = nil
				break
			}
			left := map[string]bool{}
			for _, w := range out.UnprocessedItems[*s.table] {
				left[getS(w.PutRequest.Item, attrPK)] = true
			}
			for id, i := range pending {
				if !left[id] {
					created[i] = true
					delete(pending, id)
				}
			}
			req = out.UnprocessedItems
			if len(req) > 0 {
				if err := pause(ctx, time.Duration(attempt+1)*50*time.Millisecond); err != nil {
					break
				}
			}
		}
		for _, i := range pending {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("create execution %s in DynamoDB table %s: still unprocessed after %d attempts", xs[i].CorrelationID, *s.table, batchAttempts)
			}
		}
	}
	var send []engine.OutMessage
	var at []int
	for i := range xs {
		if created[i] {
			send, at = append(send, outs[i]), append(at, i)
			s.seedNew(ctx, xs[i].CorrelationID)
		}
	}
	if len(send) == 0 {
		return errs
	}
	// Created: finish the starts even if ctx is cancelled now, as Start does.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	bq, ok := s.q.(batchSender)
	if !ok {
		for j, m := range send {
			if _, err := s.Send(sctx, m); err != nil {
				errs[at[j]] = fmt.Errorf("%w: %w", engine.ErrNotSent, err)
			}
		}
		return errs
	}
	receipts, err := bq.SendBatch(sctx, send)
	var bf batchFailures
	switch {
	case err == nil:
	case errors.As(err, &bf):
		for j, ferr := range bf.FailedIndexes() {
			errs[at[j]] = fmt.Errorf("%w: %w", engine.ErrNotSent, ferr)
		}
	default:
		// A call failed as a whole: the messages without a receipt were
		// not sent.
		for j, i := range at {
			if j >= len(receipts) || receipts[j] == "" {
				errs[i] = fmt.Errorf("%w: %w", engine.ErrNotSent, err)
			}
		}
	}
	return errs
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

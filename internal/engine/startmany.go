package engine

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotSent: a batched start created the execution but could not send its
// start message (StartBatch); the engine marks it failed, so resume sends it.
var ErrNotSent = errors.New("start message not sent")

// BatchStarter is implemented by a Store that is also the engine's Queue and
// can create many new executions and send their start messages in batched
// calls (the DynamoDB store with SQS: BatchWriteItem of 25, SendMessageBatch
// of 10), where Start costs two calls per execution. Engine.StartMany uses it
// for executions with fresh random ids only: batched puts are not
// conditional, and a random 128-bit id is taken by no other execution.
type BatchStarter interface {
	// StartBatch records xs and sends outs (outs[i] is xs[i]'s start
	// message), retrying partial failures. It returns one error per
	// execution, nil when it started: an error that wraps ErrNotSent when
	// the execution was recorded but its message not sent, any other when
	// it was not recorded.
	StartBatch(ctx context.Context, xs []Execution, outs []OutMessage) []error
}

// StartMany starts one execution per request, as Start does, and returns
// their correlation ids and one error per request (nil when it started; the
// id is then set). When the store is a BatchStarter and is also the queue,
// requests without a correlation id are started in batches; the others, and
// every request on other stores, one by one.
func (e *Engine) StartMany(ctx context.Context, rs []StartRequest) ([]string, []error) {
	ids := make([]string, len(rs))
	errs := make([]error, len(rs))
	bs, ok := e.store.(BatchStarter)
	if !ok || !sameBackend(e.store, e.queue) {
		for i, r := range rs {
			ids[i], errs[i] = e.Start(ctx, r)
		}
		return ids, errs
	}
	var xs []Execution
	var outs []OutMessage
	var at []int
	for i, r := range rs {
		if r.CorrelationID != "" {
			ids[i], errs[i] = e.Start(ctx, r)
			continue
		}
		x, out, err := e.startRecord(r)
		if err != nil {
			errs[i] = err
			continue
		}
		xs, outs, at = append(xs, x), append(outs, out), append(at, i)
	}
	if len(xs) == 0 {
		return ids, errs
	}
	for j, err := range bs.StartBatch(ctx, xs, outs) {
		i, x := at[j], xs[j]
		switch {
		case err == nil:
			ids[i] = x.CorrelationID
		case errors.Is(err, ErrNotSent):
			e.setStatusAfterFailure(ctx, x.CorrelationID, StatusFailed, err.Error())
			errs[i] = fmt.Errorf("start %s %s: %w", x.Machine, x.CorrelationID, err)
		default:
			errs[i] = fmt.Errorf("start %s %s: %w", x.Machine, x.CorrelationID, err)
		}
	}
	return ids, errs
}

// Package failover pairs a primary and a secondary backend of the same kind
// (dispatch queues, retriers, local sources), as REFERENCE.md §4 gives every
// source a primary and an optional secondary: a call that fails on the
// primary is made on the secondary, and a primary that keeps failing is
// skipped for a while (a breaker), so that an outage costs one failed call
// per cool-down instead of one per message. See docs/design.md, "Failover".
//
// Failing over call by call is safe for sends because a message sent twice
// is harmless: the store's Acquire refuses the copy (ErrDuplicate). That
// includes the ambiguous failure, a send that landed on the primary whose
// response was lost: the message then travels both ways and runs once. It
// is not safe for the lease store, which this package does not wrap.
package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sendbatch"
	"github.com/lfsm/lfsm/internal/engine"
)

// Defaults of Options.
const (
	DefaultThreshold = 3
	DefaultCooldown  = 30 * time.Second
)

// MetricFailover counts calls the secondary served because the primary
// failed or was skipped (dimension Event: the operation, "Send").
const MetricFailover = "failover"

// Options configure a pair's breaker.
type Options struct {
	// Threshold is how many consecutive failures of the primary open the
	// breaker (DefaultThreshold when 0).
	Threshold int
	// Cooldown is how long an open breaker sends every call straight to the
	// secondary; the first call after it tries the primary again
	// (DefaultCooldown when 0).
	Cooldown time.Duration
	// Clock tells the time (time.Now when nil); tests inject one.
	Clock func() time.Time
	// Metrics, if set, counts MetricFailover.
	Metrics engine.Metrics
	// Logger logs the breaker's changes (nil: discard).
	Logger *slog.Logger
}

// breaker decides whether the primary is tried.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	metrics   engine.Metrics
	log       *slog.Logger

	mu        sync.Mutex
	failures  int
	openUntil time.Time
}

func newBreaker(o Options) *breaker {
	b := &breaker{threshold: o.Threshold, cooldown: o.Cooldown, now: o.Clock, metrics: o.Metrics, log: o.Logger}
	if b.threshold <= 0 {
		b.threshold = DefaultThreshold
	}
	if b.cooldown <= 0 {
		b.cooldown = DefaultCooldown
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b
}

// tryPrimary reports whether the primary should be called now.
func (b *breaker) tryPrimary() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.now().Before(b.openUntil)
}

// record notes the primary's outcome.
func (b *breaker) record(op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		if b.failures >= b.threshold {
			b.log.Info("primary back", "op", op)
		}
		b.failures, b.openUntil = 0, time.Time{}
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = b.now().Add(b.cooldown)
		b.log.Warn("primary skipped", "op", op, "failures", b.failures, "cooldown", b.cooldown, "err", err)
	}
}

// call runs op on the primary unless the breaker is open, then on the
// secondary if the primary failed (and the caller has not given up).
func call[T any](ctx context.Context, b *breaker, op string, primary func() (T, error), secondary func() (T, error)) (T, error) {
	var perr error
	if b.tryPrimary() {
		v, err := primary()
		if err == nil {
			b.record(op, nil)
			return v, nil
		}
		if ctx.Err() != nil {
			return v, err // cancelled: not the primary's fault, and nothing more to do
		}
		b.record(op, err)
		perr = fmt.Errorf("primary: %w", err)
	}
	v, err := secondary()
	if err != nil {
		if perr == nil {
			return v, fmt.Errorf("secondary (primary skipped after %d failures): %w", b.threshold, err)
		}
		return v, errors.Join(perr, fmt.Errorf("secondary: %w", err))
	}
	if b.metrics != nil {
		b.metrics.Add(engine.MetricKey{Name: MetricFailover, Event: op}, 1)
	}
	return v, nil
}

// Queue is an engine.Queue that sends to the secondary when the primary
// fails.
type Queue struct {
	p, s engine.Queue
	b    *breaker
}

var _ engine.Queue = (*Queue)(nil)

// NewQueue pairs two queues that feed the same function.
func NewQueue(primary, secondary engine.Queue, o Options) *Queue {
	return &Queue{p: primary, s: secondary, b: newBreaker(o)}
}

// Send implements engine.Queue.
func (q *Queue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return call(ctx, q.b, "Send",
		func() (string, error) { return q.p.Send(ctx, m) },
		func() (string, error) { return q.s.Send(ctx, m) })
}

// batchSender is a queue that sends many messages in one call (SQS, Kinesis
// and SNS; the DynamoDB store's batched commit uses it when its queue has it).
type batchSender interface {
	SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error)
}

// batchFailures is a batched send's error naming the messages not sent.
type batchFailures interface {
	FailedIndexes() map[int]error
}

// SendBatch sends ms in one call to the primary (each message on its own
// when the primary has no SendBatch) and the messages it did not take to the
// secondary, so that the DynamoDB store's batched commit keeps its one send
// per batch with a secondary. What neither took is a *sendbatch.Error by
// index. A batch any of whose messages the primary refused counts as one
// failure of the primary.
func (q *Queue) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	receipts := make([]string, len(ms))
	todo := make([]int, len(ms))
	for i := range todo {
		todo[i] = i
	}
	var perr error
	if q.b.tryPrimary() {
		r, err := sendBatch(ctx, q.p, ms)
		failed := failedOf(err, r, len(ms))
		copyReceipts(receipts, r, todo, failed)
		if len(failed) == 0 {
			q.b.record("SendBatch", nil)
			return receipts, nil
		}
		if ctx.Err() != nil {
			return receipts, err
		}
		q.b.record("SendBatch", err)
		perr = err
		todo = todo[:0]
		for i := range ms {
			if _, bad := failed[i]; bad {
				todo = append(todo, i)
			}
		}
	}
	sub := make([]engine.OutMessage, len(todo))
	for j, i := range todo {
		sub[j] = ms[i]
	}
	r, err := sendBatch(ctx, q.s, sub)
	failed := failedOf(err, r, len(sub))
	copyReceipts(receipts, r, todo, failed)
	if q.b.metrics != nil && len(sub) > len(failed) {
		q.b.metrics.Add(engine.MetricKey{Name: MetricFailover, Event: "Send"}, int64(len(sub)-len(failed)))
	}
	if len(failed) == 0 {
		return receipts, nil
	}
	out := &sendbatch.Error{Op: "send to the primary and the secondary", Failed: map[int]error{}}
	for j, ferr := range failed {
		if perr != nil {
			ferr = errors.Join(fmt.Errorf("primary: %w", perr), fmt.Errorf("secondary: %w", ferr))
		}
		out.Failed[todo[j]] = ferr
	}
	return receipts, out
}

// sendBatch sends ms to q in one call if it can, else one by one.
func sendBatch(ctx context.Context, q engine.Queue, ms []engine.OutMessage) ([]string, error) {
	if bq, ok := q.(batchSender); ok {
		return bq.SendBatch(ctx, ms)
	}
	receipts := make([]string, len(ms))
	failed := map[int]error{}
	for i, m := range ms {
		r, err := q.Send(ctx, m)
		if err != nil {
			failed[i] = err
			continue
		}
		receipts[i] = r
	}
	if len(failed) > 0 {
		return receipts, &sendbatch.Error{Op: "send", Failed: failed}
	}
	return receipts, nil
}

// failedOf is the messages a batched send did not take: those its error
// names, or, for an error that names none, every one without a receipt.
func failedOf(err error, receipts []string, n int) map[int]error {
	failed := map[int]error{}
	if err == nil {
		return failed
	}
	var bf batchFailures
	if errors.As(err, &bf) {
		return bf.FailedIndexes()
	}
	for i := range n {
		if i >= len(receipts) || receipts[i] == "" {
			failed[i] = err
		}
	}
	return failed
}

func copyReceipts(dst, src []string, at []int, failed map[int]error) {
	for j, i := range at {
		if _, bad := failed[j]; !bad && j < len(src) {
			dst[i] = src[j]
		}
	}
}

// Retrier is an engine.Retrier that schedules on the secondary when the
// primary fails.
type Retrier struct {
	p, s engine.Retrier
	b    *breaker
}

var _ engine.Retrier = (*Retrier)(nil)

// NewRetrier pairs two retriers.
func NewRetrier(primary, secondary engine.Retrier, o Options) *Retrier {
	return &Retrier{p: primary, s: secondary, b: newBreaker(o)}
}

// ScheduleRetry implements engine.Retrier.
func (r *Retrier) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	_, err := call(ctx, r.b, "ScheduleRetry",
		func() (struct{}, error) { return struct{}{}, r.p.ScheduleRetry(ctx, m) },
		func() (struct{}, error) { return struct{}{}, r.s.ScheduleRetry(ctx, m) })
	return err
}

// Source consumes a primary and a secondary source (secondaries are
// consumed too: a message failed over to the secondary must run). Each
// Receive polls one of them without waiting and, if it had nothing, the
// other with the caller's wait, alternating which goes first so that
// neither starves; a call returns at most max deliveries, from one source.
// Receipts carry which source they came from, so Ack goes back to it.
type Source struct {
	p, s engine.Source
	mu   sync.Mutex
	turn bool
}

var _ engine.Source = (*Source)(nil)

// NewSource pairs two sources.
func NewSource(primary, secondary engine.Source) *Source {
	return &Source{p: primary, s: secondary}
}

const (
	tagPrimary   = "p|"
	tagSecondary = "s|"
)

// Receive implements engine.Source.
func (s *Source) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	s.mu.Lock()
	s.turn = !s.turn
	secondFirst := s.turn
	s.mu.Unlock()
	first, second, t1, t2 := s.p, s.s, tagPrimary, tagSecondary
	if secondFirst {
		first, second, t1, t2 = s.s, s.p, tagSecondary, tagPrimary
	}
	ds, err1 := first.Receive(ctx, max, visibility, 0)
	if err1 == nil && len(ds) > 0 {
		return tag(ds, t1), nil
	}
	ds, err2 := second.Receive(ctx, max, visibility, wait)
	if err2 == nil {
		return tag(ds, t2), nil
	}
	if err1 != nil {
		return nil, errors.Join(err1, err2)
	}
	return nil, err2
}

func tag(ds []engine.Delivery, t string) []engine.Delivery {
	for i := range ds {
		ds[i].Receipt = t + ds[i].Receipt
	}
	return ds
}

// Ack implements engine.Source: the delivery is deleted where it came from.
func (s *Source) Ack(ctx context.Context, receipt string) error {
	switch {
	case strings.HasPrefix(receipt, tagPrimary):
		return s.p.Ack(ctx, strings.TrimPrefix(receipt, tagPrimary))
	case strings.HasPrefix(receipt, tagSecondary):
		return s.s.Ack(ctx, strings.TrimPrefix(receipt, tagSecondary))
	}
	return fmt.Errorf("ack %q: not a receipt of a failover source", receipt)
}

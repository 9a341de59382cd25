// Package shardread walks the shards of a stream as Lambda's event source
// mapping does, for the local readers of Kinesis (internal/backend/kinesis)
// and of DynamoDB streams (internal/backend/ddbstream): every shard from its
// oldest record, one batch per shard at a time, the next only after the
// function returned, a child shard once its parent is finished, shards in
// turn (not in parallel). Each service implements Source with its own SDK
// client and hands its batches to the function itself (Handle); this
// package imports no AWS package.
package shardread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Shard is one shard of a stream as the service lists it.
type Shard struct {
	ID string
	// Parent is the shard it was split or merged from ("" for none).
	Parent string
}

// ErrExpired, from Source.Records, says the iterator can no longer be read
// (past its lifetime, or refused as trimmed): the Walker takes a new one,
// after the last record done, in its next round.
var ErrExpired = errors.New("shard iterator expired")

// ErrGone, from Source.Iterator, says the shard no longer exists (trimmed
// away): the Walker treats it as finished.
var ErrGone = errors.New("shard gone")

// Source is the part of a stream service the Walker reads, over that
// service's SDK client. R is the service's record.
type Source[R any] interface {
	// Shards lists every shard of the stream (all pages).
	Shards(ctx context.Context) ([]Shard, error)
	// Iterator returns an iterator of shard id after sequence number after,
	// or at its oldest record (TRIM_HORIZON) when after is "".
	Iterator(ctx context.Context, id, after string) (*string, error)
	// Records reads at most limit records of shard id at it, and returns
	// them with the next iterator (nil: the shard is closed and read to its
	// end).
	Records(ctx context.Context, id string, it *string, limit int) ([]R, *string, error)
}

// Config configures a Walker.
type Config[R any] struct {
	// Name names the service in logs ("kinesis", "dynamodb stream").
	Name   string
	Source Source[R]
	// Seq is a record's sequence number.
	Seq func(R) string
	// Handle hands a shard's batch to the function (after any filter of the
	// mapping's) and returns how many records it handed (0: none, the
	// batch is done), the sequence number the shard resumes from ("" when
	// all are done) and the function's error.
	Handle func(ctx context.Context, shard string, recs []R) (handed int, retryFrom string, err error)
	// BatchSize is the most records per read (default 100, as Lambda's
	// mapping; at most MaxBatch, the service's GetRecords limit).
	BatchSize, MaxBatch int
	// MaxRetries is how often one batch is retried before its records are
	// skipped, as the deployment's mapping does (default 10; negative:
	// forever).
	MaxRetries int
	// Pause is Run's wait between rounds that read nothing and before a
	// failed batch is read again (default 1 s, as Lambda polls a shard).
	Pause time.Duration
	// Logger logs failures; nil discards.
	Logger *slog.Logger
}

// Walker reads a stream's shards; it is not safe for concurrent use.
type Walker[R any] struct {
	c      Config[R]
	shards map[string]*shard
	order  []string
	listed time.Time
}

type shard struct {
	id, parent string
	iter       *string
	// after is the last sequence number done ("" before the first).
	after    string
	closed   bool
	failures int
	wakeAt   time.Time
}

// New returns a Walker of c.Source; Name, Source, Seq, Handle and MaxBatch
// are the caller's to set.
func New[R any](c Config[R]) *Walker[R] {
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	c.BatchSize = min(c.BatchSize, c.MaxBatch)
	if c.MaxRetries == 0 {
		c.MaxRetries = 10
	}
	if c.Pause <= 0 {
		c.Pause = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Walker[R]{c: c, shards: map[string]*shard{}}
}

// Run reads until ctx is done; the batch in flight is finished first.
func (w *Walker[R]) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := w.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			w.c.Logger.Warn(w.c.Name+" event source mapping", "err", err)
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(w.c.Pause):
			}
		}
	}
	return nil
}

// Poll reads one batch of every shard that can be read (its parent done,
// its pause over), in the order the shards were first listed, and returns
// the number of records handed to the function. The shards are listed
// again every 30 s.
func (w *Walker[R]) Poll(ctx context.Context) (int, error) {
	if len(w.shards) == 0 || time.Since(w.listed) > 30*time.Second {
		if err := w.list(ctx); err != nil {
			return 0, err
		}
	}
	total := 0
	for _, id := range w.order {
		s := w.shards[id]
		if s.closed || time.Now().Before(s.wakeAt) {
			continue
		}
		if p, ok := w.shards[s.parent]; ok && !p.closed {
			continue
		}
		n, err := w.read(ctx, s)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (w *Walker[R]) list(ctx context.Context) error {
	shards, err := w.c.Source.Shards(ctx)
	if err != nil {
		return err
	}
	for _, sh := range shards {
		if _, ok := w.shards[sh.ID]; !ok {
			w.shards[sh.ID] = &shard{id: sh.ID, parent: sh.Parent}
			w.order = append(w.order, sh.ID)
		}
	}
	w.listed = time.Now()
	return nil
}

func (w *Walker[R]) read(ctx context.Context, s *shard) (int, error) {
	if s.iter == nil {
		it, err := w.c.Source.Iterator(ctx, s.id, s.after)
		if errors.Is(err, ErrGone) {
			s.closed = true
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		s.iter = it
	}
	raw, next, err := w.c.Source.Records(ctx, s.id, s.iter, w.c.BatchSize)
	if errors.Is(err, ErrExpired) {
		s.iter = nil
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(raw) == 0 {
		// An empty read leaves the failure count: a batch that failed is
		// still ahead.
		s.iter = next
		s.closed = next == nil
		return 0, nil
	}
	advance := func() {
		s.after, s.iter, s.failures = w.c.Seq(raw[len(raw)-1]), next, 0
		s.closed = next == nil
	}
	n, from, ierr := w.c.Handle(ctx, s.id, raw)
	if n == 0 || from == "" {
		advance()
		return n, nil
	}
	// Resume from the failed record: the records before it (filtered ones
	// too) are done.
	for _, rec := range raw {
		if w.c.Seq(rec) == from {
			break
		}
		s.after = w.c.Seq(rec)
	}
	s.iter = nil
	s.failures++
	if w.c.MaxRetries >= 0 && s.failures > w.c.MaxRetries {
		w.c.Logger.Error(w.c.Name+" batch failed too often: its records are skipped, as the mapping does after its retries",
			"shard", s.id, "records", n, "err", ierr)
		advance()
		return n, nil
	}
	s.wakeAt = time.Now().Add(w.c.Pause)
	return n, nil
}

// Invoker invokes the function with one event and returns its response. An
// error is a function error: the whole batch comes back.
type Invoker interface {
	Invoke(ctx context.Context, event []byte) ([]byte, error)
}

// Invoke hands event (a batch of records with sequence numbers seqs, in
// order) to the function and returns the sequence number the shard resumes
// from: "" when all are done, the lowest of the function's
// batchItemFailures, or the first when the invocation failed or its
// response is not a batch response or names a record it was not sent (as
// Lambda fails the whole batch then). The invocation is finished even when
// ctx ends meanwhile (Ctrl-C).
func (w *Walker[R]) Invoke(ctx context.Context, inv Invoker, event any, seqs []string) (string, error) {
	first := seqs[0]
	b, err := json.Marshal(event)
	if err != nil {
		return first, err
	}
	resp, err := inv.Invoke(context.WithoutCancel(ctx), b)
	if err != nil {
		w.c.Logger.Warn(w.c.Name+" batch: function error; the batch is read again", "records", len(seqs), "err", err)
		return first, err
	}
	// Kinesis's and DynamoDB's batch responses (events.KinesisEventResponse,
	// events.DynamoDBEventResponse) have this one shape.
	var br struct {
		BatchItemFailures []struct {
			ItemIdentifier string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(resp) > 0 && string(resp) != "null" {
		if err := json.Unmarshal(resp, &br); err != nil {
			return first, fmt.Errorf("function response is not a batch response: %w", err)
		}
	}
	lowest := ""
	for _, f := range br.BatchItemFailures {
		known := false
		for _, s := range seqs {
			known = known || s == f.ItemIdentifier
		}
		if !known {
			return first, fmt.Errorf("function reported unknown item %q", f.ItemIdentifier)
		}
		if lowest == "" || SeqLess(f.ItemIdentifier, lowest) {
			lowest = f.ItemIdentifier
		}
	}
	return lowest, nil
}

// SeqLess compares stream sequence numbers (decimal strings of up to 128
// bits, as Kinesis and DynamoDB Streams write them).
func SeqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

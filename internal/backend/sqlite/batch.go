package sqlite

import (
	"context"
	"sync"
)

// Group commit. The hot operations (Acquire, Send, Receive, Ack, Commit) do not
// each run their own transaction when several goroutines write at once: they
// queue up, and one of them, the leader, runs everything queued in one IMMEDIATE
// transaction, which costs one set of lock calls and one WAL append for the
// batch. A lone operation runs as before (a single statement in autocommit, or
// its own transaction). Operations of several statements run inside a savepoint,
// so one failing does not undo the others; one statement fails alone anyway.
// Results are handed out only after the batch committed.

// writeOp is one queued write.
type writeOp struct {
	ctx context.Context
	fn  func(ctx context.Context) error
	// multi: fn runs more than one statement that must be atomic.
	multi bool
	err   error
	// lead is set before wake is closed when this op's goroutine is to lead the
	// next batch rather than collect its result.
	lead bool
	wake chan struct{}
}

// batcher holds the queue of writes waiting for a leader.
type batcher struct {
	mu      sync.Mutex
	pending []*writeOp
	spare   []*writeOp
	leading bool
}

// write runs fn on the write connection, batched with concurrent writes.
func (d *DB) write(ctx context.Context, multi bool, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Statements are not interrupted once the operation started (a batch
	// mixes several callers' operations); a wait for another process's lock
	// is bounded by Options.BusyTimeout instead.
	op := &writeOp{ctx: context.WithoutCancel(ctx), fn: fn, multi: multi}
	b := &d.batch
	b.mu.Lock()
	b.pending = append(b.pending, op)
	if b.leading {
		op.wake = make(chan struct{})
		b.mu.Unlock()
		<-op.wake
		if !op.lead {
			return op.err
		}
		b.mu.Lock()
	}
	b.leading = true
	batch := b.pending
	b.pending = b.spare[:0]
	b.mu.Unlock()

	d.wmu.Lock()
	if d.closed {
		for _, o := range batch {
			o.err = errClosed
		}
	} else {
		d.runBatch(op.ctx, batch)
	}
	d.wmu.Unlock()

	b.mu.Lock()
	if len(b.pending) > 0 {
		next := b.pending[0]
		next.lead = true
		close(next.wake)
	} else {
		b.leading = false
	}
	for i, o := range batch {
		if o != op {
			close(o.wake)
		}
		batch[i] = nil
	}
	b.spare = batch[:0]
	b.mu.Unlock()
	return op.err
}

// runBatch runs ops in one transaction; the caller holds wmu.
func (d *DB) runBatch(ctx context.Context, ops []*writeOp) {
	if len(ops) == 1 && !ops[0].multi {
		ops[0].err = ops[0].fn(ops[0].ctx)
		return
	}
	if err := d.ws.begin.bind().exec(); err != nil {
		for _, o := range ops {
			o.err = err
		}
		return
	}
	if len(ops) == 1 {
		if ops[0].err = ops[0].fn(ops[0].ctx); ops[0].err != nil {
			d.rollback(ctx)
			return
		}
	} else {
		for _, o := range ops {
			if !o.multi {
				o.err = o.fn(o.ctx)
				continue
			}
			if err := d.ws.savepoint.bind().exec(); err != nil {
				o.err = err
				continue
			}
			if o.err = o.fn(o.ctx); o.err != nil {
				d.ws.rollbackTo.bind().exec()
			}
			d.ws.release.bind().exec()
		}
	}
	if err := d.ws.commit.bind().exec(); err != nil {
		d.rollback(ctx)
		for _, o := range ops {
			if o.err == nil {
				o.err = err
			}
		}
	}
}

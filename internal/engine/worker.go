package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// WorkerOptions configure RunWorker. Zero values take the defaults.
type WorkerOptions struct {
	// Concurrency is how many messages are handled at once (default 4).
	Concurrency int
	// Visibility hides a received message from other receivers until it is
	// acknowledged; an unacknowledged message comes back after it (default 30 s).
	Visibility time.Duration
	// Wait is how long one Receive waits for messages (default 1 s).
	Wait time.Duration
	// Batch is the most messages one Receive returns (default 10).
	Batch int
	// Logger logs receive and acknowledge failures; nil discards.
	Logger *slog.Logger
	// RepairEvery is how often the worker calls Engine.Repair (default
	// DefaultRepairEvery; negative: never). One call is one indexed read of
	// the store when nothing is stranded.
	RepairEvery time.Duration
	// RepairGrace is Repair's grace (default: the engine's lease timeout when
	// its store is also the queue and can tell what is queued, so only the
	// truly stranded are repaired; else DefaultRepairGrace).
	RepairGrace time.Duration
	// OnHandled, when set, is called after each delivery was handled, with
	// HandleDelivery's result and error and how long it took (lfsm dev
	// prints λ lines from it). It is called from the handler goroutines,
	// concurrently: it must be safe for that, and quick.
	OnHandled func(d Delivery, r Result, err error, took time.Duration)
}

// DefaultRepairEvery is how often RunWorker repairs stranded executions.
const DefaultRepairEvery = 30 * time.Second

// RunWorker receives messages from src and handles them with e until ctx is
// cancelled (Engine.HandleDelivery). A message is acknowledged when handled (or
// dropped for good), in the step's commit when src is the engine's store;
// after an infrastructure error, or when another worker holds its step's
// lease, it is left to come back after the visibility timeout. When src is a
// LeasingSource and the engine's Store, each batch is received with its
// leases taken in the same write. On cancellation RunWorker stops receiving,
// lets the messages in flight (with leased deliveries: all those received)
// finish, and returns nil.
func RunWorker(ctx context.Context, src Source, e *Engine, o WorkerOptions) error {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Visibility <= 0 {
		o.Visibility = 30 * time.Second
	}
	if o.Wait <= 0 {
		o.Wait = time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 10
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.RepairEvery == 0 {
		o.RepairEvery = DefaultRepairEvery
	}
	if o.RepairGrace <= 0 {
		o.RepairGrace = DefaultRepairGrace
		if e.pending != nil {
			o.RepairGrace = e.leaseTimeout
		}
	}
	if o.RepairEvery > 0 {
		rctx, stop := context.WithCancel(ctx)
		var rwg sync.WaitGroup
		defer func() { stop(); rwg.Wait() }()
		rwg.Go(func() { repairEvery(rctx, e, o.RepairEvery, o.RepairGrace, logger) })
	}
	// In-flight messages finish even when ctx is cancelled.
	hctx := context.WithoutCancel(ctx)
	// Concurrency long-lived handlers rather than a goroutine per delivery: a
	// backend's call stack is deep (SQLite's is), and a new goroutine grows
	// its stack by copying, again for every message.
	jobs := make(chan Delivery)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for d := range jobs {
				handleDelivery(hctx, src, e, d, logger, o.OnHandled)
			}
		})
	}
	defer func() { close(jobs); wg.Wait() }()
	// On a source that is the engine's store and can lease what it claims,
	// a batch's claims and leases are one write. Such deliveries hold their
	// leases, so they are all handled, even after ctx is cancelled: left
	// behind, they would wait for the lease timeout rather than come back
	// after the visibility timeout.
	receive := src.Receive
	leased := false
	if ls, ok := src.(LeasingSource); ok && sameBackend(src, e.store) {
		leased = true
		receive = func(ctx context.Context, max int, visibility, wait time.Duration) ([]Delivery, error) {
			return ls.ReceiveLeased(ctx, max, visibility, wait, e.leaseRequest)
		}
	}
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		ds, err := receive(ctx, o.Batch, o.Visibility, o.Wait)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			logger.LogAttrs(ctx, slog.LevelWarn, "receive failed", slog.Any("err", err))
			backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		backoff = 0
		for _, d := range ds {
			if leased {
				jobs <- d
				continue
			}
			select {
			case jobs <- d:
			case <-ctx.Done():
				// Unhandled deliveries come back after their visibility timeout.
				return nil
			}
		}
	}
	return nil
}

// repairEvery calls e.Repair every interval until ctx is done.
func repairEvery(ctx context.Context, e *Engine, every, grace time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := e.Repair(ctx, RepairOptions{Grace: grace}); err != nil && ctx.Err() == nil {
			logger.LogAttrs(ctx, slog.LevelWarn, "repair failed", slog.Any("err", err))
		}
	}
}

func handleDelivery(ctx context.Context, src Source, e *Engine, d Delivery, logger *slog.Logger,
	onHandled func(Delivery, Result, error, time.Duration)) {
	var t0 time.Time
	if onHandled != nil {
		t0 = time.Now()
	}
	res, err := e.HandleDelivery(ctx, src, d)
	if onHandled != nil {
		onHandled(d, res, err, time.Since(t0))
	}
	if err != nil {
		logger.LogAttrs(ctx, slog.LevelWarn, "message left for redelivery", slog.String("correlation_id", res.CorrelationID),
			slog.Int("steps", res.Step), slog.Int("retries", res.Retries), slog.Any("err", err))
	}
}

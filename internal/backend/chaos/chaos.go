package chaos

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// Operation names, as Config.Ops keys them: the wrapped interface's method.
const (
	OpCreate        = "Create"
	OpAcquire       = "Acquire"
	OpCommit        = "Commit"
	OpGet           = "Get"
	OpHistory       = "History"
	OpList          = "List"
	OpSetStatus     = "SetStatus"
	OpSend          = "Send"
	OpScheduleRetry = "ScheduleRetry"
	OpReceive       = "Receive"
	OpAck           = "Ack"
)

// ErrInjected is what every injected failure wraps.
var ErrInjected = errors.New("chaos: injected failure")

// Error is one injected failure.
type Error struct {
	// Op is the operation that failed ("Commit").
	Op string
}

// Error names the failed operation.
func (e *Error) Error() string { return "chaos: injected failure of " + e.Op }

// Unwrap returns ErrInjected.
func (e *Error) Unwrap() error { return ErrInjected }

// Config sets failure probabilities (0.0 never, 1.0 always).
type Config struct {
	// Default applies to every operation not in Ops.
	Default float64
	// Ops overrides Default per operation (OpCommit, OpSend, ...).
	Ops map[string]float64
	// Rand draws the failures; seed it for reproducible tests. Nil means a
	// randomly seeded source. The Injector serialises its use.
	Rand *rand.Rand
}

// Injector decides which calls fail and wraps backends. Safe for concurrent use.
type Injector struct {
	cfg      Config
	mu       sync.Mutex
	rnd      *rand.Rand
	failures map[string]int
	calls    map[string]int
}

// New returns an Injector for cfg.
func New(cfg Config) *Injector {
	cfg.Ops = maps.Clone(cfg.Ops)
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Injector{cfg: cfg, rnd: rnd, failures: map[string]int{}, calls: map[string]int{}}
}

// fail reports an injected failure of op, or nil.
func (i *Injector) fail(op string) error {
	p, ok := i.cfg.Ops[op]
	if !ok {
		p = i.cfg.Default
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls[op]++
	if p <= 0 {
		return nil
	}
	if p < 1 && i.rnd.Float64() >= p {
		return nil
	}
	i.failures[op]++
	return &Error{Op: op}
}

// Stats returns, per operation, how many calls were made and how many failed.
func (i *Injector) Stats() (calls, failures map[string]int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return maps.Clone(i.calls), maps.Clone(i.failures)
}

// Store wraps s.
func (i *Injector) Store(s engine.Store) engine.Store { return &store{i: i, s: s} }

// Queue wraps q.
func (i *Injector) Queue(q engine.Queue) engine.Queue { return &queue{i: i, q: q} }

// Retrier wraps r.
func (i *Injector) Retrier(r engine.Retrier) engine.Retrier { return &retrier{i: i, r: r} }

// Source wraps s.
func (i *Injector) Source(s engine.Source) engine.Source { return &source{i: i, s: s} }

type store struct {
	i *Injector
	s engine.Store
}

func (w *store) Create(ctx context.Context, e engine.Execution) error {
	if err := w.i.fail(OpCreate); err != nil {
		return err
	}
	return w.s.Create(ctx, e)
}

func (w *store) Acquire(ctx context.Context, r engine.AcquireRequest) (engine.Lease, error) {
	if err := w.i.fail(OpAcquire); err != nil {
		return engine.Lease{}, err
	}
	return w.s.Acquire(ctx, r)
}

func (w *store) Commit(ctx context.Context, c engine.Commit) error {
	if err := w.i.fail(OpCommit); err != nil {
		return err
	}
	return w.s.Commit(ctx, c)
}

func (w *store) Get(ctx context.Context, id string) (engine.Execution, error) {
	if err := w.i.fail(OpGet); err != nil {
		return engine.Execution{}, err
	}
	return w.s.Get(ctx, id)
}

func (w *store) History(ctx context.Context, id string) ([]engine.HistoryEntry, error) {
	if err := w.i.fail(OpHistory); err != nil {
		return nil, err
	}
	return w.s.History(ctx, id)
}

func (w *store) List(ctx context.Context, f engine.ListFilter) ([]engine.Execution, error) {
	if err := w.i.fail(OpList); err != nil {
		return nil, err
	}
	return w.s.List(ctx, f)
}

func (w *store) SetStatus(ctx context.Context, id string, s engine.Status, reason string, now time.Time) error {
	if err := w.i.fail(OpSetStatus); err != nil {
		return err
	}
	return w.s.SetStatus(ctx, id, s, reason, now)
}

type queue struct {
	i *Injector
	q engine.Queue
}

func (w *queue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if err := w.i.fail(OpSend); err != nil {
		return "", err
	}
	return w.q.Send(ctx, m)
}

type retrier struct {
	i *Injector
	r engine.Retrier
}

func (w *retrier) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	if err := w.i.fail(OpScheduleRetry); err != nil {
		return err
	}
	return w.r.ScheduleRetry(ctx, m)
}

type source struct {
	i *Injector
	s engine.Source
}

func (w *source) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	if err := w.i.fail(OpReceive); err != nil {
		return nil, err
	}
	return w.s.Receive(ctx, max, visibility, wait)
}

func (w *source) Ack(ctx context.Context, receipt string) error {
	if err := w.i.fail(OpAck); err != nil {
		return err
	}
	return w.s.Ack(ctx, receipt)
}

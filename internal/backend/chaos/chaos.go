package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// Operation names, as Config.Ops keys them: the wrapped interface's method.
// OpCommitStep is engine.StepCommitter's one-write step (send, commit and ack
// together), apart from OpCommit so that each path can be tuned.
const (
	OpCreate        = "Create"
	OpAcquire       = "Acquire"
	OpCommit        = "Commit"
	OpCommitStep    = "CommitStep"
	OpGet           = "Get"
	OpHistory       = "History"
	OpList          = "List"
	OpSetStatus     = "SetStatus"
	OpSwapStatus    = "SwapStatus"
	OpReopen        = "Reopen"
	OpRenew         = "Renew"
	OpStranded      = "Stranded"
	OpSend          = "Send"
	OpScheduleRetry = "ScheduleRetry"
	OpReceive       = "Receive"
	OpAck           = "Ack"
)

// Ops returns every operation name Config.Ops may key, sorted.
func Ops() []string {
	return []string{OpAck, OpAcquire, OpCommit, OpCommitStep, OpCreate, OpGet, OpHistory,
		OpList, OpReceive, OpRenew, OpReopen, OpScheduleRetry, OpSend, OpSetStatus, OpStranded, OpSwapStatus}
}

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

// Backends are the names For takes: the backends under internal/backend
// whose calls a chaos setting can target by name ("dynamodb.Acquire").
func Backends() []string {
	return []string{"cloudwatch", "dynamodb", "kinesis", "memcached", "memory", "redis", "sns", "sqlite", "sqs"}
}

// Injector decides which calls fail and wraps backends. Safe for concurrent use.
type Injector struct {
	*shared
	// backend names the backend this view wraps ("" for none): its calls
	// are counted, and looked up in Config.Ops, as "backend.Op" first.
	backend string
}

// shared is the state every view of one Injector shares.
type shared struct {
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
	return &Injector{shared: &shared{cfg: cfg, rnd: rnd, failures: map[string]int{}, calls: map[string]int{}}}
}

// For returns a view of i for the backend named backend (one of Backends):
// what it wraps fails by Config.Ops["backend.Op"], else Ops["Op"], else
// Default, and is counted in Stats as "backend.Op". Views share the draws
// and the counts.
func (i *Injector) For(backend string) *Injector {
	return &Injector{shared: i.shared, backend: backend}
}

// fail reports an injected failure of op, or nil.
func (i *Injector) fail(op string) error {
	key := op
	if i.backend != "" {
		key = i.backend + "." + op
	}
	p, ok := i.cfg.Ops[key]
	if !ok {
		p, ok = i.cfg.Ops[op]
	}
	if !ok {
		p = i.cfg.Default
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.calls[key]++
	if p <= 0 {
		return nil
	}
	if p < 1 && i.rnd.Float64() >= p {
		return nil
	}
	i.failures[key]++
	return &Error{Op: key}
}

// Stats returns, per operation, how many calls were made and how many failed.
func (i *Injector) Stats() (calls, failures map[string]int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return maps.Clone(i.calls), maps.Clone(i.failures)
}

// Store wraps s. If s implements engine.StepCommitter, so does the wrapper
// (CommitStep fails as OpCommitStep). The engine uses CommitStep only when its
// Store and Queue are one value, which a Store and a Queue wrapped apart are
// not: use Backend for that.
func (i *Injector) Store(s engine.Store) engine.Store {
	w := &store{i: i, s: s}
	if sc, ok := s.(engine.StepCommitter); ok {
		return &stepStore{store: w, sc: sc}
	}
	return w
}

// Full is one backend behind all of the engine's local seams, as the memory
// and SQLite backends are.
type Full interface {
	engine.Store
	engine.Queue
	engine.Retrier
	engine.Source
}

// Backend wraps b as one value that is its Store, Queue, Retrier and Source
// at once, so that the engine, which compares the values it is given to find
// a backend that owns both store and queue, still sees one backend: with b an
// engine.StepCommitter, the wrapper is one too, and the engine ends each step
// with CommitStep (one write) as it would on b itself.
func (i *Injector) Backend(b Full) Full {
	w := &backend{store: store{i: i, s: b}, queue: queue{i: i, q: b}, retrier: retrier{i: i, r: b}, source: source{i: i, s: b}}
	if sc, ok := b.(engine.StepCommitter); ok {
		return &stepBackend{backend: w, sc: sc}
	}
	return w
}

// backend is Backend's wrapper; its methods are those of the four wrappers.
type backend struct {
	store
	queue
	retrier
	source
}

// stepBackend is a backend whose wrapped value is a StepCommitter. It is a
// pointer to one value, so the engine's "same backend" test holds when it is
// passed as Store, Queue, Retrier and Source.
type stepBackend struct {
	*backend
	sc engine.StepCommitter
}

func (w *stepBackend) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	return w.backend.store.i.commitStep(ctx, w.sc, c, out, ack)
}

// stepStore is a Store wrapper whose wrapped Store is a StepCommitter.
type stepStore struct {
	*store
	sc engine.StepCommitter
}

func (w *stepStore) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	return w.i.commitStep(ctx, w.sc, c, out, ack)
}

// commitStep fails as OpCommitStep before sc is called, so an injected
// failure sends, commits and acknowledges nothing (a failure of the real
// write, which is atomic, looks the same to the engine).
func (i *Injector) commitStep(ctx context.Context, sc engine.StepCommitter, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	if err := i.fail(OpCommitStep); err != nil {
		return "", err
	}
	return sc.CommitStep(ctx, c, out, ack)
}

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

func (w *store) List(ctx context.Context, f engine.ListFilter) (engine.ListPage, error) {
	if err := w.i.fail(OpList); err != nil {
		return engine.ListPage{}, err
	}
	return w.s.List(ctx, f)
}

func (w *store) SetStatus(ctx context.Context, id string, s engine.Status, reason string, now time.Time) error {
	if err := w.i.fail(OpSetStatus); err != nil {
		return err
	}
	return w.s.SetStatus(ctx, id, s, reason, now)
}

func (w *store) SwapStatus(ctx context.Context, s engine.StatusSwap) error {
	if err := w.i.fail(OpSwapStatus); err != nil {
		return err
	}
	return w.s.SwapStatus(ctx, s)
}

func (w *store) Reopen(ctx context.Context, r engine.Reopen) error {
	if err := w.i.fail(OpReopen); err != nil {
		return err
	}
	return w.s.Reopen(ctx, r)
}

func (w *store) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	if err := w.i.fail(OpRenew); err != nil {
		return err
	}
	return w.s.Renew(ctx, r)
}

func (w *store) Stranded(ctx context.Context, q engine.StrandedQuery) ([]engine.Execution, error) {
	if err := w.i.fail(OpStranded); err != nil {
		return nil, err
	}
	return w.s.Stranded(ctx, q)
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

// Summary says how many calls failed of how many, per operation that failed:
// "3 of 41 calls failed (CommitStep 1, Receive 2)".
func (i *Injector) Summary() string {
	calls, failures := i.Stats()
	n, f := 0, 0
	for _, c := range calls {
		n += c
	}
	var parts []string
	for _, op := range Ops() {
		if failures[op] > 0 {
			f += failures[op]
			parts = append(parts, fmt.Sprintf("%s %d", op, failures[op]))
		}
	}
	s := fmt.Sprintf("%d of %d calls failed", f, n)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s
}

// RecordDrop passes through to the wrapped Store if it is an
// engine.DropRecorder (and does nothing otherwise), with no failure
// injected: recording a message the engine cannot run is not part of a
// step, and a drop lost to chaos would be a drop lost silently.
func (w *store) RecordDrop(ctx context.Context, d engine.DroppedMessage) error {
	if r, ok := w.s.(engine.DropRecorder); ok {
		return r.RecordDrop(ctx, d)
	}
	return nil
}

// ListDropped passes through as RecordDrop does (an empty list otherwise).
func (w *store) ListDropped(ctx context.Context, f engine.DropFilter) ([]engine.DroppedMessage, error) {
	if r, ok := w.s.(engine.DropRecorder); ok {
		return r.ListDropped(ctx, f)
	}
	return []engine.DroppedMessage{}, nil
}

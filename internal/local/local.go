package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// DefaultDBPath is where the local store lives, relative to the project root.
const DefaultDBPath = ".lfsm/lfsm.db"

// Backend is what local needs of a store: execution records, a queue to send
// to and a source to receive from (memory and sqlite backends are all three).
type Backend interface {
	engine.Store
	engine.Queue
	engine.Source
}

// RunOptions configure Run.
type RunOptions struct {
	Spec *spec.Spec
	// Resolve maps action references to actions; unused with Simulate.
	Resolve engine.Resolver
	// Simulate, when set, replaces every action with engine.SimulateActions.
	Simulate *engine.SimulateOptions
	// Backend to run on; nil opens the SQLite store at DBPath.
	Backend Backend
	// DBPath is the SQLite database (default DefaultDBPath).
	DBPath string
	// Machine to start.
	Machine string
	// Context is the initial user context (Run takes ownership).
	Context map[string]any
	// CorrelationID of the execution; empty means a new random one.
	CorrelationID string
	// Out receives the λ lines and a summary as they happen, or with JSON the
	// RunResult as one document at the end; nil discards.
	Out  io.Writer
	JSON bool
	// Logger receives the engine's logs; nil discards.
	Logger *slog.Logger
	// Command is how the run was started ("lfsm run -f specs/x.yaml -m X"),
	// for the hint of a simulated run that ends waiting.
	Command string
	// Chaos, when set, wraps the backend so that its calls fail at random
	// (the execution's start excepted: see Run). It also shortens the
	// default Visibility and LeaseTimeout to ChaosVisibility and
	// ChaosLeaseTimeout, so that a failed step comes back within seconds.
	Chaos *chaos.Injector
	// Visibility is how long a received message that was not acknowledged
	// (its handling failed) stays hidden before it comes back (default
	// RunVisibility, or ChaosVisibility under Chaos).
	Visibility time.Duration
	// LeaseTimeout is how long a step's lease lasts without a renewal (the
	// engine renews it while actions run): how long a dead worker's step
	// waits before it is taken over (default LeaseTimeout, or
	// ChaosLeaseTimeout under Chaos).
	LeaseTimeout time.Duration
}

// Redelivery timeouts. Run handles one message at a time, so a message
// comes back only when its handling failed; a short visibility costs
// nothing else. The lease is what keeps two workers sharing a store from
// running one step at once, so only chaos, under which commits fail on
// purpose and would otherwise block the step for the full default lease,
// shortens it; a step that runs longer than ChaosLeaseTimeout under chaos
// may then run twice if a worker shares the store (its fence stops the
// second commit).
const (
	RunVisibility     = 2 * time.Second
	ChaosVisibility   = 250 * time.Millisecond
	ChaosLeaseTimeout = time.Second
	// LeaseTimeout is the local workers' lease. Renewed every third of it
	// while actions run, it only has to cover a late renewal on a local
	// file, and a killed worker's steps are taken over within seconds.
	LeaseTimeout = 5 * time.Second
	// WorkerVisibility is the local workers' visibility timeout: how long a
	// killed worker's deliveries stay hidden before they come back.
	WorkerVisibility = 10 * time.Second
)

// maxInfraFailures is how many store or queue calls in a row Run lets fail
// (each then retried, or its message redelivered) before it gives up.
const maxInfraFailures = 20

// keyReceiver is implemented by backends that can receive the messages of
// one key (sqlite.DB): Run takes its own execution's messages first.
type keyReceiver interface {
	ReceiveKey(ctx context.Context, key string, max int, visibility, wait time.Duration) ([]engine.Delivery, error)
}

// repairEvery is how often an idle Run repairs stranded executions.
const repairEvery = 5 * time.Second

// Poll bounds how long one receive waits for the next message, between
// checks of the execution's status.
const poll = 500 * time.Millisecond

// Run starts one execution of opts.Machine (a *spec.UnknownMachineError when
// the spec has none of that name) and handles messages in-process
// until it is done, failed, stopped or waiting for an outside event; retries
// are waited for. It returns the RunResult whatever the execution's status:
// a failed execution is a normal outcome, not an error. Messages of other
// executions that share the store are handled too, but not traced.
func Run(ctx context.Context, opts RunOptions) (RunResult, error) {
	res := RunResult{FormatVersion: FormatVersion, Machine: opts.Machine, Lambdas: []Lambda{}}
	m, err := opts.Spec.FindMachine(opts.Machine)
	if err != nil {
		return res, fmt.Errorf("run: %w", err)
	}
	raw, closeB, err := open(ctx, opts.Backend, opts.DBPath)
	if err != nil {
		return res, err
	}
	defer closeB()
	visibility, leaseTimeout := RunVisibility, LeaseTimeout
	if opts.Chaos != nil {
		visibility, leaseTimeout = ChaosVisibility, ChaosLeaseTimeout
	}
	if opts.Visibility > 0 {
		visibility = opts.Visibility
	}
	if opts.LeaseTimeout > 0 {
		leaseTimeout = opts.LeaseTimeout
	}
	b, err := withChaos(raw, opts.Chaos)
	if err != nil {
		return res, err
	}
	e, err := newEngine(opts.Spec, opts.Resolve, opts.Simulate, b, opts.Logger, leaseTimeout)
	if err != nil {
		return res, err
	}
	// The start goes to the store as it is: a start that fails is the
	// caller's error to report, not a step to redeliver, and chaos is there
	// to test how the execution copes once started.
	starter := e
	if b != raw {
		if starter, err = newEngine(opts.Spec, opts.Resolve, opts.Simulate, raw, opts.Logger, leaseTimeout); err != nil {
			return res, err
		}
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	trace := NewTrace(m)
	start := time.Now()
	id, err := starter.Start(ctx, engine.StartRequest{Machine: m.Name, Context: opts.Context, CorrelationID: opts.CorrelationID})
	if err != nil {
		return res, err
	}
	res.CorrelationID = id
	// Failures of the store or queue are infrastructure errors: a failed
	// receive or read is tried again after a short backoff, a delivery whose
	// handling failed comes back after the visibility timeout. Only a run of
	// maxInfraFailures in a row ends Run.
	infra := infraRetry{ctx: ctx, logger: logger, id: id}
	// On a store with a backlog, its own messages first: a store that can
	// receive by key hands them out before anyone else's.
	own, _ := b.(keyReceiver)
	lastRepair := time.Now()
	finished := false
	for !finished {
		var ds []engine.Delivery
		var err error
		if own != nil {
			ds, err = own.ReceiveKey(ctx, id, 10, visibility, 0)
		}
		if err == nil && len(ds) == 0 {
			ds, err = b.Receive(ctx, 10, visibility, poll)
		}
		if err != nil {
			if err := infra.failed("receive", err); err != nil {
				return res, err
			}
			continue
		}
		if len(ds) == 0 {
			// Someone else (a worker on the same store) may have finished it.
			ex, err := b.Get(ctx, id)
			if err != nil {
				if err := infra.failed("get", err); err != nil {
					return res, err
				}
				continue
			}
			infra.ok()
			finished = ex.Status.Terminal() || ex.Status == engine.StatusWaiting
			if !finished && time.Since(lastRepair) >= repairEvery {
				// Running, and nothing to receive: re-send what was lost.
				lastRepair = time.Now()
				if _, err := e.Repair(ctx, engine.RepairOptions{Grace: e.LeaseTimeout()}); err != nil {
					logger.LogAttrs(ctx, slog.LevelWarn, "repair failed", slog.Any("err", err))
				}
			}
			continue
		}
		infra.ok()
		for _, d := range ds {
			l, mine, err := handle(ctx, e, b, d, id, trace)
			if err != nil {
				// Left unacknowledged: it comes back after the visibility timeout.
				if err := infra.failed("handle message", err); err != nil {
					return res, err
				}
				continue
			}
			if !mine {
				continue
			}
			res.Lambdas = append(res.Lambdas, l)
			if !opts.JSON {
				if _, err := fmt.Fprintln(out, trace.Line(l)); err != nil {
					return res, err
				}
				if end, ok := trace.EndLine(l); ok {
					if _, err := fmt.Fprintln(out, end); err != nil {
						return res, err
					}
				}
			}
			switch l.Outcome {
			case engine.OutcomeDone, engine.OutcomeFailed, engine.OutcomeWait:
				finished = true
			}
		}
	}
	res.Duration = time.Since(start)
	for {
		err := fill(ctx, b, &res)
		if err == nil {
			break
		}
		if err := infra.failed("read result", err); err != nil {
			return res, err
		}
	}
	if opts.JSON {
		return res, WriteJSON(out, res)
	}
	if opts.Simulate != nil {
		return res, WriteSimulatedSummary(out, res, m, opts.Simulate, opts.Command)
	}
	return res, WriteSummary(out, res)
}

// infraRetry counts failures of the store or queue in a row.
type infraRetry struct {
	ctx     context.Context
	logger  *slog.Logger
	id      string
	n       int
	backoff time.Duration
}

// failed records err of what Run was doing. It returns an error when Run
// must stop (ctx is done, or too many failures in a row); else it logs err
// and waits a backoff (10 ms doubling to 200 ms) before the caller retries.
func (r *infraRetry) failed(what string, err error) error {
	if r.ctx.Err() != nil {
		return fmt.Errorf("run %s: %s: %w", r.id, what, err)
	}
	r.n++
	if r.n > maxInfraFailures {
		return fmt.Errorf("run %s: %s: %w (%d failures of the store in a row)", r.id, what, err, r.n)
	}
	r.logger.LogAttrs(r.ctx, slog.LevelWarn, "store call failed, will retry", slog.String("correlation_id", r.id),
		slog.String("call", what), slog.Any("err", err))
	r.backoff = min(max(2*r.backoff, 10*time.Millisecond), 200*time.Millisecond)
	t := time.NewTimer(r.backoff)
	defer t.Stop()
	select {
	case <-r.ctx.Done():
		return fmt.Errorf("run %s: %s: %w", r.id, what, r.ctx.Err())
	case <-t.C:
	}
	return nil
}

// ok records a call that succeeded.
func (r *infraRetry) ok() { r.n, r.backoff = 0, 0 }

// withChaos returns b wrapped by inj, or b when inj is nil.
func withChaos(b Backend, inj *chaos.Injector) (Backend, error) {
	if inj == nil {
		return b, nil
	}
	full, ok := b.(chaos.Full)
	if !ok {
		return nil, fmt.Errorf("chaos: the backend %T is not a full local backend (store, queue, retrier and source)", b)
	}
	return inj.Backend(full), nil
}

// handle processes one delivery. mine reports whether it was a step of
// execution id that ran (and l describes it).
func handle(ctx context.Context, e *engine.Engine, src engine.Source, d engine.Delivery, id string, trace *Trace) (l Lambda, mine bool, err error) {
	msg, derr := engine.DecodeMessage(d.Payload)
	t0 := time.Now()
	// Steps run to completion even when ctx is cancelled; the caller stops after.
	hctx := context.WithoutCancel(ctx)
	// Acknowledged in the step's commit when src is the engine's store.
	r, err := e.HandleDelivery(hctx, src, d)
	dur := time.Since(t0)
	if err != nil {
		return l, false, fmt.Errorf("handle message of %s: %w", r.CorrelationID, err)
	}
	if derr != nil || r.CorrelationID != id || r.Dropped != "" {
		return l, false, nil
	}
	from, event := msg.System.CurrentState, msg.System.CurrentEvent
	l = Lambda{Step: r.Step, From: from, Event: event, Actions: r.Actions, Outcome: r.Outcome,
		Retries: r.Retries, Duration: dur}
	if l.Actions == nil {
		l.Actions = []string{}
	}
	if n, to, ok := trace.Find(from, event); ok {
		l.Number, l.To = n, to
	} else {
		l.To = r.State
	}
	if r.Err != nil {
		l.Error = r.Err.Error()
	}
	return l, true, nil
}

// fill completes res from the stored execution.
func fill(ctx context.Context, s engine.Store, res *RunResult) error {
	ex, err := s.Get(ctx, res.CorrelationID)
	if err != nil {
		return fmt.Errorf("run %s: %w", res.CorrelationID, err)
	}
	res.Status, res.State, res.Error = ex.Status, ex.State, CurrentError(ex)
	res.Context = map[string]any{}
	if len(ex.Checkpoint) > 0 {
		if msg, err := engine.DecodeMessage(ex.Checkpoint); err == nil && msg.User != nil {
			res.Context = msg.User
		}
	}
	return nil
}

// CurrentError is the error that explains an execution's status: its last
// error when it failed or was stopped, or when it is running a retry; ""
// otherwise. A store keeps the last error of every execution, also after it
// went on to finish (an earlier attempt that was retried, a stop that was
// resumed), but errors of attempts belong to its history: a done execution
// shows none.
func CurrentError(ex engine.Execution) string {
	switch {
	case ex.Status == engine.StatusFailed, ex.Status == engine.StatusStopped:
		return ex.LastError
	case ex.Status == engine.StatusRunning && ex.Retries > 0:
		return ex.LastError
	}
	return ""
}

// WorkerOptions configure Worker.
type WorkerOptions struct {
	Spec     *spec.Spec
	Resolve  engine.Resolver
	Simulate *engine.SimulateOptions
	// Backend to work on; nil opens the SQLite store at DBPath.
	Backend Backend
	DBPath  string
	// Workers is how many messages are handled at once (default 4).
	Workers int
	// Visibility is how long a received message stays hidden from other
	// workers before it is delivered again (default WorkerVisibility).
	Visibility time.Duration
	// LeaseTimeout is how long a step's lease lasts without a renewal before
	// another worker may take the step over (default LeaseTimeout).
	LeaseTimeout time.Duration
	// UntilIdle makes Worker return once the queue is empty: no message ready,
	// delayed (a retry) or in flight. Executions left waiting for an outside
	// event do not keep it busy. The backend must report its queue length.
	UntilIdle bool
	Logger    *slog.Logger
	// Chaos, as in RunOptions: it wraps the backend, and the zero Visibility
	// and LeaseTimeout become ChaosVisibility and ChaosLeaseTimeout.
	Chaos *chaos.Injector
	// Retention, when positive, prunes executions finished (done, failed,
	// stopped) longer ago than it, with their history: once before the
	// worker starts, then every RetentionInterval while it runs. The backend
	// must be an engine.Pruner.
	Retention time.Duration
	// OnHandled, when set, is told of every handled delivery (a
	// StepReporter's Handled prints λ lines): see engine.WorkerOptions.
	OnHandled func(d engine.Delivery, r engine.Result, err error, took time.Duration)
}

// RetentionInterval is how often a worker with a Retention prunes.
const RetentionInterval = 10 * time.Minute

// retentionBatch caps the executions one of a worker's prunes deletes, so
// that a large first prune does not hold up the steps for long; the rest
// waits for the next interval.
const retentionBatch = 10000

// prune applies retention once.
func prune(ctx context.Context, p engine.Pruner, retention time.Duration, logger *slog.Logger) error {
	now := time.Now()
	res, err := p.Prune(ctx, engine.PruneRequest{Before: now.Add(-retention), Limit: retentionBatch, Now: now})
	if err != nil {
		return fmt.Errorf("worker: apply retention %s: %w", retention, err)
	}
	if res != (engine.PruneResult{}) {
		logger.LogAttrs(ctx, slog.LevelInfo, "pruned executions past retention", slog.Duration("retention", retention),
			slog.Int("executions", res.Executions), slog.Int("history", res.History), slog.Int("dropped", res.Dropped))
	}
	return nil
}

// keepPruning applies retention every RetentionInterval until ctx ends;
// failures are logged and tried again at the next interval.
func keepPruning(ctx context.Context, p engine.Pruner, retention time.Duration, logger *slog.Logger) {
	t := time.NewTicker(RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := prune(ctx, p, retention, logger); err != nil && ctx.Err() == nil {
				logger.LogAttrs(ctx, slog.LevelWarn, "retention", slog.Any("err", err))
			}
		}
	}
}

// queueLener is implemented by backends that can count the messages not yet
// acknowledged (sqlite.DB; memory.Backend through Len).
type queueLener interface {
	QueueLen(ctx context.Context) (int, error)
}

// idlePoll is how often an UntilIdle worker checks the queue.
const idlePoll = 100 * time.Millisecond

// Worker handles messages of every machine of the spec until ctx is
// cancelled (or, with UntilIdle, the queue is empty); then it lets the steps
// in flight finish and returns nil.
func Worker(ctx context.Context, opts WorkerOptions) error {
	raw, closeB, err := open(ctx, opts.Backend, opts.DBPath)
	if err != nil {
		return err
	}
	defer closeB()
	b, err := withChaos(raw, opts.Chaos)
	if err != nil {
		return err
	}
	if opts.Chaos != nil {
		if opts.Visibility <= 0 {
			opts.Visibility = ChaosVisibility
		}
		if opts.LeaseTimeout <= 0 {
			opts.LeaseTimeout = ChaosLeaseTimeout
		}
	}
	if opts.Visibility <= 0 {
		opts.Visibility = WorkerVisibility
	}
	if opts.LeaseTimeout <= 0 {
		opts.LeaseTimeout = LeaseTimeout
	}
	e, err := newEngine(opts.Spec, opts.Resolve, opts.Simulate, b, opts.Logger, opts.LeaseTimeout)
	if err != nil {
		return err
	}
	wopts := engine.WorkerOptions{Concurrency: opts.Workers, Visibility: opts.Visibility, Logger: opts.Logger,
		OnHandled: opts.OnHandled}
	if opts.Retention > 0 {
		p, ok := raw.(engine.Pruner) // retention is no chaos target
		if !ok {
			return fmt.Errorf("worker: the backend %T cannot prune (needed for a retention)", raw)
		}
		logger := opts.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		if err := prune(ctx, p, opts.Retention, logger); err != nil {
			return err
		}
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		go keepPruning(pctx, p, opts.Retention, logger)
	}
	if !opts.UntilIdle {
		return engine.RunWorker(ctx, b, e, wopts)
	}
	ql, ok := queueLenOf(raw) // the wrapper does not count; counting is no store call under test
	if !ok {
		return fmt.Errorf("worker: the backend %T cannot report its queue length (needed to stop when idle)", b)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := make(chan error, 1)
	go func() { idle <- waitIdle(wctx, ql); cancel() }()
	err = engine.RunWorker(wctx, b, e, wopts)
	cancel()
	if ierr := <-idle; err == nil && ierr != nil {
		err = fmt.Errorf("worker: %w", ierr)
	}
	return err
}

// memLen adapts a backend that counts its queue without a context.
type memLen struct{ b interface{ Len() int } }

func (m memLen) QueueLen(context.Context) (int, error) { return m.b.Len(), nil }

func queueLenOf(b Backend) (queueLener, bool) {
	switch q := b.(type) {
	case queueLener:
		return q, true
	case interface{ Len() int }:
		return memLen{q}, true
	}
	return nil, false
}

// waitIdle returns when q has been empty at two checks in a row, or ctx ends.
func waitIdle(ctx context.Context, q queueLener) error {
	t := time.NewTicker(idlePoll)
	defer t.Stop()
	empty := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := q.QueueLen(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			return err
		case n == 0:
			empty++
		default:
			empty = 0
		}
		if empty >= 2 {
			return nil
		}
	}
}

// newEngine compiles every machine of s and returns an engine over b.
func newEngine(s *spec.Spec, resolve engine.Resolver, sim *engine.SimulateOptions, b Backend, logger *slog.Logger, leaseTimeout time.Duration) (*engine.Engine, error) {
	if resolve == nil && sim == nil {
		return nil, errors.New("compile machines: no action resolver")
	}
	var machines []*engine.Machine
	for _, sm := range s.Machines {
		r := resolve
		if sim != nil {
			r = engine.SimulateActions(sm, *sim)
		}
		cm, err := engine.Compile(sm, r)
		if err != nil {
			return nil, fmt.Errorf("compile machine %s: %w", sm.Name, err)
		}
		machines = append(machines, cm)
	}
	return engine.New(engine.Options{Machines: machines, Store: b, Queue: b, Logger: logger, LeaseTimeout: leaseTimeout})
}

// open returns b, or the SQLite store at path (default DefaultDBPath) with
// a function that closes it.
func open(ctx context.Context, b Backend, path string) (Backend, func(), error) {
	if b != nil {
		return b, func() {}, nil
	}
	if path == "" {
		path = DefaultDBPath
	}
	return openSQLite(ctx, path)
}

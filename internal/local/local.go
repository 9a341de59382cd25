package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

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

// ErrUnknownMachine is returned when the machine to run is not in the spec.
var ErrUnknownMachine = errors.New("no such machine")

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
}

// Poll bounds how long one receive waits for the next message, between
// checks of the execution's status.
const poll = 500 * time.Millisecond

// Run starts one execution of opts.Machine and handles messages in-process
// until it is done, failed, stopped or waiting for an outside event; retries
// are waited for. It returns the RunResult whatever the execution's status:
// a failed execution is a normal outcome, not an error. Messages of other
// executions that share the store are handled too, but not traced.
func Run(ctx context.Context, opts RunOptions) (RunResult, error) {
	res := RunResult{FormatVersion: FormatVersion, Machine: opts.Machine, Lambdas: []Lambda{}}
	m := opts.Spec.Machine(opts.Machine)
	if m == nil {
		return res, fmt.Errorf("run %q: %w", opts.Machine, ErrUnknownMachine)
	}
	b, closeB, err := open(ctx, opts.Backend, opts.DBPath)
	if err != nil {
		return res, err
	}
	defer closeB()
	e, err := newEngine(opts.Spec, opts.Resolve, opts.Simulate, b, opts.Logger, 0)
	if err != nil {
		return res, err
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	trace := NewTrace(m)
	start := time.Now()
	id, err := e.Start(ctx, engine.StartRequest{Machine: m.Name, Context: opts.Context, CorrelationID: opts.CorrelationID})
	if err != nil {
		return res, err
	}
	res.CorrelationID = id
	finished := false
	for !finished {
		ds, err := b.Receive(ctx, 10, 30*time.Second, poll)
		if err != nil {
			return res, fmt.Errorf("run %s: receive: %w", id, err)
		}
		if len(ds) == 0 {
			// Someone else (a worker on the same store) may have finished it.
			ex, err := b.Get(ctx, id)
			if err != nil {
				return res, fmt.Errorf("run %s: %w", id, err)
			}
			finished = ex.Status.Terminal() || ex.Status == engine.StatusWaiting
			continue
		}
		for _, d := range ds {
			l, mine, err := handle(ctx, e, b, d, id, trace)
			if err != nil {
				return res, err
			}
			if !mine {
				continue
			}
			res.Lambdas = append(res.Lambdas, l)
			if !opts.JSON {
				if _, err := fmt.Fprintln(out, trace.Line(l)); err != nil {
					return res, err
				}
			}
			switch l.Outcome {
			case engine.OutcomeDone, engine.OutcomeFailed, engine.OutcomeWait:
				finished = true
			}
		}
	}
	res.Duration = time.Since(start)
	if err := fill(ctx, b, &res); err != nil {
		return res, err
	}
	if opts.JSON {
		return res, WriteJSON(out, res)
	}
	return res, WriteSummary(out, res)
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
	res.Status, res.State, res.Error = ex.Status, ex.State, ex.LastError
	res.Context = map[string]any{}
	if len(ex.Checkpoint) > 0 {
		if msg, err := engine.DecodeMessage(ex.Checkpoint); err == nil && msg.User != nil {
			res.Context = msg.User
		}
	}
	return nil
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
	// workers before it is delivered again (default 30 s; see engine.WorkerOptions).
	Visibility time.Duration
	// LeaseTimeout is how long a step's lease lasts before another worker may
	// take the step over (default engine.DefaultLeaseTimeout).
	LeaseTimeout time.Duration
	// UntilIdle makes Worker return once the queue is empty: no message ready,
	// delayed (a retry) or in flight. Executions left waiting for an outside
	// event do not keep it busy. The backend must report its queue length.
	UntilIdle bool
	Logger    *slog.Logger
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
	b, closeB, err := open(ctx, opts.Backend, opts.DBPath)
	if err != nil {
		return err
	}
	defer closeB()
	e, err := newEngine(opts.Spec, opts.Resolve, opts.Simulate, b, opts.Logger, opts.LeaseTimeout)
	if err != nil {
		return err
	}
	wopts := engine.WorkerOptions{Concurrency: opts.Workers, Visibility: opts.Visibility, Logger: opts.Logger}
	if !opts.UntilIdle {
		return engine.RunWorker(ctx, b, e, wopts)
	}
	ql, ok := queueLenOf(b)
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

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/spec"
)

// Defaults of Options.
const (
	// DefaultLeaseTimeout is a step's lease. The engine renews it while the
	// step's actions run (every third of it), so it only bounds how long a
	// dead worker's step waits before another worker takes it over, and how
	// long a renewal may be late (docs/design.md, "Leases and heartbeats").
	DefaultLeaseTimeout = 30 * time.Second
	DefaultMaxLocalHops = 1000
	// DefaultMaxMessageBytes is the smallest of the limits a message meets on
	// AWS: an SNS message (256 KiB). The others are larger: an SQS message
	// and a Kinesis record (1 MiB), the DynamoDB item holding the checkpoint
	// (400 KB, with the execution's other attributes), Lambda's 6 MB event
	// payload once Kinesis records are base64-encoded (4.5 MB).
	DefaultMaxMessageBytes = 256 << 10
	// DefaultMaxTakeovers is how many takeovers of one step's lease (its
	// holder died, or froze, while running it) the engine allows before it
	// fails the step instead of running it again.
	DefaultMaxTakeovers = 2
	// DefaultRepairGrace is how long past its due time a message may be on
	// its way before Engine.Repair re-sends it. On a store that is not the
	// queue it must exceed the queue's worst delivery latency and visibility
	// timeout (a message in flight looks lost to the store).
	DefaultRepairGrace = 5 * time.Minute
	// MaxRetryDelay caps the full-jitter backoff of retries unless the
	// machine sets max_retry_delay (spec.DefaultMaxRetryDelay).
	MaxRetryDelay = spec.DefaultMaxRetryDelay * time.Second
	// maxRecordedActions caps the actions one history entry lists; a long chain
	// of local transitions is summarised after that.
	maxRecordedActions = 256
)

// Sentinel errors of the operator calls (Start, Send, Stop, Resume).
var (
	// ErrUnknownMachine: the engine has no machine of that name.
	ErrUnknownMachine = errors.New("unknown machine")
	// ErrNotWaiting: Send was called for an execution that is not waiting.
	ErrNotWaiting = errors.New("execution is not waiting")
	// ErrNotResumable: Resume was called for an execution that is neither failed
	// nor stopped.
	ErrNotResumable = errors.New("execution is neither failed nor stopped")
	// ErrUnknownEvent: the event has no transition from the execution's state.
	ErrUnknownEvent = errors.New("no transition for event")
)

// Options configure an Engine. Machines, Store and Queue are required.
type Options struct {
	Machines []*Machine
	Store    Store
	Queue    Queue
	// Retrier schedules retries; nil means Queue, which must then implement
	// Retrier or accept a positive OutMessage.Delay.
	Retrier Retrier
	// Metrics receives counters; nil discards them.
	Metrics Metrics
	// Clock tells the time; nil means the system clock.
	Clock Clock
	// Logger logs failures with stable keys; nil discards.
	Logger *slog.Logger
	// Rand draws retry delays (full jitter); nil means a randomly seeded source.
	// The engine serialises its use.
	Rand *rand.Rand
	// LeaseTimeout is how long a step's lease lasts without a renewal: the
	// engine renews it every LeaseTimeout/3 while actions run, so a step may
	// run longer; a dead worker's step is taken over once it expires.
	// Default DefaultLeaseTimeout.
	LeaseTimeout time.Duration
	// MaxTakeovers bounds the takeovers of one step's lease before the step
	// fails (its holder keeps disappearing); default DefaultMaxTakeovers.
	MaxTakeovers int
	// MaxLocalHops caps local transitions in one invocation (runaway guard).
	// Default 1000.
	MaxLocalHops int
	// MaxMessageBytes caps every message the engine writes (the start
	// message, each next message and retry, a checkpoint, the event of Send,
	// a resume): a step whose next message would be larger fails its
	// execution, naming both sizes, before anything is sent. Default
	// DefaultMaxMessageBytes; a backend with a smaller limit sets it lower.
	MaxMessageBytes int
	// Drops records the messages the engine cannot run (lfsm ls --dropped);
	// nil means the Store if it implements DropRecorder, else they are only
	// counted (MetricDropped) and logged.
	Drops DropRecorder
	// Renames translate the messages of older versions of the machines
	// (their spec hash is a Rename's From) before they run: a deploy that
	// renames states ships them to the function (LFSM_RENAMES). New
	// refuses renames whose targets the machines do not have.
	Renames []Rename
}

// Engine runs executions of compiled machines, one message at a time. It is
// safe for concurrent use: Handle may run for many messages at once.
type Engine struct {
	machines     map[string]*Machine
	names        names
	store        Store
	queue        Queue
	retrier      Retrier
	metrics      Metrics
	clock        Clock
	logger       *slog.Logger
	logEnabled   bool
	randMu       sync.Mutex
	rand         *rand.Rand
	leaseTimeout time.Duration
	maxLocalHops int
	maxMessage   int
	drops        DropRecorder
	maxTakeovers int
	// stepper is the Store when it can end a step in one write (it is the
	// Queue too); stepRetries: the Retrier is that backend as well.
	stepper     StepCommitter
	stepRetries bool
	// batcher is the stepper when it can commit a batch's steps together
	// (HandleBatch).
	batcher BatchCommitter
	// swapSender is the Store when it can claim a waiting execution and
	// send the event's message in one write (it is the Queue too).
	swapSender SwapSender
	// createSender and reopenSender: the Store can create (or reopen) an
	// execution and send its message in one write (it is the Queue too).
	createSender CreateSender
	reopenSender ReopenSender
	// beats renews the leases of the steps in flight (lease.go).
	beats beats
	// pending counts an execution's queued messages (the Store is the Queue).
	pending PendingCounter
	// renamer translates messages of older machine versions (nil: none).
	renamer *Renamer
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

type discardMetrics struct{}

func (discardMetrics) Add(MetricKey, int64) {}

// queueRetrier retries through a Queue's delayed send.
type queueRetrier struct{ q Queue }

func (r queueRetrier) ScheduleRetry(ctx context.Context, m OutMessage) error {
	_, err := r.q.Send(ctx, m)
	return err
}

// New returns an Engine.
func New(o Options) (*Engine, error) {
	if o.Store == nil || o.Queue == nil {
		return nil, errors.New("new engine: Store and Queue are required")
	}
	e := &Engine{
		machines:     make(map[string]*Machine, len(o.Machines)),
		store:        o.Store,
		queue:        o.Queue,
		retrier:      o.Retrier,
		metrics:      o.Metrics,
		clock:        o.Clock,
		logger:       o.Logger,
		rand:         o.Rand,
		leaseTimeout: o.LeaseTimeout,
		maxLocalHops: o.MaxLocalHops,
		maxTakeovers: o.MaxTakeovers,
		maxMessage:   o.MaxMessageBytes,
		drops:        o.Drops,
	}
	if e.drops == nil {
		e.drops, _ = o.Store.(DropRecorder)
	}
	for _, m := range o.Machines {
		if m == nil {
			return nil, errors.New("new engine: nil machine")
		}
		if _, dup := e.machines[m.name]; dup {
			return nil, fmt.Errorf("new engine: duplicate machine %q", m.name)
		}
		e.machines[m.name] = m
	}
	r, err := NewRenamer(o.Machines, o.Renames)
	if err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	e.renamer = r
	e.names = names{spec.PseudoInit: spec.PseudoInit, spec.PseudoFinal: spec.PseudoFinal}
	for _, m := range e.machines {
		e.names.add(m.name)
		e.names.add(m.hash)
		for _, st := range m.states {
			e.names.add(st.name)
			for _, t := range st.trans {
				e.names.add(t.event)
			}
		}
	}
	if e.retrier == nil {
		if r, ok := o.Queue.(Retrier); ok {
			e.retrier = r
		} else {
			e.retrier = queueRetrier{o.Queue}
		}
	}
	if sc, ok := o.Store.(StepCommitter); ok && sameBackend(o.Store, o.Queue) {
		e.stepper = sc
		e.stepRetries = o.Retrier == nil || sameBackend(o.Store, o.Retrier)
		e.batcher, _ = sc.(BatchCommitter)
	}
	if sameBackend(o.Store, o.Queue) {
		e.swapSender, _ = o.Store.(SwapSender)
		e.createSender, _ = o.Store.(CreateSender)
		e.reopenSender, _ = o.Store.(ReopenSender)
		e.pending, _ = o.Store.(PendingCounter)
	}
	if e.metrics == nil {
		e.metrics = discardMetrics{}
	}
	if e.clock == nil {
		e.clock = systemClock{}
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	e.logEnabled = e.logger.Handler().Enabled(context.Background(), slog.LevelError)
	if e.rand == nil {
		e.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if e.leaseTimeout <= 0 {
		e.leaseTimeout = DefaultLeaseTimeout
	}
	if e.maxLocalHops <= 0 {
		e.maxLocalHops = DefaultMaxLocalHops
	}
	if e.maxMessage <= 0 {
		e.maxMessage = DefaultMaxMessageBytes
	}
	if e.maxTakeovers <= 0 {
		e.maxTakeovers = DefaultMaxTakeovers
	}
	return e, nil
}

// sameBackend reports whether a and b are the same value (one backend behind
// several of the engine's seams). Values of types that cannot be compared are
// never the same.
func sameBackend(a, b any) bool {
	if a == nil || b == nil {
		return false
	}
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// LeaseTimeout returns the engine's lease timeout (Options.LeaseTimeout or
// its default).
func (e *Engine) LeaseTimeout() time.Duration { return e.leaseTimeout }

// Machine returns the engine's machine of that name, or nil.
func (e *Engine) Machine(name string) *Machine { return e.machines[name] }

// StartRequest starts one execution.
type StartRequest struct {
	Machine string
	// Context is the initial user context; the engine takes ownership.
	Context map[string]any
	// CorrelationID identifies the execution; empty means a new random one.
	CorrelationID string
	// MaxRetries overrides the machine's max_retries for this execution.
	MaxRetries *int
}

// Start records a new execution and sends its start message (state and event
// pseudo_init, steps 0). It returns the correlation id.
func (e *Engine) Start(ctx context.Context, r StartRequest) (string, error) {
	x, out, err := e.startRecord(r)
	if err != nil {
		return "", err
	}
	id, name := x.CorrelationID, x.Machine
	if e.createSender != nil {
		if _, err := e.createSender.CreateSend(ctx, x, out); err != nil {
			return "", fmt.Errorf("start %s %s: %w", name, id, err)
		}
		return id, nil
	}
	if err := e.store.Create(ctx, x); err != nil {
		return "", fmt.Errorf("start %s %s: %w", name, id, err)
	}
	// Created: finish the start even if ctx is cancelled now (Ctrl-C during
	// a batch of starts), rather than leave it without its message.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	if _, err := e.queue.Send(sctx, out); err != nil {
		// Leave it resumable rather than running with no message in flight
		// (and if even that fails, Repair re-sends it once it is overdue).
		e.setStatusAfterFailure(ctx, id, StatusFailed, "start message not sent: "+err.Error())
		return "", fmt.Errorf("start %s %s: send start message: %w", name, id, err)
	}
	return id, nil
}

// startRecord builds the execution record and the start message of r.
func (e *Engine) startRecord(r StartRequest) (Execution, OutMessage, error) {
	m := e.machines[r.Machine]
	if m == nil {
		return Execution{}, OutMessage{}, fmt.Errorf("start %q: %w", r.Machine, ErrUnknownMachine)
	}
	id := r.CorrelationID
	if id == "" {
		id = NewCorrelationID()
	} else if err := ValidateCorrelationID(id); err != nil {
		return Execution{}, OutMessage{}, fmt.Errorf("start %s %q: %w", m.name, id, err)
	}
	now := e.clock.Now()
	msg := Message{
		Version: WireVersion,
		System: SystemContext{
			MachineName:   m.name,
			CurrentState:  spec.PseudoInit,
			CurrentEvent:  spec.PseudoInit,
			CorrelationID: id,
			MaxRetries:    r.MaxRetries,
			StartedAt:     UnixTimeOf(now),
			SpecHash:      m.hash,
		},
		User: r.Context,
	}
	payload, err := EncodeMessage(msg)
	if err == nil {
		err = e.checkSize(payload)
	}
	if err != nil {
		return Execution{}, OutMessage{}, fmt.Errorf("start %s: %w", m.name, err)
	}
	delay := additionalDelay(&msg.System)
	x := Execution{
		CorrelationID: id,
		Machine:       m.name,
		Status:        StatusRunning,
		State:         spec.PseudoInit,
		Event:         spec.PseudoInit,
		DoneStep:      -1,
		Checkpoint:    payload,
		DueAt:         now.Add(delay),
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	return x, OutMessage{Key: id, Payload: payload, Delay: delay}, nil
}

// sendTimeout bounds the send that completes an operator call after its
// store write, which runs even when the caller's context is cancelled.
const sendTimeout = 30 * time.Second

// setStatusAfterFailure is a best-effort status change on a failure path.
func (e *Engine) setStatusAfterFailure(ctx context.Context, id string, s Status, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.store.SetStatus(ctx, id, s, reason, e.clock.Now()); err != nil {
		e.logger.LogAttrs(ctx, slog.LevelError, "cannot record status", slog.String("correlation_id", id),
			slog.String("status", string(s)), slog.Any("err", err))
	}
}

// Send delivers event to a waiting execution: it sends the next message built
// from the parked checkpoint (its state and user context, steps + 1). It fails
// with ErrNotWaiting unless the execution is waiting, and with ErrUnknownEvent
// (sending nothing) if the state has no transition for event.
//
// Send first claims the execution: a conditional change from waiting to
// running at the parked step (Store.SwapStatus), which exactly one of
// concurrent callers wins; the others, and a Send that finds the execution
// stopped or moved on, get ErrNotWaiting naming the status, and send
// nothing. The claim makes the event's message the checkpoint, so that a
// Stop after it and a Resume deliver the event. When the Store is also the
// Queue (SwapSender) the claim and the message are one write; otherwise the
// message is sent after the claim, and if that fails the claim is given back
// (best effort: a crash in between leaves the execution running with no
// message, which stop and resume repair).
func (e *Engine) Send(ctx context.Context, correlationID, event string) error {
	x, err := e.store.Get(ctx, correlationID)
	if err != nil {
		return fmt.Errorf("send %q to %s: %w", event, correlationID, err)
	}
	if x.Status != StatusWaiting {
		return fmt.Errorf("send %q to %s (status %s): %w", event, correlationID, x.Status, ErrNotWaiting)
	}
	msg, err := DecodeMessage(x.Checkpoint)
	if err != nil {
		return fmt.Errorf("send %q to %s: checkpoint: %w", event, correlationID, err)
	}
	if m := e.machines[msg.System.MachineName]; m != nil {
		// A checkpoint of an older version is renamed first; the event is
		// named as this version names it.
		e.stamp(m, &msg.System)
		i, ok := m.state(msg.System.CurrentState)
		if ok && m.states[i].transition(event) == nil {
			return fmt.Errorf("send %q to %s: state %q: %w %q", event, correlationID, msg.System.CurrentState, ErrUnknownEvent, event)
		}
	}
	msg.System.CurrentEvent = event
	msg.System.Steps++
	msg.System.Retries = 0
	payload, err := EncodeMessage(msg)
	if err == nil {
		err = e.checkSize(payload)
	}
	if err != nil {
		return fmt.Errorf("send %q to %s: %w", event, correlationID, err)
	}
	now := e.clock.Now()
	delay := additionalDelay(&msg.System)
	claim := StatusSwap{CorrelationID: correlationID, Step: x.DoneStep, From: StatusWaiting, To: StatusRunning,
		Checkpoint: payload, DueAt: now.Add(delay), Now: now}
	out := OutMessage{Key: correlationID, Payload: payload, Delay: delay}
	if e.swapSender != nil {
		if _, err := e.swapSender.SwapStatusSend(ctx, claim, out); err != nil {
			return sendError(event, correlationID, err)
		}
		return nil
	}
	if err := e.store.SwapStatus(ctx, claim); err != nil {
		return sendError(event, correlationID, err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	if _, err := e.queue.Send(sctx, out); err != nil {
		e.giveBack(ctx, x)
		return fmt.Errorf("send %q to %s: %w", event, correlationID, err)
	}
	return nil
}

// sendError words a refused claim of Send as ErrNotWaiting, naming the
// status found.
func sendError(event, correlationID string, err error) error {
	var se *StatusError
	if !errors.As(err, &se) {
		return fmt.Errorf("send %q to %s: %w", event, correlationID, err)
	}
	status := string(se.Status)
	if se.Status == StatusWaiting {
		status = fmt.Sprintf("waiting, moved on from step %d to %d", se.Want.Step, se.DoneStep)
	}
	return fmt.Errorf("send %q to %s (status %s): %w", event, correlationID, status, ErrNotWaiting)
}

// giveBack undoes Send's claim of x after its message could not be sent:
// running back to waiting with the parked checkpoint, unless something
// happened meanwhile (a stop wins).
func (e *Engine) giveBack(ctx context.Context, x Execution) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	back := StatusSwap{CorrelationID: x.CorrelationID, Step: x.DoneStep, From: StatusRunning, To: StatusWaiting,
		Checkpoint: x.Checkpoint, Now: e.clock.Now()}
	if err := e.store.SwapStatus(ctx, back); err != nil {
		e.logger.LogAttrs(ctx, slog.LevelError, "cannot put execution back to waiting", slog.String("correlation_id", x.CorrelationID),
			slog.Any("err", err))
	}
}

// Stop marks an execution stopped: its later messages are dropped. Resume
// restarts it from its checkpoint.
func (e *Engine) Stop(ctx context.Context, correlationID string) error {
	if err := e.store.SetStatus(ctx, correlationID, StatusStopped, "stopped by operator", e.clock.Now()); err != nil {
		return fmt.Errorf("stop %s: %w", correlationID, err)
	}
	return nil
}

// Resume restarts a failed or stopped execution: it reopens it (running
// again, Store.Reopen) and re-sends its checkpoint with retries reset to 0
// and restarted_at set, so that messages of the chain it replaces (a retry
// still in backoff when it was stopped) are refused. A stopped execution
// that was waiting goes back to waiting. When the Store is also the Queue
// (ReopenSender) the reopen and the message are one write.
//
// Resume also accepts a running execution that has nothing in flight (a
// start, send or resume that died between its two writes on a store that is
// not the queue): no live lease, past its due time, and, when the Store can
// count them (PendingCounter), no message queued. It re-sends its
// checkpoint as it is; a duplicate, if the message was only late, is
// dropped at acquire.
func (e *Engine) Resume(ctx context.Context, correlationID string) error {
	x, err := e.store.Get(ctx, correlationID)
	if err != nil {
		return fmt.Errorf("resume %s: %w", correlationID, err)
	}
	now := e.clock.Now()
	if x.Status == StatusRunning {
		return e.resumeRunning(ctx, x, now)
	}
	if x.Status != StatusFailed && x.Status != StatusStopped {
		return fmt.Errorf("resume %s (status %s): %w", correlationID, x.Status, ErrNotResumable)
	}
	msg, err := DecodeMessage(x.Checkpoint)
	if err != nil {
		return fmt.Errorf("resume %s: checkpoint: %w", correlationID, err)
	}
	if msg.System.CurrentEvent == "" && x.Status == StatusStopped {
		// Parked: nothing to re-send; it waits for an outside event again.
		r := Reopen{CorrelationID: correlationID, From: x.Status, To: StatusWaiting, Now: now}
		if err := e.store.Reopen(ctx, r); err != nil {
			return fmt.Errorf("resume %s: %w", correlationID, err)
		}
		return nil
	}
	// The restart time is what the message carries (whole seconds), and
	// later than the chain's it replaces, so that chain is refused.
	restarted := max(now.Unix(), int64(msg.System.RestartedAt)+1)
	at := time.Unix(restarted, 0)
	msg.System.Retries = 0
	msg.System.RestartedAt = UnixTime(restarted)
	if m := e.machines[msg.System.MachineName]; m != nil {
		e.stamp(m, &msg.System)
	}
	msg.System.FinishedAt = 0
	payload, err := EncodeMessage(msg)
	if err == nil {
		err = e.checkSize(payload)
	}
	if err != nil {
		return fmt.Errorf("resume %s: %w", correlationID, err)
	}
	r := Reopen{CorrelationID: correlationID, From: x.Status, To: StatusRunning, Checkpoint: payload, DueAt: now, Now: at}
	out := OutMessage{Key: correlationID, Payload: payload}
	if e.reopenSender != nil {
		if _, err := e.reopenSender.ReopenSend(ctx, r, out); err != nil {
			return fmt.Errorf("resume %s: %w", correlationID, err)
		}
		return nil
	}
	if err := e.store.Reopen(ctx, r); err != nil {
		return fmt.Errorf("resume %s: %w", correlationID, err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	if _, err := e.queue.Send(sctx, out); err != nil {
		e.setStatusAfterFailure(ctx, correlationID, x.Status, "resume message not sent: "+err.Error())
		return fmt.Errorf("resume %s: %w", correlationID, err)
	}
	return nil
}

// MessageTooLargeError: a message the engine was about to write is larger
// than Options.MaxMessageBytes. Nothing was sent.
type MessageTooLargeError struct {
	Size, Limit int
}

// Error names both sizes and the fix.
func (e *MessageTooLargeError) Error() string {
	return fmt.Sprintf("message of %d bytes is larger than the limit of %d bytes (the smallest AWS limit that applies, SNS's 256 KiB, unless the backend sets less): keep large data outside the context (S3, a table) and carry its key",
		e.Size, e.Limit)
}

// checkSize refuses a message larger than the limit.
func (e *Engine) checkSize(payload []byte) error {
	if len(payload) > e.maxMessage {
		return &MessageTooLargeError{Size: len(payload), Limit: e.maxMessage}
	}
	return nil
}

// resumeRunning re-sends the checkpoint of a running execution that has
// nothing in flight, or says why it will not.
func (e *Engine) resumeRunning(ctx context.Context, x Execution, now time.Time) error {
	id := x.CorrelationID
	// A store that cannot tell what is queued (it is not the queue) sees a
	// message on its way as missing: wait for Repair's grace past its due time.
	grace := DefaultRepairGrace
	if e.pending != nil {
		grace = 0
	}
	switch {
	case !x.LeaseExpires.IsZero() && now.Before(x.LeaseExpires):
		return fmt.Errorf("resume %s (status running, step %d in progress: its lease expires at %s): %w", id, x.LeaseStep,
			x.LeaseExpires.Format(time.RFC3339), ErrNotResumable)
	case !x.DueAt.IsZero() && now.Before(x.DueAt.Add(grace)):
		return fmt.Errorf("resume %s (status running, its message is due at %s and may be on its way; resume accepts it from %s): %w",
			id, x.DueAt.Format(time.RFC3339), x.DueAt.Add(grace).Format(time.RFC3339), ErrNotResumable)
	}
	if e.pending != nil {
		n, err := e.pending.Pending(ctx, id)
		if err != nil {
			return fmt.Errorf("resume %s: %w", id, err)
		}
		if n > 0 {
			return fmt.Errorf("resume %s (status running, %d message(s) queued for it): %w", id, n, ErrNotResumable)
		}
	}
	if _, err := e.queue.Send(ctx, OutMessage{Key: id, Payload: x.Checkpoint}); err != nil {
		return fmt.Errorf("resume %s: %w", id, err)
	}
	return nil
}

// RepairOptions configure Engine.Repair.
type RepairOptions struct {
	// Grace: a message overdue by less is assumed on its way (default
	// DefaultRepairGrace).
	Grace time.Duration
	// Limit bounds the executions repaired by one call (default 100).
	Limit int
}

// Repair re-sends the checkpoint of every running execution that has nothing
// in flight (Store.Stranded): no live lease, no message queued when the store
// can tell, and overdue by at least the grace. That is how an execution
// whose message was lost (a crash between a store write and the queue's
// send, on a store that is not the queue) continues; a message that was only
// late makes a duplicate, which acquire drops. It returns how many it
// re-sent. Local workers call it periodically; on AWS a scheduled invocation
// does.
func (e *Engine) Repair(ctx context.Context, o RepairOptions) (int, error) {
	if o.Grace <= 0 {
		o.Grace = DefaultRepairGrace
	}
	if o.Limit <= 0 {
		o.Limit = 100
	}
	xs, err := e.store.Stranded(ctx, StrandedQuery{Now: e.clock.Now(), Grace: o.Grace, Limit: o.Limit})
	if err != nil {
		return 0, fmt.Errorf("repair: %w", err)
	}
	n := 0
	for _, x := range xs {
		if len(x.Checkpoint) == 0 {
			continue
		}
		if _, err := e.queue.Send(ctx, OutMessage{Key: x.CorrelationID, Payload: x.Checkpoint}); err != nil {
			// Its DueAt moved: the next call after another grace tries again.
			return n, fmt.Errorf("repair %s: %w", x.CorrelationID, err)
		}
		n++
		e.metrics.Add(MetricKey{Name: MetricRepair, Machine: x.Machine, State: x.State, Event: x.Event}, 1)
		if e.logEnabled {
			e.logger.LogAttrs(ctx, slog.LevelWarn, "re-sent the checkpoint of a stranded execution",
				slog.String("machine", x.Machine), slog.String("correlation_id", x.CorrelationID))
		}
	}
	return n, nil
}

func additionalDelay(s *SystemContext) time.Duration {
	return seconds(s.AdditionalDelaySeconds)
}

// maxDuration caps the durations a message or an action asks for (lease
// timeout, delays). A larger one overflows time.Duration, or Unix nanoseconds
// once added to now (the stores keep times so), and came out as a time
// already past: a lease expired at once, a delayed message delivered at once.
const maxDuration = 100 * 365 * 24 * time.Hour

// seconds converts a message's seconds (non-negative: the decoder checks) to
// a duration of at most maxDuration.
func seconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	if s >= maxDuration.Seconds() {
		return maxDuration
	}
	return time.Duration(s * float64(time.Second))
}

// sumDelays adds two non-negative delays, capped at maxDuration.
func sumDelays(a, b time.Duration) time.Duration {
	return min(min(a, maxDuration)+min(b, maxDuration), maxDuration)
}

// retryDelay draws a full-jitter delay for the retry numbered retries (1 for
// the first) of a step of m: uniform(0, m.RetryDelayBound(retries)); the
// defaults' bound when m is nil.
func (e *Engine) retryDelay(m *Machine, retries int) time.Duration {
	ceiling := RetryDelayBound(retries)
	if m != nil {
		ceiling = m.RetryDelayBound(retries)
	}
	e.randMu.Lock()
	f := e.rand.Float64()
	e.randMu.Unlock()
	return time.Duration(f * float64(ceiling))
}

// RetryDelayBound is the upper bound of the delay before the retry numbered
// retries (1 for the first) with the default backoff: min(60 s, 1 s *
// 2^retries). Machine.RetryDelayBound is a machine's own.
func RetryDelayBound(retries int) time.Duration {
	return retryDelayBound(spec.DefaultRetryDelay*time.Second, MaxRetryDelay, retries)
}

// retryDelayBound is min(ceiling, base * 2^retries), without overflow.
func retryDelayBound(base, ceiling time.Duration, retries int) time.Duration {
	if retries < 0 {
		retries = 0
	}
	d := base
	for range retries {
		if d >= ceiling {
			return ceiling
		}
		d *= 2
	}
	return min(d, ceiling)
}

// PanicError is a panic in a user action, recovered; it is retried like any
// other action error.
type PanicError struct {
	Action string
	Value  any
	Stack  []byte
}

// Error names the action and the panic value.
func (p *PanicError) Error() string {
	return fmt.Sprintf("action %s panicked: %v", p.Action, p.Value)
}

// FatalError fails an execution at once, without retries: an unknown event, a
// runaway machine, a permanent action error.
type FatalError struct {
	Reason string
	Err    error
}

// Error returns the reason, and the wrapped error if any.
func (f *FatalError) Error() string {
	if f.Err == nil {
		return f.Reason
	}
	return f.Reason + ": " + f.Err.Error()
}

// Unwrap returns the wrapped error.
func (f *FatalError) Unwrap() error { return f.Err }

func fatalf(format string, args ...any) error {
	return &FatalError{Reason: fmt.Sprintf(format, args...)}
}

package lambda

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// Defaults of Options.
const (
	// DefaultReserve is how much time before the invocation's deadline the
	// handler stops taking records and hands the rest back.
	DefaultReserve = 2 * time.Second
	// DefaultBounceDelay is how long a record that must run again later (its
	// step's lease is held, or a store call failed) waits.
	DefaultBounceDelay = 30 * time.Second
	// DefaultFlushTimeout bounds the Publisher's flush at the end of an
	// invocation (a PutMetricData takes some tens of milliseconds; the
	// Reserve leaves the time for it).
	DefaultFlushTimeout = time.Second
)

// Metric names the handler counts besides the engine's.
const (
	// MetricBounced: a record put off for later (lease held, store down).
	MetricBounced = "bounced"
	// MetricHandedBack: a record not started because the deadline was near.
	MetricHandedBack = "handed_back"
)

// VisibilityChanger changes the visibility timeout of a received SQS message,
// so that a record the handler reports as a batch item failure comes back
// after timeout instead of after the queue's (long) visibility timeout.
type VisibilityChanger interface {
	ChangeVisibility(ctx context.Context, queueARN, receiptHandle string, timeout time.Duration) error
}

// Poller runs on a scheduled event: the retries that are due (where the
// dispatch keeps them in a table) and the repair of executions with nothing
// in flight past their due time. It must return before ctx's deadline.
type Poller interface {
	Poll(ctx context.Context, now time.Time) (PollResult, error)
}

// PollResult is what a Poll did.
type PollResult struct {
	// Retried counts due retries sent.
	Retried int `json:"retried"`
	// Repaired counts executions whose checkpoint was sent again.
	Repaired int `json:"repaired"`
	// More reports that the deadline stopped the poll before it was done.
	More bool `json:"more"`
}

// Publisher counts like the engine's Metrics and sends what it counted
// with a call at the end of each invocation (cloudwatch.Publisher:
// one PutMetricData). Flush returns the calls it made; a failed call must
// keep its counts for the next Flush.
type Publisher interface {
	engine.Metrics
	Flush(ctx context.Context) (calls int, err error)
}

// Options configure a Handler. Engine is required.
type Options struct {
	// Engine handles records and direct invocations; nil is allowed with
	// Machines, for a function that only runs Step Functions tasks.
	Engine *engine.Engine
	// Store is the engine's store; direct invocations read the status they
	// answer with from it (nil: they answer without a status).
	Store engine.Store
	// Machines, when not empty, enable Step Functions mode for them.
	Machines []*engine.Machine
	// Retrier takes a record that must run again later off a stream or SQS
	// (it is sent again after BounceDelay and the record acknowledged). Nil:
	// such records are reported as batch item failures instead.
	Retrier engine.Retrier
	// Visibility, when set, shortens a bounced SQS message's visibility
	// timeout to BounceDelay (it is then reported as a batch item failure).
	Visibility VisibilityChanger
	// Poller runs on scheduled events.
	Poller Poller
	// Drops records records whose envelope holds no message (the engine
	// records malformed messages itself); nil means Store if it is a
	// DropRecorder, else they are only counted and logged.
	Drops engine.DropRecorder
	// Metrics receives the handler's counters and is flushed after every
	// invocation; pass the same value to the engine. Nil discards.
	Metrics *EMF
	// Publisher, when set, also receives the handler's counters and is
	// flushed at the end of every invocation, before Metrics; pass
	// engine.Tee(Metrics, Publisher) to the engine. A failed flush is
	// logged and changes nothing in the invocation's result.
	Publisher Publisher
	// FlushTimeout bounds the Publisher's flush (default
	// DefaultFlushTimeout); it runs even when the invocation's context is
	// cancelled.
	FlushTimeout time.Duration
	// Logger logs with the request id when built by NewLogHandler; nil discards.
	Logger *slog.Logger
	// Clock tells the time for deadlines; nil means the system clock.
	Clock engine.Clock
	// Reserve (default DefaultReserve) and BounceDelay (default
	// DefaultBounceDelay): see their defaults.
	Reserve     time.Duration
	BounceDelay time.Duration
}

// Handler is the Lambda function. It is safe for concurrent use, though
// Lambda sends one invocation at a time.
type Handler struct {
	eng         *engine.Engine
	store       engine.Store
	sf          *stepFunctions
	retrier     engine.Retrier
	visibility  VisibilityChanger
	poller      Poller
	drops       engine.DropRecorder
	metrics     *EMF
	publisher   Publisher
	counts      engine.Metrics
	flushWithin time.Duration
	logger      *slog.Logger
	clock       engine.Clock
	reserve     time.Duration
	bounceDelay time.Duration
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// New returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Engine == nil && len(o.Machines) == 0 {
		return nil, errors.New("new lambda handler: an Engine, or Machines for Step Functions mode, is required")
	}
	h := &Handler{
		eng: o.Engine, store: o.Store, retrier: o.Retrier, visibility: o.Visibility, poller: o.Poller, drops: o.Drops,
		metrics: o.Metrics, publisher: o.Publisher, flushWithin: o.FlushTimeout,
		logger: o.Logger, clock: o.Clock, reserve: o.Reserve, bounceDelay: o.BounceDelay,
	}
	var emf engine.Metrics
	if o.Metrics != nil { // a nil *EMF in the interface would be called
		emf = o.Metrics
	}
	var pub engine.Metrics
	if o.Publisher != nil {
		pub = o.Publisher
	}
	h.counts = engine.Tee(emf, pub)
	if h.flushWithin <= 0 {
		h.flushWithin = DefaultFlushTimeout
	}
	if h.drops == nil {
		h.drops, _ = o.Store.(engine.DropRecorder)
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.clock == nil {
		h.clock = systemClock{}
	}
	if h.reserve <= 0 {
		h.reserve = DefaultReserve
	}
	if h.bounceDelay <= 0 {
		h.bounceDelay = DefaultBounceDelay
	}
	if len(o.Machines) > 0 {
		sf, err := newStepFunctions(o.Machines, h.counts, h.logger)
		if err != nil {
			return nil, err
		}
		h.sf = sf
	}
	return h, nil
}

// probe is just enough of an event to tell its kind.
type probe struct {
	Records []struct {
		EventSource string `json:"eventSource"`
		// SNS spells it with a capital E (the Python framework's router,
		// which matched keys exactly, missed SNS records).
		SNSEventSource string `json:"EventSource"`
	} `json:"Records"`
	Source     string          `json:"source"`
	DetailType string          `json:"detail-type"`
	Command    *string         `json:"command"`
	Mode       *string         `json:"mode"`
	System     json.RawMessage `json:"system_context"`
}

// Event sources as Lambda names them in records.
const (
	sourceSQS      = "aws:sqs"
	sourceKinesis  = "aws:kinesis"
	sourceDynamoDB = "aws:dynamodb"
	sourceSNS      = "aws:sns"
)

// Invoke handles one Lambda event (see the package documentation) and
// returns the response Lambda expects for it. It returns an error only when
// the whole event must be retried or refused: an event it does not
// recognise, an SNS record that could not be put off, a Step Functions task
// whose step must be retried (Step Functions retries it), a scheduled poll
// that failed.
func (h *Handler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	defer h.flush(ctx)
	var p probe
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("invoke: event is not a JSON object: %w", err)
	}
	if h.eng == nil && p.Mode == nil {
		return nil, errors.New("invoke: this function runs in Step Functions mode only (it has no execution store): it takes Step Functions tasks")
	}
	switch {
	case len(p.Records) > 0:
		src := p.Records[0].EventSource
		if src == "" {
			src = p.Records[0].SNSEventSource
		}
		switch src {
		case sourceSQS:
			return h.sqs(ctx, payload)
		case sourceKinesis:
			return h.kinesis(ctx, payload)
		case sourceDynamoDB:
			return h.dynamoDB(ctx, payload)
		case sourceSNS:
			return h.sns(ctx, payload)
		}
		return nil, fmt.Errorf("invoke: records from event source %q, which lfsm does not read (it reads %s, %s, %s and %s)",
			src, sourceSQS, sourceKinesis, sourceDynamoDB, sourceSNS)
	case p.Source == "aws.events" && p.DetailType == "Scheduled Event":
		return h.scheduled(ctx)
	case p.Command != nil:
		return h.direct(ctx, payload)
	case p.Mode != nil:
		if *p.Mode != ModeStepFunctions {
			return nil, fmt.Errorf("invoke: unknown mode %q (the only mode is %q)", *p.Mode, ModeStepFunctions)
		}
		return h.stepFunctions(ctx, payload)
	case len(p.System) > 0:
		return h.message(ctx, payload)
	}
	return nil, errors.New(`invoke: unrecognised event: not SQS, Kinesis, DynamoDB-stream or SNS records, a scheduled event, a direct request ("command"), a Step Functions task ("mode") or a wire-format message ("system_context")`)
}

// flush writes the invocation's EMF lines and sends the publisher's counts
// (one call). Neither can fail the invocation: its records are handled and
// its response decided already, and a failed send keeps its counts for the
// next invocation's flush.
func (h *Handler) flush(ctx context.Context) {
	// The publisher first: what its call counts (a failover to the
	// secondary region) goes into this invocation's EMF lines.
	if h.publisher != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.flushWithin)
		calls, err := h.publisher.Flush(fctx)
		cancel()
		if err != nil {
			h.logger.LogAttrs(ctx, slog.LevelWarn, "cannot publish the metrics; they are kept for the next invocation",
				slog.Int("calls", calls), slog.Any("err", err))
		}
	}
	if h.metrics != nil {
		if err := h.metrics.Flush(); err != nil {
			h.logger.LogAttrs(ctx, slog.LevelWarn, "cannot write the EMF metrics", slog.Any("err", err))
		}
	}
}

// count adds one to a handler metric.
func (h *Handler) count(name string, res engine.Result) {
	if h.counts != nil {
		h.counts.Add(engine.MetricKey{Name: name, Machine: res.Machine, State: res.State, Event: res.Event}, 1)
	}
}

// tooLate reports whether too little time is left to start another record.
func (h *Handler) tooLate(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && d.Sub(h.clock.Now()) < h.reserve
}

// verdict is what becomes of one record.
type verdict int

const (
	// settled: processed, or dropped for good; acknowledge it.
	settled verdict = iota
	// bounce: it must run again later (its step's lease is held by another
	// invocation, or a store or queue call failed).
	bounce
)

// record handles one wire-format message of a batch and logs what happened.
func (h *Handler) record(ctx context.Context, source, id string, payload []byte) (engine.Result, verdict) {
	started := h.clock.Now()
	res, err := h.eng.Handle(ctx, payload)
	return res, h.judge(ctx, source, id, started, res, err)
}

// judge logs what became of one record (handled since started) and says
// whether it must come back.
func (h *Handler) judge(ctx context.Context, source, id string, started time.Time, res engine.Result, err error) verdict {
	attrs := []slog.Attr{
		slog.String("source", source),
		slog.String("record_id", id),
		slog.String("correlation_id", res.CorrelationID),
		slog.String("machine", res.Machine),
		slog.String("state", res.State),
		slog.String("event", res.Event),
		slog.Int("steps", res.Step),
		slog.Int("retries", res.Retries),
		slog.Duration("duration", h.clock.Now().Sub(started)),
	}
	switch {
	case err != nil:
		h.logger.LogAttrs(ctx, slog.LevelWarn, "record put off: store or queue failed", append(attrs, slog.Any("err", err))...)
		return bounce
	case res.Dropped == engine.DropLeaseHeld:
		h.logger.LogAttrs(ctx, slog.LevelInfo, "record put off: its step's lease is held", attrs...)
		return bounce
	case res.Dropped == engine.DropMalformed:
		// The engine recorded and logged it; redelivery cannot help.
		return settled
	case res.Dropped != "":
		h.logger.LogAttrs(ctx, slog.LevelInfo, "record dropped", append(attrs, slog.String("dropped", string(res.Dropped)))...)
		return settled
	}
	attrs = append(attrs, slog.String("outcome", string(res.Outcome)))
	if res.Err != nil {
		attrs = append(attrs, slog.String("err", res.Err.Error()))
	}
	h.logger.LogAttrs(ctx, slog.LevelInfo, "step", attrs...)
	return settled
}

// dropEnvelope counts, logs and records a record whose envelope holds no
// message (the engine records malformed messages itself).
func (h *Handler) dropEnvelope(ctx context.Context, source, id, why string, size int) {
	d := engine.DroppedMessage{Time: h.clock.Now(), Reason: engine.DropMalformed,
		Detail: fmt.Sprintf("%s record %s: %s", source, id, why), Size: size}
	h.count(engine.MetricDropped, engine.Result{})
	h.logger.LogAttrs(ctx, slog.LevelWarn, "record dropped: it holds no message", slog.String("source", source),
		slog.String("record_id", id), slog.String("reason", why), slog.Int("size", size))
	if h.drops == nil {
		return
	}
	if err := h.drops.RecordDrop(ctx, d); err != nil {
		h.logger.LogAttrs(ctx, slog.LevelError, "cannot record drop", slog.String("record_id", id), slog.Any("err", err))
	}
}

// retryLater sends payload again after the bounce delay through the
// Retrier; false when there is none or it failed.
func (h *Handler) retryLater(ctx context.Context, res engine.Result, payload []byte) bool {
	if h.retrier == nil {
		return false
	}
	key := res.CorrelationID
	if key == "" {
		return false
	}
	if err := h.retrier.ScheduleRetry(ctx, engine.OutMessage{Key: key, Payload: payload, Delay: h.bounceDelay}); err != nil {
		h.logger.LogAttrs(ctx, slog.LevelWarn, "cannot put record off through the retrier", slog.String("correlation_id", key),
			slog.Any("err", err))
		return false
	}
	h.count(MetricBounced, res)
	return true
}

// message handles a wire-format message invoked directly (API Gateway, a
// test, the Python framework's direct post).
func (h *Handler) message(ctx context.Context, payload []byte) ([]byte, error) {
	res, err := h.eng.Handle(ctx, payload)
	if err != nil {
		return nil, err
	}
	out := MessageResponse{
		FormatVersion: FormatVersion, CorrelationID: res.CorrelationID, Machine: res.Machine, Step: res.Step,
		Outcome: string(res.Outcome), Dropped: string(res.Dropped), State: res.State, Event: res.Event,
	}
	if res.Err != nil {
		out.Error = res.Err.Error()
	}
	return marshal(out)
}

// MessageResponse answers a wire-format message invoked directly.
type MessageResponse struct {
	FormatVersion string `json:"format_version"`
	CorrelationID string `json:"correlation_id"`
	Machine       string `json:"machine"`
	Step          int    `json:"step"`
	Outcome       string `json:"outcome,omitempty"`
	Dropped       string `json:"dropped,omitempty"`
	State         string `json:"state,omitempty"`
	Event         string `json:"event,omitempty"`
	Error         string `json:"error,omitempty"`
}

// FormatVersion is the version of the handler's JSON responses.
const FormatVersion = "1"

// scheduled runs the poller with the invocation's deadline minus the reserve.
func (h *Handler) scheduled(ctx context.Context) ([]byte, error) {
	if h.poller == nil {
		return nil, errors.New("scheduled event: this function has no retry poller configured (set LFSM_RETRY_TABLE, or remove the schedule)")
	}
	pctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadline(ctx, d.Add(-h.reserve))
		defer cancel()
	}
	res, err := h.poller.Poll(pctx, h.clock.Now())
	h.logger.LogAttrs(ctx, slog.LevelInfo, "scheduled poll", slog.Int("retried", res.Retried), slog.Int("repaired", res.Repaired),
		slog.Bool("more", res.More), slog.Any("err", err))
	if err != nil {
		return nil, fmt.Errorf("scheduled poll: %w", err)
	}
	return marshal(struct {
		FormatVersion string `json:"format_version"`
		PollResult
	}{FormatVersion, res})
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// RepairPoller is the Poller of a function whose retries are delayed
// messages (SQS DelaySeconds): the scheduled poll repairs executions with
// nothing in flight past their due time (Engine.Repair, whose due-time query
// is the store's Stranded), a batch at a time until the deadline or until a
// batch comes back short.
type RepairPoller struct {
	Engine *engine.Engine
	// Options are passed to Repair (zero: its defaults).
	Options engine.RepairOptions
}

// Poll implements Poller.
func (p RepairPoller) Poll(ctx context.Context, _ time.Time) (PollResult, error) {
	limit := p.Options.Limit
	if limit <= 0 {
		limit = 100
	}
	o := p.Options
	o.Limit = limit
	var res PollResult
	for {
		if ctx.Err() != nil {
			res.More = true
			return res, nil
		}
		n, err := p.Engine.Repair(ctx, o)
		res.Repaired += n
		if err != nil || n < limit {
			return res, err
		}
	}
}

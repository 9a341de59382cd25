package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// ModeStepFunctions is the "mode" of a Step Functions task's event. The ASL
// that lfsm export asl writes passes {"mode": "step_functions", "message":
// <the state's input>} to every Task, so the event says explicitly that it
// is a task: the same function can be fed by a queue too.
const ModeStepFunctions = "step_functions"

// StepFunctionsError fails a Step Functions task. Its Go type name is the
// task's error type (errorType), which the ASL's Retry on States.ALL catches:
// Step Functions does the retries in this mode.
type StepFunctionsError struct {
	CorrelationID string
	Step          int
	// Outcome is retry (the step failed and may be tried again), failed
	// (fatal, or no retry left) or wait (the state yielded no event, which
	// Step Functions cannot wait for).
	Outcome engine.Outcome
	Reason  string
}

func (e *StepFunctionsError) Error() string {
	return fmt.Sprintf("execution %s step %d: %s: %s", e.CorrelationID, e.Step, e.Outcome, e.Reason)
}

// stepFunctions runs tasks on an engine whose store and queue only capture
// what the step produced: Step Functions keeps the state (the message is the
// state's input and output) and does the retries, so there is no lease, no
// history and nothing sent.
type stepFunctions struct {
	eng *engine.Engine
}

// taskSlot receives, through the context, what one task's step produced.
type taskSlot struct {
	sent   []byte
	commit engine.Commit
}

type slotKey struct{}

func slotOf(ctx context.Context) *taskSlot {
	s, _ := ctx.Value(slotKey{}).(*taskSlot)
	return s
}

// capture is the store, queue and retrier of Step Functions mode.
type capture struct{}

var errNoStore = errors.New("step functions mode keeps no executions")

func (capture) Create(context.Context, engine.Execution) error { return errNoStore }
func (capture) Acquire(context.Context, engine.AcquireRequest) (engine.Lease, error) {
	return engine.Lease{Fence: 1}, nil
}
func (capture) Commit(ctx context.Context, c engine.Commit) error {
	if s := slotOf(ctx); s != nil {
		s.commit = c
	}
	return nil
}
func (capture) Get(context.Context, string) (engine.Execution, error) {
	return engine.Execution{}, engine.ErrNotFound
}
func (capture) History(context.Context, string) ([]engine.HistoryEntry, error) {
	return nil, errNoStore
}
func (capture) List(context.Context, engine.ListFilter) (engine.ListPage, error) {
	return engine.ListPage{}, errNoStore
}
func (capture) SetStatus(context.Context, string, engine.Status, string, time.Time) error {
	return errNoStore
}
func (capture) SwapStatus(context.Context, engine.StatusSwap) error { return errNoStore }
func (capture) Reopen(context.Context, engine.Reopen) error         { return errNoStore }
func (capture) Renew(context.Context, engine.LeaseRenewal) error    { return nil }
func (capture) Stranded(context.Context, engine.StrandedQuery) ([]engine.Execution, error) {
	return nil, errNoStore
}
func (capture) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if s := slotOf(ctx); s != nil {
		s.sent = m.Payload
	}
	return "", nil
}
func (capture) ScheduleRetry(context.Context, engine.OutMessage) error { return nil }

func newStepFunctions(machines []*engine.Machine, metrics engine.Metrics, logger *slog.Logger) (*stepFunctions, error) {
	o := engine.Options{Machines: machines, Store: capture{}, Queue: capture{}, Retrier: capture{}, Logger: logger, Metrics: metrics}
	eng, err := engine.New(o)
	if err != nil {
		return nil, fmt.Errorf("step functions mode: %w", err)
	}
	return &stepFunctions{eng: eng}, nil
}

// task is the event of a Step Functions task.
type task struct {
	Mode    string          `json:"mode"`
	Message json.RawMessage `json:"message"`
}

// stepFunctions runs one task: the actions of the message's step, and
// returns the next message (for the Choice state after the task to route
// on), or the final message when the execution is done.
func (h *Handler) stepFunctions(ctx context.Context, payload []byte) ([]byte, error) {
	if h.sf == nil {
		return nil, errors.New("step functions task: this function runs no machines in step functions mode")
	}
	var t task
	if err := json.Unmarshal(payload, &t); err != nil {
		return nil, fmt.Errorf("step functions task: %w", err)
	}
	if len(t.Message) == 0 {
		return nil, errors.New(`step functions task: no "message" (the task's Parameters must be {"mode": "step_functions", "message.$": "$"})`)
	}
	slot := &taskSlot{}
	res, err := h.sf.eng.Handle(context.WithValue(ctx, slotKey{}, slot), t.Message)
	if err != nil {
		return nil, fmt.Errorf("step functions task: %w", err)
	}
	h.logger.LogAttrs(ctx, slog.LevelInfo, "step functions task", slog.String("correlation_id", res.CorrelationID),
		slog.String("machine", res.Machine), slog.String("state", res.State), slog.String("event", res.Event),
		slog.Int("steps", res.Step), slog.String("outcome", string(res.Outcome)))
	if res.Dropped == engine.DropMalformed {
		return nil, &StepFunctionsError{Outcome: engine.OutcomeFailed, Reason: "malformed message: " + res.Err.Error()}
	}
	fail := func(reason string) error {
		return &StepFunctionsError{CorrelationID: res.CorrelationID, Step: res.Step, Outcome: res.Outcome, Reason: reason}
	}
	switch res.Outcome {
	case engine.OutcomeNext:
		return slot.sent, nil
	case engine.OutcomeDone:
		return slot.commit.Checkpoint, nil
	case engine.OutcomeWait:
		return nil, fail(fmt.Sprintf("state %q yielded no event, and a Step Functions execution cannot wait for one", res.State))
	}
	reason := "step failed"
	if res.Err != nil {
		reason = res.Err.Error()
	}
	return nil, fail(reason)
}

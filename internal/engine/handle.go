package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/spec"
)

// DropReason says why Handle did not process a message (or why its commit did
// not count).
type DropReason string

// Reasons for dropping a message.
const (
	// DropMalformed: the payload is not a wire-format message. Redelivery cannot help.
	DropMalformed DropReason = "malformed"
	// DropDuplicate: the step was already done or a later step took over.
	DropDuplicate DropReason = "duplicate"
	// DropLeaseHeld: another worker holds the lease for this step. A local worker
	// leaves such a message unacknowledged: it comes back after its visibility
	// timeout, when the holder has finished (it is then a duplicate) or died (its
	// lease has expired and the step is taken over).
	DropLeaseHeld DropReason = "lease_held"
	// DropInactive: the execution is stopped.
	DropInactive DropReason = "inactive"
	// DropFenceLost: the actions ran but the lease was taken over before the
	// commit, so nothing was recorded; the worker that took over carries on.
	DropFenceLost DropReason = "fence_lost"
)

// Result describes what Handle did with one message.
type Result struct {
	CorrelationID string
	Machine       string
	// Step and Retries are the message's steps and retries.
	Step    int
	Retries int
	Fence   int64
	// Dropped is why the message was not processed; empty when it was.
	Dropped DropReason
	// Outcome of the step; empty when the message was dropped before running.
	Outcome Outcome
	// State and Event: where the execution is after the step (the next
	// message's state and event for OutcomeNext).
	State string
	Event string
	// Actions lists the actions run, as "State.entry_action" and the like.
	Actions []string
	// Err is the decode error of a malformed message, or the action error of a
	// retry or failed outcome.
	Err error
	// Delay postpones the message sent (next or retry).
	Delay time.Duration
	// Acked reports that HandleDelivery acknowledged the delivery (in the
	// step's commit, or after it).
	Acked bool
}

// Handle processes one message: the per-message protocol of docs/design.md.
// It returns an error only for infrastructure failures (store or queue down)
// after which the caller should let the message be delivered again; failures of
// user actions are retried or recorded, and reported in the Result.
func (e *Engine) Handle(ctx context.Context, payload []byte) (Result, error) {
	return e.handle(ctx, payload, "", nil)
}

// HandleDelivery handles d, received from src, as Handle does, and then
// acknowledges it unless it must come back: after an error, or when another
// worker holds its step's lease (DropLeaseHeld). When src, the Store and the
// Queue are one backend that implements StepCommitter, the acknowledgement is
// part of the step's commit (with the next message's send), so a processed
// step costs one write instead of three. An error means the delivery was not
// acknowledged and will come back; the Result then still says what happened
// (an acknowledgement that failed after a commit is such an error).
//
// A delivery that carries its lease (d.Lease, from a LeasingSource that is
// the engine's Store) is not acquired again: its lease, or its refusal, is
// used as Acquire's answer would be.
func (e *Engine) HandleDelivery(ctx context.Context, src Source, d Delivery) (Result, error) {
	ack := ""
	if e.stepper != nil && sameBackend(src, e.stepper) {
		ack = d.Receipt
	}
	var pre *DeliveryLease
	if d.Lease != nil && sameBackend(src, e.store) {
		pre = d.Lease
	}
	res, err := e.handle(ctx, d.Payload, ack, pre)
	if err != nil || res.Acked || res.Dropped == DropLeaseHeld {
		return res, err
	}
	if err := src.Ack(ctx, d.Receipt); err != nil {
		return res, fmt.Errorf("ack %s step %d: %w", res.CorrelationID, res.Step, err)
	}
	res.Acked = true
	return res, nil
}

// handle is Handle; ack, when not empty, is the receipt of the delivery that
// carried payload, to acknowledge in the step's commit (e.stepper's backend);
// pre, when not nil, is the outcome of the Acquire the store ran when it
// handed out the delivery, which takes the place of this one's.
func (e *Engine) handle(ctx context.Context, payload []byte, ack string, pre *DeliveryLease) (Result, error) {
	p, res, err := e.prepare(ctx, payload, ack, pre, false)
	if p == nil {
		return res, err
	}
	return e.finish(ctx, p, e.commitOne(ctx, p))
}

// pendingStep is a step whose actions ran and whose commit is still to be
// written: what prepare hands to the commit and then to finish.
type pendingStep struct {
	res Result
	c   Commit
	// out is the message to send with the commit (e.stepper only); sent: a
	// message (next or retry) went out before the commit.
	out  *OutMessage
	sent bool
	ack  string
	sys  *SystemContext
	key  MetricKey
	from string
	// fromEvent is the event the step ran on.
	fromEvent string
	// hb renews the lease until finish, when prepare was asked to hold it.
	hb *heartbeat
}

// commitOne writes p's commit on its own.
func (e *Engine) commitOne(ctx context.Context, p *pendingStep) error {
	if e.stepper != nil {
		// The next message (or retry), the commit and the ack in one write:
		// the message becomes visible only with the commit, so no worker can
		// take its step over while this one is still committing.
		_, err := e.stepper.CommitStep(ctx, p.c, p.out, p.ack)
		return err
	}
	return e.store.Commit(ctx, p.c)
}

// prepare is handle up to the commit: it decodes payload, acquires the
// step's lease (or takes pre's) and runs the actions. It returns the step
// to commit, or nil with the Result (and error) when nothing is to be
// committed.
//
// With hold, the step's lease stays renewed by the heartbeat after its
// actions, until finish: a batch holds its steps' leases while its other
// records run, however long they take.
func (e *Engine) prepare(ctx context.Context, payload []byte, ack string, pre *DeliveryLease, hold bool) (*pendingStep, Result, error) {
	var held *heartbeat
	var hp **heartbeat
	if hold {
		hp = &held
	}
	p, res, err := e.prepareStep(ctx, payload, ack, pre, hp)
	switch {
	case p != nil:
		p.hb = held
	case held != nil:
		held.stop(e)
	}
	return p, res, err
}

func (e *Engine) prepareStep(ctx context.Context, payload []byte, ack string, pre *DeliveryLease, hold **heartbeat) (*pendingStep, Result, error) {
	started := e.clock.Now()
	msg, userRaw, err := decodeMessageLazy(payload, e.names, true)
	if err != nil {
		res, err := e.drop(ctx, payload, &msg.System, started, err)
		return nil, res, err
	}
	sys := &msg.System
	if e.renamer.translate(sys) {
		// A message of an older version of the machine: from here on it is
		// the renamed message (the retry, the failed checkpoint and the
		// next message are written from it), so it is renamed only once.
		if payload, err = appendMessage(make([]byte, 0, len(payload)+16), msg, userRaw); err != nil {
			return nil, Result{CorrelationID: sys.CorrelationID, Machine: sys.MachineName, Step: sys.Steps, Retries: sys.Retries},
				fmt.Errorf("handle %s step %d: rename: %w", sys.CorrelationID, sys.Steps, err)
		}
	}
	res := Result{CorrelationID: sys.CorrelationID, Machine: sys.MachineName, Step: sys.Steps, Retries: sys.Retries}
	key := MetricKey{Machine: sys.MachineName, State: sys.CurrentState, Event: sys.CurrentEvent}
	var lease Lease
	leaseTimeout := e.leaseTimeoutOf(sys)
	if pre != nil {
		lease, err = pre.Lease, pre.Err
	} else {
		q := e.acquireRequest(sys, started)
		lease, err = e.store.Acquire(ctx, q)
		if lease.Expires.IsZero() {
			lease.Expires = q.Expires
		}
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrPruned):
			res.Dropped = DropDuplicate
			if rerr := e.recordPruned(ctx, sys, len(payload), started, err); rerr != nil {
				e.count(key, MetricCache)
				return nil, res, fmt.Errorf("handle %s step %d: record dropped message (%s): %w", sys.CorrelationID, sys.Steps, DropPruned, rerr)
			}
		case errors.Is(err, ErrDuplicate):
			res.Dropped = DropDuplicate
		case errors.Is(err, ErrLeaseHeld):
			res.Dropped = DropLeaseHeld
		case errors.Is(err, ErrInactive):
			res.Dropped = DropInactive
			return nil, res, nil
		default:
			e.count(key, MetricCache)
			return nil, res, fmt.Errorf("handle %s step %d: acquire lease: %w", sys.CorrelationID, sys.Steps, err)
		}
		e.count(key, MetricDuplicate)
		return nil, res, nil
	}
	res.Fence = lease.Fence
	if lease.LeasePrimary != nil {
		// The lease store that granted it: the next message (and a retry)
		// tell the next Acquire where to ask.
		sys.LeasePrimary = lease.LeasePrimary
	}
	if pre != nil && !e.renewIfOld(ctx, sys, &lease, leaseTimeout) {
		// Taken over while the delivery waited in the worker.
		res.Dropped = DropFenceLost
		e.count(key, MetricDuplicate)
		return nil, res, nil
	}
	e.count(key, MetricDispatch)

	m := e.machines[sys.MachineName]
	maxRetries := e.maxRetries(m, sys)
	inv := invocation{
		segStart: -1,
		facts: fsm.Facts{
			Machine:       sys.MachineName,
			Event:         sys.CurrentEvent,
			CorrelationID: sys.CorrelationID,
			Steps:         sys.Steps,
			Retries:       sys.Retries,
			MaxRetries:    maxRetries,
			Fence:         lease.Fence,
		},
	}
	logger := e.logger
	if e.logEnabled {
		logger = logger.With(slog.String("machine", sys.MachineName), slog.String("correlation_id", sys.CorrelationID),
			slog.Int("steps", sys.Steps), slog.Int("retries", sys.Retries))
	}
	if userRaw != nil {
		inv.c = fsm.NewLazyContext(inv.facts, userRaw, parseObject, logger)
	} else {
		inv.c = fsm.NewContext(inv.facts, msg.User, logger)
	}
	var end stepEnd
	if m != nil {
		inv.m = m
		if end = e.refuse(m, sys, lease); end.err == nil {
			actx, hb := e.startHeartbeat(ctx, sys, lease, leaseTimeout)
			end = e.run(actx, &inv, sys)
			lost := false
			if hold != nil && !hb.lostYet(e) {
				*hold = hb // renewed until the batch's commit (finish stops it)
			} else {
				lost = hb.stop(e)
			}
			if lost {
				// Another worker took the step over: whatever this attempt
				// did is not committed, and nothing is sent.
				res.Actions = inv.recorded()
				res.Dropped = DropFenceLost
				e.count(key, MetricDuplicate)
				return nil, res, nil
			}
		}
	} else {
		end = stepEnd{state: -1, err: &FatalError{Reason: fmt.Sprintf("unknown machine %q", sys.MachineName)}}
	}
	res.Actions = inv.recorded()
	c := Commit{
		CorrelationID: sys.CorrelationID,
		Machine:       sys.MachineName,
		Step:          sys.Steps,
		Retries:       sys.Retries,
		Fence:         lease.Fence,
		History: HistoryEntry{
			Step:    sys.Steps,
			Retries: sys.Retries,
			Fence:   lease.Fence,
			From:    sys.CurrentState,
			Event:   sys.CurrentEvent,
			Actions: res.Actions,
			Started: started,
		},
	}
	from, fromEvent := sys.CurrentState, sys.CurrentEvent
	to := from
	if end.state >= 0 {
		to = inv.m.states[end.state].name
	}

	// max_steps is a runaway guard: the end message of a final state
	// (pseudo_final) cannot loop, so it does not count, and an execution that
	// reaches its final state within the cap finishes.
	if end.err == nil && end.outcome == OutcomeNext && end.event != spec.PseudoFinal && sys.Steps+1 > inv.m.maxSteps {
		end.err = fatalf("max_steps %d exceeded in state %q (event %q)", inv.m.maxSteps, to, end.event)
	}
	if end.err == nil {
		if err := inv.c.LoadErr(); err != nil {
			end.err = &FatalError{Reason: "bad user context", Err: err}
		}
	}
	// sent: a message (next or retry) went out before the commit. out: the
	// message to send with the commit instead (e.stepper only).
	sent := false
	var out *OutMessage
	if end.err == nil {
		// The next message is this one moved on (system keys it does not own kept).
		nm := msg
		ns := &nm.System
		ns.CurrentState = to
		ns.Retries = 0
		ns.SpecHash = inv.m.hash
		var nextRaw []byte
		if raw, untouched := inv.c.RawValues(); untouched {
			nm.User, nextRaw = nil, raw // no action used it: pass it on as it came
		} else {
			nm.User = inv.c.Values()
		}
		switch end.outcome {
		case OutcomeNext:
			ns.CurrentEvent = end.event
			ns.Steps++
		case OutcomeWait:
			ns.CurrentEvent = ""
		case OutcomeDone:
			ns.CurrentEvent = end.event
			ns.FinishedAt = UnixTimeOf(e.clock.Now())
		}
		next, err := appendMessage(make([]byte, 0, len(payload)+64), nm, nextRaw)
		if err == nil {
			err = e.checkSize(next)
		}
		if err != nil {
			end.err = &FatalError{Reason: fmt.Sprintf("state %q", to), Err: err}
		} else {
			c.Outcome = end.outcome
			c.State, c.Event = to, end.event
			c.Checkpoint = next
			switch end.outcome {
			case OutcomeNext:
				c.Status = StatusRunning
				res.Delay = sumDelays(inv.c.RequestedDelay(), additionalDelay(sys))
				c.DueAt = e.clock.Now().Add(res.Delay)
				if e.stepper != nil {
					out = &OutMessage{Key: sys.CorrelationID, Payload: next, Delay: res.Delay}
					break
				}
				receipt, err := e.queue.Send(ctx, OutMessage{Key: sys.CorrelationID, Payload: next, Delay: res.Delay})
				if err != nil {
					e.count(key, MetricCache)
					end.err = fmt.Errorf("send next message: %w", err)
				} else {
					c.SendReceipt = receipt
					sent = true
				}
			case OutcomeWait:
				c.Status = StatusWaiting
			case OutcomeDone:
				c.Status = StatusDone
			}
		}
	}
	if end.err != nil {
		var retry []byte
		retryable := !isFatal(end.err) && sys.Retries+1 <= maxRetries
		if retryable {
			// Retry the original message, not the context the actions mutated.
			orig, origUser, err := decodeMessage(payload, e.names, true)
			if err != nil {
				e.release(ctx, sys, lease.Fence)
				return nil, res, fmt.Errorf("handle %s step %d: decode for retry: %w", res.CorrelationID, res.Step, err)
			}
			orig.System.Retries++
			orig.System.LeasePrimary = sys.LeasePrimary
			if inv.m != nil {
				orig.System.SpecHash = inv.m.hash
			}
			res.Delay = e.retryDelay(inv.m, orig.System.Retries)
			if retry, err = appendMessage(nil, orig, origUser); err != nil {
				e.release(ctx, sys, lease.Fence)
				return nil, res, fmt.Errorf("handle %s step %d: encode retry: %w", res.CorrelationID, res.Step, err)
			}
			if err := e.checkSize(retry); err != nil {
				// It came in too large (from another producer): it cannot go
				// back through the queue either.
				end.err = &FatalError{Reason: "retry not sent", Err: fmt.Errorf("%w; the attempt failed with: %v", err, end.err)}
				retryable, res.Delay = false, 0
			}
		}
		res.Err = end.err
		c.Error = end.err.Error()
		c.State, c.Event = from, fromEvent
		if !retryable {
			c.Outcome, c.Status = OutcomeFailed, StatusFailed
			c.Checkpoint = payload
			e.count(key, MetricFatal)
			if e.logEnabled {
				e.logger.LogAttrs(ctx, slog.LevelError, "execution failed", e.stepAttrs(sys, from, fromEvent, slog.Any("err", end.err))...)
			}
		} else {
			rm := OutMessage{Key: res.CorrelationID, Payload: retry, Delay: res.Delay}
			c.DueAt = e.clock.Now().Add(res.Delay)
			if e.stepper != nil && e.stepRetries {
				out = &rm
			} else {
				if err := e.retrier.ScheduleRetry(ctx, rm); err != nil {
					e.count(key, MetricCache)
					e.release(ctx, sys, lease.Fence)
					return nil, res, fmt.Errorf("handle %s step %d: schedule retry: %w", res.CorrelationID, res.Step, err)
				}
				sent = true
			}
			c.Outcome, c.Status = OutcomeRetry, StatusRunning
			c.Checkpoint = retry
			e.count(key, MetricRetry)
			if e.logEnabled {
				e.logger.LogAttrs(ctx, slog.LevelWarn, "step failed, retry scheduled", e.stepAttrs(sys, from, fromEvent,
					slog.Duration("delay", res.Delay), slog.Any("err", end.err))...)
			}
		}
		e.count(key, MetricError)
	}
	res.Outcome = c.Outcome
	res.State, res.Event = c.State, c.Event
	now := e.clock.Now()
	c.Now = now
	c.History.To = c.State
	if c.Outcome == OutcomeDone && fromEvent == spec.PseudoFinal {
		c.History.To = spec.PseudoFinal // the end λ leaves the final state: it does not re-enter it
	}
	c.History.Outcome = c.Outcome
	c.History.Error = c.Error
	c.History.Duration = now.Sub(started)
	return &pendingStep{res: res, c: c, out: out, sent: sent, ack: ack, sys: sys, key: key, from: from, fromEvent: fromEvent}, res, nil
}

// finish is handle after the commit: err is what the commit returned.
func (e *Engine) finish(ctx context.Context, p *pendingStep, err error) (Result, error) {
	if p.hb != nil {
		p.hb.stop(e) // the commit is fenced: a renewal lost meanwhile shows there
	}
	res, c, sys, key, from, fromEvent, sent := p.res, p.c, p.sys, p.key, p.from, p.fromEvent, p.sent
	res.Acked = e.stepper != nil && err == nil && p.ack != ""
	if err != nil {
		if errors.Is(err, ErrFenceLost) {
			res.Dropped = DropFenceLost
			e.count(key, MetricDuplicate)
			return res, nil
		}
		e.count(key, MetricCache)
		if sent {
			// The message sent carries on: its acquire takes the lease over and
			// its commit records the execution. Redelivering this one cannot help.
			if e.logEnabled {
				e.logger.LogAttrs(ctx, slog.LevelWarn, "commit failed after send", e.stepAttrs(sys, from, fromEvent, slog.Any("err", err))...)
			}
			return res, nil
		}
		// Give the lease back, so that the redelivery runs the step at once
		// instead of waiting for the lease to expire.
		e.release(ctx, sys, c.Fence)
		return res, fmt.Errorf("handle %s step %d: commit: %w", res.CorrelationID, res.Step, err)
	}
	if c.Outcome == OutcomeDone {
		e.count(key, MetricDone)
	}
	return res, nil
}

// drop records a message that cannot run (it failed to decode with err;
// partial is what the decoder read of its system context) and reports it as
// DropMalformed. Failing to record it is an infrastructure error: the
// message comes back, to be recorded then.
func (e *Engine) drop(ctx context.Context, payload []byte, partial *SystemContext, started time.Time, err error) (Result, error) {
	d := droppedMessage(started, payload, partial, err)
	res := Result{CorrelationID: d.CorrelationID, Machine: d.Machine, Dropped: DropMalformed, Err: err}
	e.metrics.Add(MetricKey{Name: MetricError, Machine: d.Machine}, 1)
	e.metrics.Add(MetricKey{Name: MetricDropped, Machine: d.Machine}, 1)
	if e.logEnabled {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "dropped malformed message", slog.String("reason", string(d.Reason)),
			slog.String("correlation_id", d.CorrelationID), slog.String("machine", d.Machine), slog.Int("size", d.Size),
			slog.Any("err", err))
	}
	if e.drops == nil {
		return res, nil
	}
	if rerr := e.drops.RecordDrop(ctx, d); rerr != nil {
		e.metrics.Add(MetricKey{Name: MetricCache, Machine: d.Machine}, 1)
		return res, fmt.Errorf("record dropped message (%s): %w", d.Reason, rerr)
	}
	return res, nil
}

// acquireRequest asks for the lease of sys's step at now.
func (e *Engine) acquireRequest(sys *SystemContext, now time.Time) AcquireRequest {
	return AcquireRequest{
		CorrelationID: sys.CorrelationID,
		Machine:       sys.MachineName,
		Step:          sys.Steps,
		Retries:       sys.Retries,
		Now:           now,
		Expires:       now.Add(e.leaseTimeoutOf(sys)),
		Restarted:     sys.RestartedAt.Time(),
		LeasePrimary:  sys.LeasePrimary,
	}
}

// refuse fails a leased step before any of its actions run: a message whose
// steps are already beyond max_steps (from another producer, or a cap
// lowered since; the end message of a final state may be one beyond), and a
// step whose lease was taken over more than MaxTakeovers times (its holder
// keeps disappearing: an action that crashes the process, or outlives the
// function's timeout). The zero stepEnd lets the step run.
func (e *Engine) refuse(m *Machine, sys *SystemContext, l Lease) stepEnd {
	limit := m.maxSteps
	if sys.CurrentEvent == spec.PseudoFinal {
		limit++
	}
	switch {
	case sys.Steps > limit:
		return stepEnd{state: -1, err: fatalf("message at step %d is beyond max_steps %d", sys.Steps, m.maxSteps)}
	case l.Takeovers > e.maxTakeovers:
		return stepEnd{state: -1, err: fatalf("step %d was taken over %d times: the worker running it keeps disappearing (a crash, or a timeout, in one of its actions?)",
			sys.Steps, l.Takeovers)}
	}
	return stepEnd{}
}

// leaseRequest is the lease a LeasingSource takes for payload as it claims
// it: the one handle would ask for; !ok for a malformed payload (handle drops
// it without a lease).
func (e *Engine) leaseRequest(payload []byte) (AcquireRequest, bool) {
	msg, _, err := decodeMessage(payload, e.names, true)
	if err != nil {
		return AcquireRequest{}, false
	}
	return e.acquireRequest(&msg.System, e.clock.Now()), true
}

func (e *Engine) count(k MetricKey, name string) {
	k.Name = name
	e.metrics.Add(k, 1)
}

func (e *Engine) stepAttrs(sys *SystemContext, state, event string, more ...slog.Attr) []slog.Attr {
	return append([]slog.Attr{
		slog.String("machine", sys.MachineName),
		slog.String("state", state),
		slog.String("event", event),
		slog.String("correlation_id", sys.CorrelationID),
		slog.Int("steps", sys.Steps),
		slog.Int("retries", sys.Retries),
	}, more...)
}

// maxRetries is the message's max_retries if set, else the machine's.
func (e *Engine) maxRetries(m *Machine, sys *SystemContext) int {
	switch {
	case sys.MaxRetries != nil:
		return *sys.MaxRetries
	case m != nil:
		return m.maxRetries
	default:
		return spec.DefaultMaxRetries
	}
}

func isFatal(err error) bool {
	var f *FatalError
	return errors.As(err, &f) || fsm.IsPermanent(err)
}

// invocation is the state of one Handle call while actions run.
type invocation struct {
	m     *Machine
	c     *fsm.Context
	facts fsm.Facts
	// first is the label list of the first segment of actions that ran (shared
	// with the Machine); actions is built only when a second segment runs.
	first   []string
	actions []string
	more    int // actions run beyond maxRecordedActions
	// seg is the label list of the segment running, segStart the value of ran
	// when it began (-1 when no segment runs); ran counts actions started.
	// (Hops of a local loop write no pointer here unless the segment changes:
	// pointer writes cost a write barrier while the GC runs.)
	seg      []string
	segStart int
	ran      int
}

// begin starts a segment of actions whose labels are labels.
func (inv *invocation) begin(labels []string) {
	if len(labels) == 0 || len(inv.seg) == 0 || &labels[0] != &inv.seg[0] {
		inv.seg = labels
	}
	inv.segStart = inv.ran
}

// runningLabel is the label of the action running (or that last ran).
func (inv *invocation) runningLabel() string {
	if i := inv.ran - inv.segStart - 1; inv.segStart >= 0 && i >= 0 && i < len(inv.seg) {
		return inv.seg[i]
	}
	return ""
}

// end records the actions of the segment that were started.
func (inv *invocation) end() {
	done := inv.seg[:inv.ran-inv.segStart]
	inv.segStart = -1
	if len(done) == 0 {
		return
	}
	if inv.first == nil {
		inv.first = done
		return
	}
	if inv.actions == nil {
		inv.actions = make([]string, 0, 2*len(inv.first)+len(done))
		inv.actions = append(inv.actions, inv.first...)
	}
	room := max(maxRecordedActions-len(inv.actions), 0)
	if len(done) > room {
		inv.more += len(done) - room
		done = done[:room]
	}
	if n := len(inv.actions) + len(done); n > cap(inv.actions) && n > 16 {
		// A long local chain: grow once to the cap (and its summary line)
		// instead of doubling up to it.
		grown := make([]string, len(inv.actions), maxRecordedActions+1)
		copy(grown, inv.actions)
		inv.actions = grown
	}
	inv.actions = append(inv.actions, done...)
}

// stepEnd is where running the actions of one message ended.
type stepEnd struct {
	outcome Outcome
	// state is the index of the state the execution is in (-1: not in one).
	state int
	// event is the next message's event (OutcomeNext), or the last event.
	event string
	err   error
}

// recorded lists the actions run. The list may be shared with the Machine:
// callers must not modify it.
func (inv *invocation) recorded() []string {
	if inv.more > 0 {
		inv.actions = append(inv.actions, fmt.Sprintf("(%d more actions)", inv.more))
	}
	switch {
	case inv.actions != nil:
		return inv.actions
	case inv.first != nil:
		return inv.first
	default:
		return []string{}
	}
}

// run executes the actions of one message (REFERENCE.md §2), following local
// transitions in-process.
func (e *Engine) run(ctx context.Context, inv *invocation, sys *SystemContext) (end stepEnd) {
	defer inv.recoverAction(ctx, &end)
	m := inv.m
	var (
		cur int
		ev  string
		err error
	)
	if sys.CurrentState == spec.PseudoInit {
		if sys.CurrentEvent != spec.PseudoInit {
			return stepEnd{state: -1, err: fatalf("state %q has no transition for event %q", spec.PseudoInit, sys.CurrentEvent)}
		}
		cur = m.initial
		st := &m.states[cur]
		inv.begin(st.initLabels)
		if _, err = inv.call(ctx, &st.entry, st.name, sys.CurrentEvent); err == nil {
			ev, err = inv.call(ctx, &st.do, st.name, sys.CurrentEvent)
		}
		inv.end()
	} else {
		i, ok := m.state(sys.CurrentState)
		if !ok {
			return stepEnd{state: -1, err: fatalf("machine %q has no state %q", m.name, sys.CurrentState)}
		}
		st := &m.states[i]
		switch sys.CurrentEvent {
		case spec.PseudoFinal:
			if !st.final {
				return stepEnd{state: i, err: fatalf("state %q is not final but got event %q", st.name, spec.PseudoFinal)}
			}
			inv.begin(st.exitLabels)
			_, err = inv.call(ctx, &st.exit, st.name, sys.CurrentEvent)
			inv.end()
			return stepEnd{outcome: OutcomeDone, state: i, event: spec.PseudoFinal, err: err}
		case "":
			// A parked message (a resumed waiting execution): park again.
			return stepEnd{outcome: OutcomeWait, state: i}
		}
		t := st.transition(sys.CurrentEvent)
		if t == nil {
			return stepEnd{state: i, err: fatalf("state %q has no transition for event %q", st.name, sys.CurrentEvent)}
		}
		cur, ev, err = inv.dispatch(ctx, i, t, sys.CurrentEvent)
	}
	for hops := 0; ; {
		if err != nil {
			return stepEnd{state: cur, event: ev, err: err}
		}
		st := &m.states[cur]
		var t *transition
		if ev != "" {
			t = st.transition(ev)
		}
		if t == nil {
			switch {
			case st.final && st.exit.fn != nil:
				return stepEnd{outcome: OutcomeNext, state: cur, event: spec.PseudoFinal}
			case st.final:
				return stepEnd{outcome: OutcomeDone, state: cur, event: ev}
			case ev == "":
				return stepEnd{outcome: OutcomeWait, state: cur}
			default:
				return stepEnd{state: cur, event: ev, err: fatalf("state %q has no transition for event %q", st.name, ev)}
			}
		}
		if !t.local {
			return stepEnd{outcome: OutcomeNext, state: cur, event: ev}
		}
		if hops++; hops > e.maxLocalHops {
			return stepEnd{state: cur, event: ev, err: fatalf("more than %d local transitions in one invocation (state %q, event %q)", e.maxLocalHops, st.name, ev)}
		}
		cur, ev, err = inv.dispatch(ctx, cur, t, ev)
	}
}

// dispatch takes transition t out of state from on event ev: the source's
// exit, the transition's action, the target's entry and do actions. It
// returns the target and the event its do action returned.
func (inv *invocation) dispatch(ctx context.Context, from int, t *transition, ev string) (int, string, error) {
	src := &inv.m.states[from]
	inv.begin(t.labels)
	if _, err := inv.call(ctx, &src.exit, src.name, ev); err != nil {
		inv.end()
		return from, "", err
	}
	if _, err := inv.call(ctx, &t.action, src.name, ev); err != nil {
		inv.end()
		return from, "", err
	}
	dst := &inv.m.states[t.target]
	if _, err := inv.call(ctx, &dst.entry, dst.name, ev); err != nil {
		inv.end()
		return t.target, "", err
	}
	next, err := inv.call(ctx, &dst.do, dst.name, ev)
	inv.end()
	return t.target, next, err
}

// call runs one action (if the slot has one) and counts it. A panic is
// recovered by run, which finds the running action's label from the count.
func (inv *invocation) call(ctx context.Context, a *action, state, event string) (string, error) {
	if a.fn == nil {
		return "", nil
	}
	inv.ran++
	// Hops of a local loop run the same action in the same state on the same
	// event: leave the facts alone then.
	if inv.facts.State != state || inv.facts.Event != event || inv.facts.Kind != a.kind {
		inv.facts.State = state
		inv.facts.Event = event
		inv.facts.Kind = a.kind
		inv.c.SetFacts(inv.facts)
	}
	ev, err := a.fn.Execute(ctx, inv.c)
	if err != nil {
		err = fmt.Errorf("%s: %w", a.label, err)
	}
	return ev, err
}

// recoverAction turns a panic of the running action into a PanicError.
func (inv *invocation) recoverAction(ctx context.Context, end *stepEnd) {
	p := recover()
	if p == nil {
		return
	}
	label := inv.runningLabel()
	if inv.segStart >= 0 {
		inv.end()
	}
	stack := debug.Stack()
	err := &PanicError{Action: label, Value: p, Stack: stack}
	inv.c.Logger().LogAttrs(ctx, slog.LevelError, "action panicked", slog.String("state", inv.facts.State),
		slog.String("event", inv.facts.Event), slog.String("action", label), slog.Any("err", err), slog.String("stack", string(stack)))
	*end = stepEnd{state: -1, err: err}
}

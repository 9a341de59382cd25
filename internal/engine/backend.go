package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The engine's seams. The engine declares what it needs from the outside world
// here; packages under internal/backend implement it (memory, sqlite, and later
// DynamoDB/Kinesis/SQS/SNS/Redis/Memcached), and wrappers (chaos, failover)
// compose them. See docs/design.md for why they have this shape.

// Status is the lifecycle state of one execution.
type Status string

// Execution statuses.
const (
	// StatusRunning: a message for the execution is in flight or being processed.
	StatusRunning Status = "running"
	// StatusWaiting: a non-final state yielded no event; the execution is parked
	// until an outside event is delivered (lfsm send).
	StatusWaiting Status = "waiting"
	// StatusDone: a final state was reached and its exit action ran.
	StatusDone Status = "done"
	// StatusFailed: a fatal error, or retries were exhausted. Resume restarts it.
	StatusFailed Status = "failed"
	// StatusStopped: aborted by an operator. Resume restarts it.
	StatusStopped Status = "stopped"
)

// Terminal reports whether no further message is expected without operator action.
func (s Status) Terminal() bool {
	return s == StatusDone || s == StatusFailed || s == StatusStopped
}

// Sentinel errors a Store returns and the engine branches on.
var (
	// ErrDuplicate: the step was already done, or a later step holds or finished
	// the execution (a stale or duplicated message). The engine drops the message.
	ErrDuplicate = errors.New("duplicate or stale message")
	// ErrLeaseHeld: another worker holds an unexpired lease for the same step
	// (a concurrent duplicate). The engine drops the message; the holder finishes
	// it. Because the holder may have died instead, Handle reports the drop as
	// DropLeaseHeld and the local worker leaves the message unacknowledged, so it
	// comes back after its visibility timeout (then a duplicate, or a takeover of
	// the expired lease).
	ErrLeaseHeld = errors.New("lease held by another worker")
	// ErrFenceLost: at commit, the lease was taken over by someone else (our lease
	// expired). Nothing was written.
	ErrFenceLost = errors.New("fence token no longer current")
	// ErrNotFound: no such execution.
	ErrNotFound = errors.New("execution not found")
	// ErrInactive: the execution is stopped (or otherwise refuses new steps).
	ErrInactive = errors.New("execution is not active")
)

// AcquireRequest asks for the lease of one execution to run one attempt of a step.
type AcquireRequest struct {
	CorrelationID string
	Machine       string
	// Step is the message's steps counter (0 for the start message).
	Step int
	// Retries is the message's attempt number of that step (0 for the first).
	Retries int
	// Now and Expires bound the lease: Expires = Now + lease timeout.
	Now     time.Time
	Expires time.Time
	// Restarted is the message's restarted_at (zero when absent). A message
	// restarted before the execution's last resume (Store.Reopen) belongs to
	// the chain the resume replaced and is refused (ErrDuplicate).
	Restarted time.Time
	// LeasePrimary is the message's lease_primary: false when the
	// execution's last grant came from a secondary lease store (nil: not
	// said, the primary). A store with two lease stores asks the one it
	// names first; it is a hint, the store's own record decides.
	LeasePrimary *bool
}

// Lease is a granted lease. Fence increases by one with every grant for the
// execution, so a holder that lost its lease can be told apart.
type Lease struct {
	Fence int64
	// Takeovers counts how many times in a row this step's lease was taken
	// over from a holder that let it expire (it died, or was frozen), this
	// grant included: 0 for a lease that was free (never granted, committed
	// or given back) or held by another step. The engine fails the step once
	// it exceeds Options.MaxTakeovers, instead of running it forever.
	Takeovers int
	// Expires is when the lease expires (the request's Expires). A
	// LeasingSource sets it, so the engine can tell how long a delivery
	// waited with its lease.
	Expires time.Time
	// LeasePrimary, set by a store with a primary and a secondary lease
	// store, says which granted the lease; the engine writes it into the
	// step's next message and retry (lease_primary). Nil leaves the
	// message's as it was.
	LeasePrimary *bool
}

// LeaseRenewal extends or gives back a held lease (Store.Renew).
type LeaseRenewal struct {
	CorrelationID string
	Fence         int64
	Now           time.Time
	// Expires is the lease's new expiry. The zero time gives the lease back:
	// it is then free, as a commit leaves it, so that the step's next
	// delivery takes it at once (and counts no takeover).
	Expires time.Time
}

// StrandedQuery asks a Store for executions to repair (Store.Stranded).
type StrandedQuery struct {
	Now time.Time
	// Grace is how long past its due time a message may still be on its
	// way: an execution is stranded only when its DueAt + Grace <= Now.
	Grace time.Duration
	// Limit bounds the executions returned (0: the store's choice, >= 1).
	Limit int
}

// Outcome is what a processed step leads to.
type Outcome string

// Outcomes recorded at commit.
const (
	// OutcomeNext: the next message was sent; the step is done.
	OutcomeNext Outcome = "next"
	// OutcomeWait: no event; the execution waits for an outside event.
	OutcomeWait Outcome = "wait"
	// OutcomeDone: the execution finished.
	OutcomeDone Outcome = "done"
	// OutcomeRetry: the attempt failed; a retry of the same step was scheduled.
	OutcomeRetry Outcome = "retry"
	// OutcomeFailed: fatal error or retries exhausted; the execution failed.
	OutcomeFailed Outcome = "failed"
)

// Commit records the end of one attempt, atomically: step done marker (unless the
// outcome is a retry), lease release (only if Fence still matches), execution
// status, checkpoint and one history entry.
type Commit struct {
	CorrelationID string
	Machine       string
	Step          int
	Retries       int
	Fence         int64
	Outcome       Outcome
	// Status the execution moves to.
	Status Status
	// State and Event after the step: where the execution now is.
	State string
	Event string
	// Checkpoint is the wire-format message to restart from: the message sent
	// (next), the parked message (wait), or the failed message (failed/retry).
	Checkpoint []byte
	// SendReceipt is the queue's identifier of the sent message, if any
	// (Kinesis shard id and sequence number, SQS message id, row id).
	SendReceipt string
	// Error is the last error's text for retry/failed outcomes.
	Error string
	// DueAt is when the message sent with the commit (next or retry) is due
	// for delivery: Now plus its delay. Zero when nothing was sent (wait,
	// done, failed). Store.Stranded repairs from it.
	DueAt   time.Time
	History HistoryEntry
	Now     time.Time
}

// NextStatus is the status the commit moves the execution to: Status, or when
// that is empty, the one its Outcome implies. Every Store applies this rule.
func (c Commit) NextStatus() Status {
	if c.Status != "" {
		return c.Status
	}
	switch c.Outcome {
	case OutcomeWait:
		return StatusWaiting
	case OutcomeDone:
		return StatusDone
	case OutcomeFailed:
		return StatusFailed
	default:
		return StatusRunning
	}
}

// HistoryEntry describes one invocation (one λ) of an execution.
type HistoryEntry struct {
	Step     int           `json:"step"`
	Retries  int           `json:"retries"`
	Fence    int64         `json:"fence"`
	From     string        `json:"from"`
	Event    string        `json:"event"`
	To       string        `json:"to"`
	Actions  []string      `json:"actions"`
	Outcome  Outcome       `json:"outcome"`
	Error    string        `json:"error,omitempty"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
}

// Execution is the stored record of one execution, as inspect shows it.
type Execution struct {
	CorrelationID string `json:"correlation_id"`
	Machine       string `json:"machine"`
	Status        Status `json:"status"`
	State         string `json:"state"`
	Event         string `json:"event"`
	// DoneStep is the highest step committed as done (-1 when none).
	DoneStep int   `json:"done_step"`
	Retries  int   `json:"retries"`
	Fence    int64 `json:"fence"`
	// LeaseStep and LeaseExpires describe the current lease; LeaseExpires is zero
	// when the lease is open.
	LeaseStep    int       `json:"lease_step"`
	LeaseExpires time.Time `json:"lease_expires,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	// DueAt is when the checkpoint's message was due for delivery when it was
	// sent (delays and retry backoff included); zero when nothing is due
	// (waiting, or finished). See Store.Stranded.
	DueAt time.Time `json:"due_at,omitzero"`
	// Takeovers is the current step's count of lease takeovers (Lease).
	Takeovers   int       `json:"takeovers,omitempty"`
	Checkpoint  []byte    `json:"-"`
	SendReceipt string    `json:"send_receipt,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ListFilter selects executions for List (zero values match all) and the
// page to return.
type ListFilter struct {
	Machine string
	Status  Status
	// State is the current state's name.
	State string
	// Limit is the page size: at most Limit executions; 0 means no limit (one
	// page holds every match).
	Limit int
	// Cursor continues a listing where a page's Next left off (with the same
	// filter); empty starts at the newest execution. It is opaque: only the
	// store that returned it understands it, and it refuses others with
	// ErrBadCursor.
	Cursor string
}

// ListPage is one page of a listing.
type ListPage struct {
	Executions []Execution
	// Next is the cursor of the following page; empty when this page is the
	// last. A page may hold fewer than Limit executions (even none) and still
	// have a Next (a store that filters after it reads, such as DynamoDB's
	// FilterExpression): callers follow Next until it is empty.
	Next string
}

// ErrBadCursor: a ListFilter.Cursor that the store did not issue (or that is
// damaged). Stores wrap it with what was wrong.
var ErrBadCursor = errors.New("invalid list cursor")

// Store keeps execution records: leases with fence tokens, done markers,
// checkpoints and history. It is the one seam that decides idempotency.
type Store interface {
	// Create records a new execution in status running before its first message is
	// sent. It fails with ErrExists if the correlation id has a record, whatever
	// its status (one created on the fly by Acquire too): a correlation id names
	// one execution forever, so that no message of a finished run can be
	// accepted by a later one.
	Create(ctx context.Context, e Execution) error
	// Acquire grants the lease for (Step, Retries) iff the execution is not
	// stopped, DoneStep < Step, no unexpired lease is held for a step >= Step,
	// and no attempt of Step numbered >= Retries has already failed. It returns
	// ErrDuplicate, ErrLeaseHeld or ErrInactive otherwise. An execution without a
	// record (a message from another producer, e.g. the Python framework) is
	// created on the fly.
	Acquire(ctx context.Context, r AcquireRequest) (Lease, error)
	// Commit applies c atomically, or returns ErrFenceLost and writes nothing.
	Commit(ctx context.Context, c Commit) error
	// Get returns one execution or ErrNotFound.
	Get(ctx context.Context, correlationID string) (Execution, error)
	// History returns an execution's entries, oldest first.
	History(ctx context.Context, correlationID string) ([]HistoryEntry, error)
	// List returns one page of the executions f selects, newest first: by
	// CreatedAt descending, executions created at the same time by
	// correlation id descending. Paging is by key (the cursor names the last
	// execution returned), so executions updated while a caller pages are
	// listed once, those created after the first page are not listed, and
	// none is skipped. storetest.RunStore holds the rules.
	List(ctx context.Context, f ListFilter) (ListPage, error)
	// SetStatus changes the status of a non-done execution (stop, resume), with
	// the checkpoint to keep. It does not touch leases.
	SetStatus(ctx context.Context, correlationID string, s Status, reason string, now time.Time) error
	// SwapStatus moves an execution from s.From to s.To iff its status is
	// s.From, its done step is s.Step and no lease was granted for a later
	// step, so that of concurrent swaps of one execution exactly one wins; a
	// non-nil s.Checkpoint replaces the checkpoint. Otherwise it changes
	// nothing and returns a *StatusError saying what it found (ErrNotFound
	// without a record). Engine.Send claims a waiting execution with it
	// (waiting to running) before it enqueues the event.
	SwapStatus(ctx context.Context, s StatusSwap) error
	// Reopen resumes a failed or stopped execution (Engine.Resume) iff its
	// status is r.From: it applies SetStatus's rule for a non-terminal
	// status (a failed step is reopened, failed attempts are forgotten, the
	// takeover count too) and, in the same write, replaces the checkpoint
	// (when r.Checkpoint is not nil) and sets DueAt to r.DueAt. Moving to
	// running also records r.Now as the restart time: Acquire then refuses
	// messages restarted before it, the chain the resume replaced (a retry
	// still in backoff when the execution was stopped). A refusal changes
	// nothing and returns a *StatusError (ErrNotFound without a record).
	Reopen(ctx context.Context, r Reopen) error
	// Renew extends the lease granted with r.Fence to r.Expires (a
	// heartbeat while actions run), or gives it back when r.Expires is zero.
	// It returns ErrFenceLost and changes nothing unless r.Fence is the
	// current fence and the lease is still held (not committed or given
	// back; an expired lease nobody took over may be renewed).
	Renew(ctx context.Context, r LeaseRenewal) error
	// Stranded returns up to q.Limit executions, the longest overdue first,
	// that are running with nothing in flight: no live lease (free, or
	// expired at q.Now), a DueAt at or before q.Now - q.Grace, and, on a
	// store that is also the queue, no message of theirs queued (ready,
	// delayed or being delivered). It moves their DueAt to q.Now in the
	// same write, so that another call returns them again only after
	// another Grace. Engine.Repair re-sends their checkpoints. Never earlier
	// than DueAt + Grace: timers and retry backoffs do not fire early.
	Stranded(ctx context.Context, q StrandedQuery) ([]Execution, error)
}

// Reopen is a resume of a failed or stopped execution (Store.Reopen).
type Reopen struct {
	CorrelationID string
	// From is the status the caller saw (failed or stopped); To is running,
	// or waiting for a stopped execution that was parked.
	From, To Status
	// Checkpoint, if not nil, replaces the checkpoint: the message resume
	// sends (retries 0, restarted_at = Now).
	Checkpoint []byte
	// DueAt is when that message is due (Now); zero for waiting.
	DueAt time.Time
	// Now is the time of the change, and for running the restart time that
	// the resumed message carries as restarted_at (whole seconds, as the
	// wire format writes it).
	Now time.Time
}

// StatusSwap is a conditional status change (Store.SwapStatus).
type StatusSwap struct {
	CorrelationID string
	// Step is the done step the caller saw along with From (for a waiting
	// execution, the parked step whose checkpoint it read).
	Step     int
	From, To Status
	// Checkpoint, if not nil, replaces the checkpoint.
	Checkpoint []byte
	// DueAt becomes the execution's DueAt: when the message sent with the
	// swap is due (zero when none is, e.g. back to waiting).
	DueAt time.Time
	Now   time.Time
}

// StatusError is a refused StatusSwap: the execution is not in the status
// (or at the done step) the caller expected.
type StatusError struct {
	CorrelationID string
	// Status and DoneStep are what the store found.
	Status   Status
	DoneStep int
	// Want is the swap that was refused.
	Want StatusSwap
}

// Error says what was found instead of what was expected.
func (e *StatusError) Error() string {
	if e.Status == e.Want.From {
		return fmt.Sprintf("execution %s is %s at step %d, not at step %d", e.CorrelationID, e.Status, e.DoneStep, e.Want.Step)
	}
	return fmt.Sprintf("execution %s is %s, not %s", e.CorrelationID, e.Status, e.Want.From)
}

// SwapSender is implemented by a Store that is also the Queue the engine
// sends to (the local backends): it swaps and sends in one atomic write, so
// that a claim of a waiting execution and the message it claimed it for
// cannot be parted by a crash. Engine.Send uses it when its Store implements
// it and its Queue is the same value.
type SwapSender interface {
	// SwapStatusSend applies s as SwapStatus does and, in the same atomic
	// write, sends out (delayed by out.Delay) and returns its receipt. If the
	// swap is refused nothing is sent.
	SwapStatusSend(ctx context.Context, s StatusSwap, out OutMessage) (receipt string, err error)
}

// CreateSender is implemented by a Store that is also the Queue the engine
// sends to (the local backends): Engine.Start creates the execution and sends
// its start message in one atomic write, so no crash, Ctrl-C or full disk can
// leave it created with no message. Engine.Start uses it when its Store
// implements it and its Queue is the same value.
type CreateSender interface {
	// CreateSend applies Create and, in the same write, sends out and
	// returns its receipt. If Create is refused nothing is sent.
	CreateSend(ctx context.Context, e Execution, out OutMessage) (receipt string, err error)
}

// ReopenSender is CreateSender's counterpart for Engine.Resume: Reopen and
// the resumed message's send in one atomic write.
type ReopenSender interface {
	// ReopenSend applies Reopen and, in the same write, sends out. If the
	// reopen is refused nothing is sent.
	ReopenSend(ctx context.Context, r Reopen, out OutMessage) (receipt string, err error)
}

// PendingCounter is implemented by a Store that is also the queue: it counts
// an execution's messages not yet acknowledged (ready, delayed or being
// delivered). Engine.Resume uses it to tell a stranded running execution
// (nothing queued, no live lease, past due) from one whose message is merely
// on its way.
type PendingCounter interface {
	Pending(ctx context.Context, key string) (int, error)
}

// StepCommitter is implemented by a Store that is also the Queue the engine
// sends to and the Source its worker receives from (the local backends): it
// ends a step in one atomic write instead of a Send (or ScheduleRetry), a
// Commit and an Ack. The engine uses it when its Store implements it and its
// Queue (and Retrier, for retries) is the same value; see docs/design.md.
type StepCommitter interface {
	// CommitStep applies c as Commit does and, in the same atomic write, sends
	// out if it is not nil (delayed by out.Delay, as Send and ScheduleRetry do;
	// c.SendReceipt becomes its receipt, which is returned) and deletes the
	// delivery whose receipt is ack if it is not empty. If the fence is lost it
	// returns ErrFenceLost and writes nothing: nothing is sent and the delivery
	// stays unacknowledged. An ack receipt that is no longer current (the message
	// was delivered again) is not an error: the step is committed, and the later
	// delivery finds it done. After any other error nothing was sent, and the
	// delivery must come back.
	CommitStep(ctx context.Context, c Commit, out *OutMessage, ack string) (receipt string, err error)
}

// OutMessage is one message to send to the event stream.
type OutMessage struct {
	// Key orders and partitions messages (the correlation id).
	Key     string
	Payload []byte
	// Delay postpones delivery; backends that cannot delay return an error for
	// a positive Delay (callers then use a Retrier that can).
	Delay time.Duration
}

// Queue sends messages to the event stream that drives the engine. On AWS the
// Lambda event source mapping receives them; locally a Source does.
type Queue interface {
	// Send sends one message and returns the backend's receipt for checkpoints.
	Send(ctx context.Context, m OutMessage) (receipt string, err error)
}

// Retrier schedules a failed message to be run again no earlier than m.Delay
// from now. Locally the queue itself does it (delayed delivery); on AWS a
// DynamoDB table or SQS with DelaySeconds.
type Retrier interface {
	ScheduleRetry(ctx context.Context, m OutMessage) error
}

// Delivery is one received message of a local Source.
type Delivery struct {
	Payload []byte
	// Receipt identifies the delivery for Ack/Extend.
	Receipt string
	// Attempts counts how many times this message was delivered.
	Attempts int
	// Lease is what acquiring the message's lease gave when a LeasingSource
	// claimed it (ReceiveLeased); nil when no lease was asked for.
	Lease *DeliveryLease
}

// DeliveryLease is the outcome of the Store.Acquire a LeasingSource ran for a
// delivery in the write that claimed it: the lease, or the refusal.
type DeliveryLease struct {
	Lease Lease
	// Err is the refusal (ErrDuplicate, ErrLeaseHeld or ErrInactive), as
	// Acquire returns it; Lease is zero then.
	Err error
}

// Source is the receive side of a local queue: at-least-once delivery with a
// visibility timeout, so a crashed worker's message comes back.
type Source interface {
	// Receive waits up to wait for at most max messages and hides each for
	// visibility. It returns an empty slice when nothing arrived.
	Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]Delivery, error)
	// Ack deletes a processed delivery.
	Ack(ctx context.Context, receipt string) error
}

// LeasingSource is implemented by a Source that is also the engine's Store
// and can take the lease of each message it claims in the same atomic write
// (the SQLite backend): a worker that receives a batch then pays one write for
// the batch's claims and leases instead of one per message for the leases.
// RunWorker uses it when the Source is the engine's Store; see docs/design.md.
type LeasingSource interface {
	Source
	// ReceiveLeased receives as Receive does and, in the same atomic write,
	// runs for each delivery whose payload lease maps to a request (ok) the
	// Store's Acquire of that request, with the same rule and the same
	// refusals, recording the outcome in the Delivery's Lease. A delivery for
	// which lease reports !ok is returned without a lease. lease is called
	// inside the write: it must not call the backend. An error other than a
	// refusal fails the whole call: nothing is claimed or leased.
	ReceiveLeased(ctx context.Context, max int, visibility, wait time.Duration,
		lease func(payload []byte) (AcquireRequest, bool)) ([]Delivery, error)
}

// Metric names counted by the engine (REFERENCE.md §4), one per problem kind.
const (
	MetricDispatch  = "dispatch"
	MetricError     = "error"
	MetricFatal     = "fatal"
	MetricRetry     = "retry"
	MetricDuplicate = "duplicate"
	MetricCache     = "cache"
	MetricDone      = "done"
	// MetricRepair counts checkpoints Engine.Repair re-sent.
	MetricRepair = "repair"
)

// MetricKey names a counter and its dimensions.
type MetricKey struct {
	Name    string
	Machine string
	State   string
	Event   string
}

// Metrics receives counters. Implementations must be cheap and non-blocking
// (aggregate in memory, flush elsewhere).
type Metrics interface {
	Add(k MetricKey, n int64)
}

// Clock tells the time; tests inject a fake.
type Clock interface {
	Now() time.Time
}

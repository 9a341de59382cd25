package memory

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// Options configure a Backend.
type Options struct {
	// Clock tells the queue the time (delays and visibility timeouts); nil means
	// time.Now. The Store does not use it: its requests carry the time.
	Clock func() time.Time
}

// Backend is an in-memory engine.Store, engine.Queue, engine.Retrier,
// engine.Source and engine.Tailer. The zero value is not usable; call New.
// It is safe for concurrent use.
type Backend struct {
	clock func() time.Time

	smu   sync.Mutex
	execs map[string]*record
	// tombs are the pruned executions (engine.Pruner).
	tombs map[string]tombstone
	log   historyLog

	q queue

	dmu     sync.Mutex
	dropped dropLog
}

// record is one execution plus what the rule needs beyond engine.Execution.
type record struct {
	e engine.Execution
	// failedStep and failedAttempt remember the highest failed attempt of the
	// step that last failed with a retry outcome (-1 when none).
	failedStep    int
	failedAttempt int
	// restarted is the time of the last resume (Reopen to running): messages
	// restarted before it are refused.
	restarted time.Time
	// hist indexes this execution's rows in Backend.log, oldest first.
	hist []int
}

var (
	_ engine.Store          = (*Backend)(nil)
	_ engine.Queue          = (*Backend)(nil)
	_ engine.Retrier        = (*Backend)(nil)
	_ engine.Source         = (*Backend)(nil)
	_ engine.Tailer         = (*Backend)(nil)
	_ engine.StepCommitter  = (*Backend)(nil)
	_ engine.SwapSender     = (*Backend)(nil)
	_ engine.CreateSender   = (*Backend)(nil)
	_ engine.ReopenSender   = (*Backend)(nil)
	_ engine.PendingCounter = (*Backend)(nil)
)

// New returns an empty Backend.
func New(opts Options) *Backend {
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	b := &Backend{clock: clock, execs: make(map[string]*record), tombs: make(map[string]tombstone)}
	b.q.init()
	return b
}

// Create records a new execution. It returns engine.ErrExists if the
// correlation id has a record, whatever its status (a correlation id names
// one execution forever: a new run under a finished id would accept the old
// run's late duplicates). The done marker starts at -1 whatever e.DoneStep
// says; an empty e.Status means running.
func (b *Backend) Create(ctx context.Context, e engine.Execution) error {
	if e.CorrelationID == "" {
		return fmt.Errorf("create execution: empty correlation id")
	}
	b.smu.Lock()
	defer b.smu.Unlock()
	return b.create(e)
}

// CreateSend implements engine.CreateSender: the store's lock is held
// throughout, so the message is sent iff the execution was created.
func (b *Backend) CreateSend(ctx context.Context, e engine.Execution, out engine.OutMessage) (string, error) {
	if e.CorrelationID == "" {
		return "", fmt.Errorf("create execution: empty correlation id")
	}
	b.smu.Lock()
	defer b.smu.Unlock()
	if err := b.create(e); err != nil {
		return "", err
	}
	return strconv.FormatInt(b.enqueue(out), 10), nil
}

// create is Create; the caller holds smu.
func (b *Backend) create(e engine.Execution) error {
	if old := b.execs[e.CorrelationID]; old != nil {
		return fmt.Errorf("create execution %s (status %s): %w", e.CorrelationID, old.e.Status, engine.ErrExists)
	}
	if t, ok := b.tombs[e.CorrelationID]; ok {
		return fmt.Errorf("create execution %s (status %s, pruned): %w", e.CorrelationID, t.status, engine.ErrExists)
	}
	r := &record{e: e, failedStep: -1, failedAttempt: -1}
	normalizeNew(&r.e)
	r.e.Checkpoint = clone(e.Checkpoint)
	b.execs[e.CorrelationID] = r
	return nil
}

// normalizeNew sets the fields of a freshly created execution the way every
// backend does (see storetest).
func normalizeNew(e *engine.Execution) {
	if e.Status == "" {
		e.Status = engine.StatusRunning
	}
	e.DoneStep = -1
	e.LeaseStep = -1
	e.LeaseExpires = time.Time{}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
}

// Acquire implements engine.Store.
func (b *Backend) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	b.smu.Lock()
	defer b.smu.Unlock()
	r := b.execs[q.CorrelationID]
	if r == nil {
		if t, ok := b.tombs[q.CorrelationID]; ok {
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: %s at step %d: %w: %w", q.CorrelationID, q.Step, t.status, t.done, engine.ErrPruned, engine.ErrDuplicate)
		}
		r = &record{
			e: engine.Execution{
				CorrelationID: q.CorrelationID,
				Machine:       q.Machine,
				Status:        engine.StatusRunning,
				DoneStep:      -1,
				LeaseStep:     -1,
				CreatedAt:     q.Now,
			},
			failedStep:    -1,
			failedAttempt: -1,
		}
		b.execs[q.CorrelationID] = r
	}
	e := &r.e
	switch {
	case e.Status == engine.StatusStopped:
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrInactive)
	case q.Restarted.Before(r.restarted):
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: message restarted at %s, before the resume at %s: %w",
			q.CorrelationID, q.Step, q.Restarted.Format(time.RFC3339), r.restarted.Format(time.RFC3339), engine.ErrDuplicate)
	case e.DoneStep >= q.Step:
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: step %d done: %w", q.CorrelationID, q.Step, e.DoneStep, engine.ErrDuplicate)
	case !e.LeaseExpires.IsZero() && q.Now.Before(e.LeaseExpires) && e.LeaseStep >= q.Step:
		if e.LeaseStep == q.Step {
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrLeaseHeld)
		}
		return engine.Lease{}, fmt.Errorf("acquire %s step %d: step %d holds the lease: %w", q.CorrelationID, q.Step, e.LeaseStep, engine.ErrDuplicate)
	case r.failedStep == q.Step && r.failedAttempt >= q.Retries:
		return engine.Lease{}, fmt.Errorf("acquire %s step %d attempt %d: attempt %d failed: %w", q.CorrelationID, q.Step, q.Retries, r.failedAttempt, engine.ErrDuplicate)
	}
	if !e.LeaseExpires.IsZero() && e.LeaseStep == q.Step {
		e.Takeovers++ // its holder let it expire
	} else if e.LeaseStep != q.Step {
		e.Takeovers = 0
	}
	e.Fence++
	e.LeaseStep = q.Step
	e.LeaseExpires = q.Expires
	e.Retries = q.Retries
	e.Status = engine.StatusRunning
	e.UpdatedAt = q.Now
	if e.Machine == "" {
		e.Machine = q.Machine
	}
	return engine.Lease{Fence: e.Fence, Takeovers: e.Takeovers, Expires: q.Expires}, nil
}

// Commit implements engine.Store. It refuses (engine.ErrFenceLost) when the
// fence moved or the lease was already released by an earlier commit. A stopped
// execution stays stopped (an operator's stop wins over the commit's status)
// unless the commit finishes it: done and failed replace stopped.
// It copies c.Checkpoint and c.History.Actions.
func (b *Backend) Commit(ctx context.Context, c engine.Commit) error {
	b.smu.Lock()
	defer b.smu.Unlock()
	r, err := b.holder(c)
	if err != nil {
		return err
	}
	b.commit(r, c)
	return nil
}

// CommitStep implements engine.StepCommitter. The store's lock is held
// throughout, so a receiver of the message sent cannot acquire its step (a
// store call) before the commit is in.
func (b *Backend) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	var ackID int64
	var ackAttempts int
	if ack != "" {
		var err error
		if ackID, ackAttempts, err = parseReceipt(ack); err != nil {
			return "", fmt.Errorf("commit %s step %d: %w", c.CorrelationID, c.Step, err)
		}
	}
	b.smu.Lock()
	defer b.smu.Unlock()
	r, err := b.holder(c)
	if err != nil {
		return "", err
	}
	receipt := ""
	if out != nil {
		receipt = strconv.FormatInt(b.enqueue(*out), 10)
		c.SendReceipt = receipt
	}
	b.commit(r, c)
	if ack != "" {
		b.q.ack(ackID, ackAttempts) // not current: the later delivery finds the step done
	}
	return receipt, nil
}

// holder returns the record c may commit to, or ErrFenceLost. The caller
// holds smu.
func (b *Backend) holder(c engine.Commit) (*record, error) {
	r := b.execs[c.CorrelationID]
	if r == nil || r.e.Fence != c.Fence || r.e.LeaseExpires.IsZero() {
		return nil, fmt.Errorf("commit %s step %d fence %d: %w", c.CorrelationID, c.Step, c.Fence, engine.ErrFenceLost)
	}
	return r, nil
}

// commit applies c to r, whose fence it holds. The caller holds smu.
func (b *Backend) commit(r *record, c engine.Commit) {
	e := &r.e
	if c.Outcome == engine.OutcomeRetry {
		if r.failedStep != c.Step {
			r.failedStep, r.failedAttempt = c.Step, c.Retries
		} else {
			r.failedAttempt = max(r.failedAttempt, c.Retries)
		}
	} else if c.Step > e.DoneStep {
		e.DoneStep = c.Step
	}
	e.LeaseExpires = time.Time{}
	if e.Status != engine.StatusStopped || finishes(c.Outcome) {
		e.Status = c.NextStatus()
	}
	e.State, e.Event = c.State, c.Event
	if c.Checkpoint != nil {
		e.Checkpoint = append(e.Checkpoint[:0], c.Checkpoint...)
	}
	if c.SendReceipt != "" {
		e.SendReceipt = c.SendReceipt
	}
	if c.Error != "" || c.Outcome == engine.OutcomeRetry || c.Outcome == engine.OutcomeFailed {
		e.LastError = c.Error
	}
	e.DueAt = c.DueAt
	e.Retries = c.Retries
	e.UpdatedAt = c.Now
	if e.Machine == "" {
		e.Machine = c.Machine
	}
	h := c.History
	if len(h.Actions) > 0 {
		h.Actions = slices.Clone(h.Actions)
	}
	r.hist = append(r.hist, b.log.n)
	b.log.append(engine.HistoryRow{
		CorrelationID: c.CorrelationID,
		Machine:       e.Machine,
		HistoryEntry:  h,
	})
}

// finishes reports whether a commit with outcome o ends the execution: its
// status then replaces an operator's stop, which has nothing left to stop (and
// a resume finds a failed step reopened, or a done execution refused).
func finishes(o engine.Outcome) bool {
	return o == engine.OutcomeDone || o == engine.OutcomeFailed
}

// Get implements engine.Store.
func (b *Backend) Get(ctx context.Context, correlationID string) (engine.Execution, error) {
	b.smu.Lock()
	defer b.smu.Unlock()
	r := b.execs[correlationID]
	if r == nil {
		if t, ok := b.tombs[correlationID]; ok {
			return engine.Execution{}, fmt.Errorf("get %s: %s, pruned: %w: %w", correlationID, t.status, engine.ErrPruned, engine.ErrNotFound)
		}
		return engine.Execution{}, fmt.Errorf("get %s: %w", correlationID, engine.ErrNotFound)
	}
	e := r.e
	e.Checkpoint = clone(e.Checkpoint)
	return e, nil
}

// History implements engine.Store.
func (b *Backend) History(ctx context.Context, correlationID string) ([]engine.HistoryEntry, error) {
	b.smu.Lock()
	defer b.smu.Unlock()
	r := b.execs[correlationID]
	if r == nil {
		return nil, fmt.Errorf("history of %s: %w", correlationID, engine.ErrNotFound)
	}
	out := make([]engine.HistoryEntry, 0, len(r.hist))
	for _, i := range r.hist {
		h := b.log.at(i).HistoryEntry
		h.Actions = slices.Clone(h.Actions)
		out = append(out, h)
	}
	return out, nil
}

// List implements engine.Store. It sorts every match: the memory store is for
// tests and simulations, not for a million executions.
func (b *Backend) List(ctx context.Context, f engine.ListFilter) (engine.ListPage, error) {
	var after listKey
	if f.Cursor != "" {
		var err error
		if after, err = parseCursor(f.Cursor); err != nil {
			return engine.ListPage{}, fmt.Errorf("list executions: %w", err)
		}
	}
	b.smu.Lock()
	out := make([]engine.Execution, 0)
	for _, r := range b.execs {
		e := &r.e
		if (f.Machine != "" && e.Machine != f.Machine) || (f.Status != "" && e.Status != f.Status) ||
			(f.State != "" && e.State != f.State) || (f.Cursor != "" && !after.before(e)) {
			continue
		}
		x := *e
		x.Checkpoint = clone(x.Checkpoint)
		out = append(out, x)
	}
	b.smu.Unlock()
	slices.SortFunc(out, func(x, y engine.Execution) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(y.CorrelationID, x.CorrelationID)
	})
	page := engine.ListPage{Executions: out}
	if f.Limit > 0 && len(out) > f.Limit {
		page.Executions = out[:f.Limit]
		last := page.Executions[f.Limit-1]
		page.Next = listKey{created: last.CreatedAt.UnixNano(), id: last.CorrelationID}.cursor()
	}
	return page, nil
}

// listKey is where a page ended: the last execution's creation time (unix ns)
// and correlation id.
type listKey struct {
	created int64
	id      string
}

// before reports whether e comes after the key in List's order.
func (k listKey) before(e *engine.Execution) bool {
	c := e.CreatedAt.UnixNano()
	return c < k.created || c == k.created && e.CorrelationID < k.id
}

// cursorPrefix marks this store's cursors.
const cursorPrefix = "m1."

func (k listKey) cursor() string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.created, 10)+":"+k.id))
}

func parseCursor(s string) (listKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, cursorPrefix))
	if !strings.HasPrefix(s, cursorPrefix) || err != nil {
		return listKey{}, fmt.Errorf("cursor %q was not issued by this store: %w", s, engine.ErrBadCursor)
	}
	n, id, ok := strings.Cut(string(raw), ":")
	created, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil {
		return listKey{}, fmt.Errorf("cursor %q is damaged: %w", s, engine.ErrBadCursor)
	}
	return listKey{created: created, id: id}, nil
}

// SetStatus implements engine.Store. reason, if not empty, becomes the last
// error. Resuming a failed execution (a non-terminal s) reopens the step that
// failed: its done marker and failed attempts are forgotten, so the checkpoint
// (the failed message) is accepted again; resuming a stopped one forgets its
// failed attempts (a stop during retry backoff). A done execution refuses any
// change and a failed one refuses a stop (engine.ErrInactive): a stopped
// execution's last step never failed for good, which is what lets resume
// tell the two apart.
func (b *Backend) SetStatus(ctx context.Context, correlationID string, s engine.Status, reason string, now time.Time) error {
	b.smu.Lock()
	defer b.smu.Unlock()
	r := b.execs[correlationID]
	if r == nil {
		return fmt.Errorf("set status of %s: %w", correlationID, engine.ErrNotFound)
	}
	e := &r.e
	if e.Status == engine.StatusDone || e.Status == engine.StatusFailed && s == engine.StatusStopped {
		return fmt.Errorf("set status of %s to %s: execution is %s: %w", correlationID, s, e.Status, engine.ErrInactive)
	}
	if e.Status == engine.StatusFailed && !s.Terminal() {
		if e.DoneStep >= e.LeaseStep {
			e.DoneStep = e.LeaseStep - 1
		}
	}
	if e.Status.Terminal() && !s.Terminal() {
		// Resume re-sends the checkpoint with retries 0: forget the failed
		// attempts (of the failed step, or of one stopped in retry backoff).
		r.failedStep, r.failedAttempt = -1, -1
	}
	e.Status = s
	if reason != "" {
		e.LastError = reason
	}
	e.UpdatedAt = now
	return nil
}

// SwapStatus implements engine.Store.
func (b *Backend) SwapStatus(ctx context.Context, s engine.StatusSwap) error {
	b.smu.Lock()
	defer b.smu.Unlock()
	return b.swap(s)
}

// SwapStatusSend implements engine.SwapSender. The store's lock is held
// throughout, so the message is sent iff the swap won.
func (b *Backend) SwapStatusSend(ctx context.Context, s engine.StatusSwap, out engine.OutMessage) (string, error) {
	b.smu.Lock()
	defer b.smu.Unlock()
	if err := b.swap(s); err != nil {
		return "", err
	}
	return strconv.FormatInt(b.enqueue(out), 10), nil
}

// swap applies s if the execution is where s expects it. The caller holds smu.
func (b *Backend) swap(s engine.StatusSwap) error {
	r := b.execs[s.CorrelationID]
	if r == nil {
		return fmt.Errorf("swap status of %s: %w", s.CorrelationID, engine.ErrNotFound)
	}
	e := &r.e
	if e.Status != s.From || e.DoneStep != s.Step || e.LeaseStep > s.Step {
		return fmt.Errorf("swap status of %s from %s to %s: %w", s.CorrelationID, s.From, s.To,
			&engine.StatusError{CorrelationID: s.CorrelationID, Status: e.Status, DoneStep: e.DoneStep, Want: s})
	}
	e.Status = s.To
	if s.Checkpoint != nil {
		e.Checkpoint = append(e.Checkpoint[:0], s.Checkpoint...)
	}
	e.DueAt = s.DueAt
	e.UpdatedAt = s.Now
	return nil
}

// Reopen implements engine.Store.
func (b *Backend) Reopen(ctx context.Context, ro engine.Reopen) error {
	b.smu.Lock()
	defer b.smu.Unlock()
	return b.reopen(ro)
}

// ReopenSend implements engine.ReopenSender: the store's lock is held
// throughout, so the message is sent iff the execution was reopened.
func (b *Backend) ReopenSend(ctx context.Context, ro engine.Reopen, out engine.OutMessage) (string, error) {
	b.smu.Lock()
	defer b.smu.Unlock()
	if err := b.reopen(ro); err != nil {
		return "", err
	}
	return strconv.FormatInt(b.enqueue(out), 10), nil
}

// reopen applies ro; the caller holds smu.
func (b *Backend) reopen(ro engine.Reopen) error {
	r := b.execs[ro.CorrelationID]
	if r == nil {
		return fmt.Errorf("reopen %s: %w", ro.CorrelationID, engine.ErrNotFound)
	}
	e := &r.e
	if e.Status != ro.From || !ro.From.Terminal() || ro.From == engine.StatusDone || ro.To.Terminal() {
		return fmt.Errorf("reopen %s from %s to %s: %w", ro.CorrelationID, ro.From, ro.To,
			&engine.StatusError{CorrelationID: ro.CorrelationID, Status: e.Status, DoneStep: e.DoneStep,
				Want: engine.StatusSwap{CorrelationID: ro.CorrelationID, Step: e.DoneStep, From: ro.From, To: ro.To}})
	}
	if e.Status == engine.StatusFailed && e.DoneStep >= e.LeaseStep {
		e.DoneStep = e.LeaseStep - 1
	}
	r.failedStep, r.failedAttempt = -1, -1
	e.Takeovers = 0
	e.Status = ro.To
	if ro.Checkpoint != nil {
		e.Checkpoint = append(e.Checkpoint[:0], ro.Checkpoint...)
	}
	if ro.To == engine.StatusRunning {
		r.restarted = ro.Now
	}
	e.DueAt = ro.DueAt
	e.UpdatedAt = ro.Now
	return nil
}

// Renew implements engine.Store.
func (b *Backend) Renew(ctx context.Context, rn engine.LeaseRenewal) error {
	b.smu.Lock()
	defer b.smu.Unlock()
	r := b.execs[rn.CorrelationID]
	if r == nil || r.e.Fence != rn.Fence || r.e.LeaseExpires.IsZero() {
		return fmt.Errorf("renew the lease of %s fence %d: %w", rn.CorrelationID, rn.Fence, engine.ErrFenceLost)
	}
	r.e.LeaseExpires = rn.Expires
	return nil
}

// Stranded implements engine.Store: a scan of every execution (the memory
// backend is for tests and single runs) and, for each candidate, of the queue.
func (b *Backend) Stranded(ctx context.Context, q engine.StrandedQuery) ([]engine.Execution, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	cutoff := q.Now.Add(-q.Grace)
	b.smu.Lock()
	defer b.smu.Unlock()
	var cands []*record
	for _, r := range b.execs {
		e := &r.e
		if e.Status == engine.StatusRunning && !e.DueAt.IsZero() && !e.DueAt.After(cutoff) &&
			(e.LeaseExpires.IsZero() || !q.Now.Before(e.LeaseExpires)) {
			cands = append(cands, r)
		}
	}
	slices.SortFunc(cands, func(x, y *record) int {
		if c := x.e.DueAt.Compare(y.e.DueAt); c != 0 {
			return c
		}
		return cmp.Compare(x.e.CorrelationID, y.e.CorrelationID)
	})
	out := make([]engine.Execution, 0)
	for _, r := range cands {
		if len(out) == limit {
			break
		}
		if b.q.pending(r.e.CorrelationID) > 0 {
			continue
		}
		r.e.DueAt = q.Now
		e := r.e
		e.Checkpoint = clone(e.Checkpoint)
		out = append(out, e)
	}
	return out, nil
}

// Pending implements engine.PendingCounter.
func (b *Backend) Pending(ctx context.Context, key string) (int, error) {
	return b.q.pending(key), nil
}

// HistorySince implements engine.Tailer.
func (b *Backend) HistorySince(ctx context.Context, afterID int64, f engine.HistoryFilter) ([]engine.HistoryRow, error) {
	b.smu.Lock()
	defer b.smu.Unlock()
	out := make([]engine.HistoryRow, 0)
	for i := int(max(afterID, 0)); i < b.log.n; i++ {
		row := *b.log.at(i)
		if row.CorrelationID == "" { // pruned
			continue
		}
		if (f.Machine != "" && row.Machine != f.Machine) || (f.CorrelationID != "" && row.CorrelationID != f.CorrelationID) {
			continue
		}
		row.Actions = slices.Clone(row.Actions)
		out = append(out, row)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// clone copies b, keeping nil as nil.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// historyLog is every history row in commit order, in fixed-size chunks so that
// appending never copies what is already there. Row i has ID i+1.
type historyLog struct {
	chunks [][]engine.HistoryRow
	n      int
}

const chunkSize = 1024

func (l *historyLog) append(row engine.HistoryRow) {
	if l.n%chunkSize == 0 {
		l.chunks = append(l.chunks, make([]engine.HistoryRow, chunkSize))
	}
	row.ID = int64(l.n) + 1
	l.chunks[l.n/chunkSize][l.n%chunkSize] = row
	l.n++
}

func (l *historyLog) at(i int) *engine.HistoryRow {
	return &l.chunks[i/chunkSize][i%chunkSize]
}

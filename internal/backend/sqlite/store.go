package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// actionSep joins a history entry's actions in one column; action references
// are Go symbols and never contain it.
const actionSep = "\x1f"

// rollback ends a failed transaction even when ctx was canceled, so the pinned
// connection never stays inside one.
func (d *DB) rollback(ctx context.Context) {
	d.ws.rollback.bind().exec() // fails harmlessly if SQLite already rolled back
}

// Create implements engine.Store: an id that has a record, whatever its
// status, is refused with engine.ErrExists (see memory.Backend.Create).
func (d *DB) Create(ctx context.Context, e engine.Execution) error {
	if e.CorrelationID == "" {
		return errors.New("create execution: empty correlation id")
	}
	if e.Status == "" {
		e.Status = engine.StatusRunning
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.CorrelationID, err)
	}
	defer unlock()
	return d.createError(e, d.create(e))
}

// create runs Create's statement on the write connection.
func (d *DB) create(e engine.Execution) error {
	if e.Status == "" {
		e.Status = engine.StatusRunning
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	err := d.ws.create.bind().text(1, e.CorrelationID).text(2, e.Machine).text(3, string(e.Status)).text(4, e.State).
		text(5, e.Event).int(6, e.Retries).int64(7, e.Fence).text(8, e.LastError).blob(9, e.Checkpoint).
		text(10, e.SendReceipt).int64(11, nanos(e.CreatedAt)).int64(12, nanos(e.UpdatedAt)).int64(13, nanos(e.DueAt)).exec()
	if err != nil {
		return err
	}
	if d.w.changes() == 0 {
		st, found, _ := d.acquireState(e.CorrelationID)
		if !found {
			if status, _, pruned, _ := d.tombstone(e.CorrelationID); pruned {
				return fmt.Errorf("create execution %s (status %s, pruned): %w", e.CorrelationID, status, engine.ErrExists)
			}
		}
		return fmt.Errorf("create execution %s (status %s): %w", e.CorrelationID, st.status, engine.ErrExists)
	}
	return nil
}

// createError passes ErrExists on and names the file in any other error.
func (d *DB) createError(e engine.Execution, err error) error {
	if err == nil || errors.Is(err, engine.ErrExists) {
		return err
	}
	return d.fileError("create execution "+e.CorrelationID, err)
}

// CreateSend implements engine.CreateSender: Create's insert and the
// message's in one transaction; a refused create sends nothing.
func (d *DB) CreateSend(ctx context.Context, e engine.Execution, out engine.OutMessage) (string, error) {
	if e.CorrelationID == "" {
		return "", errors.New("create execution: empty correlation id")
	}
	receipt := ""
	err := d.write(ctx, true, func(ctx context.Context) error {
		if err := d.create(e); err != nil {
			return err
		}
		var err error
		receipt, err = d.insertMessage(out)
		return err
	})
	if err := d.createError(e, err); err != nil {
		return "", err
	}
	d.wakeReceivers()
	return receipt, nil
}

// insertMessage inserts out into the queue on the write connection and
// returns its receipt.
func (d *DB) insertMessage(out engine.OutMessage) (string, error) {
	visible := d.clock().Add(max(out.Delay, 0)).UnixNano()
	payload := out.Payload
	if payload == nil {
		payload = []byte{}
	}
	if err := d.ws.send.bind().text(1, out.Key).blob(2, payload).int64(3, visible).exec(); err != nil {
		return "", err
	}
	return strconv.FormatInt(d.w.lastInsertID(), 10), nil
}

// Acquire implements engine.Store with one conditional upsert; only a refusal
// costs a second query (to tell which one).
func (d *DB) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	var l engine.Lease
	err := d.write(ctx, false, func(ctx context.Context) error {
		var err error
		l, err = d.acquire(ctx, q)
		return err
	})
	if err != nil {
		return engine.Lease{}, err
	}
	return l, nil
}

// executionState is what acquireState reads of an execution.
type executionState struct {
	status                    string
	done, leaseStep           int
	leaseExpires              int64
	failedStep, failedAttempt int
	restarted                 int64
}

// acquireState reads the state the acquire rule looks at; found is false
// when there is no such execution.
func (d *DB) acquireState(id string) (st executionState, found bool, err error) {
	s := d.ws.acquireState.bind().text(1, id)
	row, err := s.step()
	if err != nil || !row {
		return st, false, err
	}
	st = executionState{status: s.colText(0), done: s.colInt(1), leaseStep: s.colInt(2), leaseExpires: s.colInt64(3),
		failedStep: s.colInt(4), failedAttempt: s.colInt(5), restarted: s.colInt64(6)}
	s.reset()
	return st, true, nil
}

// tombstone reads what is left of a pruned execution; pruned is false when
// id has no tombstone.
func (d *DB) tombstone(id string) (status string, done int, pruned bool, err error) {
	s := d.ws.tombstone.bind().text(1, id)
	row, err := s.step()
	if err != nil || !row {
		return "", 0, false, err
	}
	status, done = s.colText(0), s.colInt(1)
	s.reset()
	return status, done, true, nil
}

func (d *DB) acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	for range 3 {
		s := d.ws.acquire.bind().text(1, q.CorrelationID).text(2, q.Machine).int(3, q.Step).int(4, q.Retries).
			int64(5, nanos(q.Now)).int64(6, nanos(q.Expires)).int64(7, nanos(q.Restarted))
		row, err := s.step()
		if err != nil {
			return engine.Lease{}, d.fileError(fmt.Sprintf("acquire %s step %d", q.CorrelationID, q.Step), err)
		}
		if row {
			l := engine.Lease{Fence: s.colInt64(0), Takeovers: s.colInt(1), Expires: q.Expires}
			if err := s.exec(); err != nil { // finishes the upsert
				return engine.Lease{}, d.fileError(fmt.Sprintf("acquire %s step %d", q.CorrelationID, q.Step), err)
			}
			return l, nil
		}
		st, found, err := d.acquireState(q.CorrelationID)
		if err != nil {
			return engine.Lease{}, d.fileError(fmt.Sprintf("acquire %s step %d", q.CorrelationID, q.Step), err)
		}
		status, done, leaseStep, leaseExpires, failedStep, failedAttempt := st.status, st.done, st.leaseStep, st.leaseExpires, st.failedStep, st.failedAttempt
		switch {
		case !found:
			status, done, pruned, err := d.tombstone(q.CorrelationID)
			if err != nil {
				return engine.Lease{}, d.fileError(fmt.Sprintf("acquire %s step %d", q.CorrelationID, q.Step), err)
			}
			if pruned {
				return engine.Lease{}, fmt.Errorf("acquire %s step %d: %s at step %d: %w: %w", q.CorrelationID, q.Step, status, done, engine.ErrPruned, engine.ErrDuplicate)
			}
			// Deleted by another process in between: try again.
		case status == string(engine.StatusStopped):
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrInactive)
		case nanos(q.Restarted) < st.restarted:
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: message restarted at %s, before the resume at %s: %w",
				q.CorrelationID, q.Step, q.Restarted.Format(time.RFC3339), fromNanos(st.restarted).Format(time.RFC3339), engine.ErrDuplicate)
		case done >= q.Step:
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: step %d done: %w", q.CorrelationID, q.Step, done, engine.ErrDuplicate)
		case leaseExpires > nanos(q.Now) && leaseStep == q.Step:
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrLeaseHeld)
		case leaseExpires > nanos(q.Now) && leaseStep > q.Step:
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: step %d holds the lease: %w", q.CorrelationID, q.Step, leaseStep, engine.ErrDuplicate)
		case failedStep == q.Step && failedAttempt >= q.Retries:
			return engine.Lease{}, fmt.Errorf("acquire %s step %d attempt %d: attempt %d failed: %w", q.CorrelationID, q.Step, q.Retries, failedAttempt, engine.ErrDuplicate)
		}
		// Another process changed the execution between the two statements and
		// it would now be granted: try again.
	}
	return engine.Lease{}, fmt.Errorf("acquire %s step %d: execution changing under us: %w", q.CorrelationID, q.Step, engine.ErrLeaseHeld)
}

// Commit implements engine.Store: one transaction of the conditional execution
// update and the history insert. A stopped execution stays stopped.
func (d *DB) Commit(ctx context.Context, c engine.Commit) error {
	err := d.write(ctx, true, func(ctx context.Context) error { return d.commit(ctx, c) })
	if err != nil && !errors.Is(err, engine.ErrFenceLost) {
		return d.fileError(fmt.Sprintf("commit %s step %d", c.CorrelationID, c.Step), err)
	}
	return err
}

// commit runs Commit's statements; the caller runs them in a transaction.
func (d *DB) commit(ctx context.Context, c engine.Commit) error {
	s := d.ws.commitExec.bind().text(1, c.CorrelationID).int64(2, c.Fence).int(3, c.Step).int(4, c.Retries).
		text(5, string(c.Outcome)).text(6, string(c.NextStatus())).text(7, c.State).text(8, c.Event).
		blob(9, c.Checkpoint).text(10, c.SendReceipt).text(11, c.Error).int64(12, nanos(c.Now)).text(13, c.Machine).
		int64(14, nanos(c.DueAt))
	row, err := s.step()
	if err != nil {
		return err
	}
	if !row {
		return fmt.Errorf("commit %s step %d fence %d: %w", c.CorrelationID, c.Step, c.Fence, engine.ErrFenceLost)
	}
	m := s.colText(0)
	if err := s.exec(); err != nil {
		return err
	}
	h := c.History
	return d.ws.insertHistory.bind().text(1, c.CorrelationID).text(2, m).int(3, h.Step).int(4, h.Retries).
		int64(5, h.Fence).text(6, h.From).text(7, h.Event).text(8, h.To).text(9, joinActions(h.Actions)).
		text(10, string(h.Outcome)).text(11, h.Error).int64(12, nanos(h.Started)).int64(13, int64(h.Duration)).exec()
}

// CommitStep implements engine.StepCommitter: the message's insert, Commit's
// statements and the ack's delete in one transaction (group-committed with
// concurrent writes like the rest), so a step costs one write instead of three
// and its successor becomes visible only with its commit. A refused commit
// rolls the insert back.
func (d *DB) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	var ackID int64
	var ackAttempts int
	if ack != "" {
		var err error
		if ackID, ackAttempts, err = parseReceipt(ack); err != nil {
			return "", fmt.Errorf("commit %s step %d: %w", c.CorrelationID, c.Step, err)
		}
	}
	var visible int64
	var payload []byte
	if out != nil {
		visible = d.clock().Add(max(out.Delay, 0)).UnixNano()
		if payload = out.Payload; payload == nil {
			payload = []byte{}
		}
	}
	receipt := ""
	err := d.write(ctx, true, func(ctx context.Context) error {
		if out != nil {
			if err := d.ws.send.bind().text(1, out.Key).blob(2, payload).int64(3, visible).exec(); err != nil {
				return err
			}
			receipt = strconv.FormatInt(d.w.lastInsertID(), 10)
			c.SendReceipt = receipt
		}
		if err := d.commit(ctx, c); err != nil {
			return err
		}
		if ack != "" {
			// No row: the delivery is not current (delivered again); the later
			// delivery finds the step done.
			if err := d.ws.ack.bind().int64(1, ackID).int(2, ackAttempts).exec(); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, engine.ErrFenceLost) {
		return "", err
	}
	if err != nil {
		return "", d.fileError(fmt.Sprintf("commit %s step %d", c.CorrelationID, c.Step), err)
	}
	if out != nil {
		d.wakeReceivers()
	}
	return receipt, nil
}

// SetStatus implements engine.Store. reason, if not empty, becomes the last
// error. Resuming a failed execution reopens the step that failed, so its
// checkpoint (the failed message) is accepted again.
func (d *DB) SetStatus(ctx context.Context, correlationID string, s engine.Status, reason string, now time.Time) error {
	unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("set status of %s: %w", correlationID, err)
	}
	defer unlock()
	err = d.ws.setStatus.bind().text(1, correlationID).text(2, string(s)).text(3, reason).int64(4, nanos(now)).
		bool(5, !s.Terminal()).exec()
	if err != nil {
		return d.fileError(fmt.Sprintf("set status of %s", correlationID), err)
	}
	if d.w.changes() == 1 {
		return nil
	}
	st, found, err := d.acquireState(correlationID)
	if err != nil {
		return d.fileError(fmt.Sprintf("set status of %s", correlationID), err)
	}
	if !found {
		return fmt.Errorf("set status of %s: %w", correlationID, engine.ErrNotFound)
	}
	return fmt.Errorf("set status of %s to %s: execution is %s: %w", correlationID, s, st.status, engine.ErrInactive)
}

// SwapStatus implements engine.Store with one conditional update; only a
// refusal costs a second query (to say what was found).
func (d *DB) SwapStatus(ctx context.Context, s engine.StatusSwap) error {
	err := d.write(ctx, false, func(ctx context.Context) error { return d.swap(s) })
	return d.swapError(s, err)
}

// SwapStatusSend implements engine.SwapSender: the conditional update and
// the message's insert in one transaction; a refused swap sends nothing.
func (d *DB) SwapStatusSend(ctx context.Context, s engine.StatusSwap, out engine.OutMessage) (string, error) {
	visible := d.clock().Add(max(out.Delay, 0)).UnixNano()
	payload := out.Payload
	if payload == nil {
		payload = []byte{}
	}
	receipt := ""
	err := d.write(ctx, true, func(ctx context.Context) error {
		if err := d.swap(s); err != nil {
			return err
		}
		if err := d.ws.send.bind().text(1, out.Key).blob(2, payload).int64(3, visible).exec(); err != nil {
			return err
		}
		receipt = strconv.FormatInt(d.w.lastInsertID(), 10)
		return nil
	})
	if err := d.swapError(s, err); err != nil {
		return "", err
	}
	d.wakeReceivers()
	return receipt, nil
}

// swap runs SwapStatus's statements on the write connection.
func (d *DB) swap(s engine.StatusSwap) error {
	err := d.ws.swapStatus.bind().text(1, s.CorrelationID).text(2, string(s.From)).text(3, string(s.To)).int(4, s.Step).
		blob(5, s.Checkpoint).int64(6, nanos(s.Now)).int64(7, nanos(s.DueAt)).exec()
	if err != nil {
		return err
	}
	if d.w.changes() == 1 {
		return nil
	}
	st, found, err := d.acquireState(s.CorrelationID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("swap status of %s: %w", s.CorrelationID, engine.ErrNotFound)
	}
	return fmt.Errorf("swap status of %s from %s to %s: %w", s.CorrelationID, s.From, s.To,
		&engine.StatusError{CorrelationID: s.CorrelationID, Status: engine.Status(st.status), DoneStep: st.done, Want: s})
}

// swapError passes a refusal on and names the file in any other error.
func (d *DB) swapError(s engine.StatusSwap, err error) error {
	var se *engine.StatusError
	if err == nil || errors.As(err, &se) || errors.Is(err, engine.ErrNotFound) {
		return err
	}
	return d.fileError("swap status of "+s.CorrelationID, err)
}

const executionColumns = `correlation_id, machine, status, state, event, done_step, retries, fence,
	lease_step, lease_expires, last_error, checkpoint, send_receipt, created_at, updated_at, due_at, takeovers`

func scanExecution(row interface{ Scan(...any) error }) (engine.Execution, error) {
	var (
		e                                  engine.Execution
		status                             string
		leaseExpires, createdAt, updatedAt int64
		dueAt                              int64
	)
	err := row.Scan(&e.CorrelationID, &e.Machine, &status, &e.State, &e.Event, &e.DoneStep, &e.Retries, &e.Fence,
		&e.LeaseStep, &leaseExpires, &e.LastError, &e.Checkpoint, &e.SendReceipt, &createdAt, &updatedAt, &dueAt, &e.Takeovers)
	e.Status = engine.Status(status)
	e.LeaseExpires, e.CreatedAt, e.UpdatedAt = fromNanos(leaseExpires), fromNanos(createdAt), fromNanos(updatedAt)
	e.DueAt = fromNanos(dueAt)
	return e, err
}

// Get implements engine.Store.
func (d *DB) Get(ctx context.Context, correlationID string) (engine.Execution, error) {
	e, err := scanExecution(d.db.QueryRowContext(ctx,
		`SELECT `+executionColumns+` FROM executions WHERE correlation_id = ?1`, correlationID))
	if errors.Is(err, sql.ErrNoRows) {
		var status string
		var pruned int64
		err := d.db.QueryRowContext(ctx, `SELECT status, pruned_at FROM tombstones WHERE correlation_id = ?1`, correlationID).Scan(&status, &pruned)
		if err == nil {
			return engine.Execution{}, fmt.Errorf("get %s: %s, pruned at %s: %w: %w", correlationID, status,
				fromNanos(pruned).Format(time.RFC3339), engine.ErrPruned, engine.ErrNotFound)
		}
		return engine.Execution{}, fmt.Errorf("get %s: %w", correlationID, engine.ErrNotFound)
	}
	if err != nil {
		return engine.Execution{}, d.fileError("get "+correlationID, err)
	}
	return e, nil
}

// List implements engine.Store: one range of the executions_newest index,
// read backwards from the cursor, checking the filters row by row, so a page
// costs its size when the filters match often (and up to a scan of the
// table when they match rarely).
func (d *DB) List(ctx context.Context, f engine.ListFilter) (engine.ListPage, error) {
	limit := f.Limit + 1 // one more row tells whether there is a next page
	if f.Limit <= 0 {
		limit = -1
	}
	after := listKey{created: math.MaxInt64}
	if f.Cursor != "" {
		var err error
		if after, err = parseCursor(f.Cursor); err != nil {
			return engine.ListPage{}, fmt.Errorf("list executions: %w", err)
		}
	}
	// (created_at, correlation_id) < (?4, ?5) walks the index backwards from
	// the cursor; the first page starts after any real key.
	rows, err := d.db.QueryContext(ctx, `SELECT `+executionColumns+` FROM executions INDEXED BY executions_newest
WHERE (created_at, correlation_id) < (?4, ?5)
	AND (?1 = '' OR machine = ?1) AND (?2 = '' OR status = ?2) AND (?3 = '' OR state = ?3)
ORDER BY created_at DESC, correlation_id DESC LIMIT ?6`,
		f.Machine, string(f.Status), f.State, after.created, after.id, limit)
	if err != nil {
		return engine.ListPage{}, d.fileError("list executions", err)
	}
	defer rows.Close()
	page := engine.ListPage{Executions: make([]engine.Execution, 0, max(f.Limit+1, 0))}
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return engine.ListPage{}, d.fileError("list executions", err)
		}
		page.Executions = append(page.Executions, e)
	}
	if err := rows.Err(); err != nil {
		return engine.ListPage{}, d.fileError("list executions", err)
	}
	if f.Limit > 0 && len(page.Executions) > f.Limit {
		// One more row was read to tell whether there is a next page.
		page.Executions = page.Executions[:f.Limit]
		last := page.Executions[f.Limit-1]
		page.Next = listKey{created: nanos(last.CreatedAt), id: last.CorrelationID}.cursor()
	}
	return page, nil
}

// listKey is where a page ended: the last execution's created_at and id.
type listKey struct {
	created int64
	id      string
}

// cursorPrefix marks this store's cursors.
const cursorPrefix = "s1."

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

const historyColumns = `id, correlation_id, machine, step, retries, fence, from_state, event, to_state,
	actions, outcome, error, started, duration`

func scanHistory(rows *sql.Rows) (engine.HistoryRow, error) {
	var (
		r                 engine.HistoryRow
		actions, outcome  string
		started, duration int64
	)
	err := rows.Scan(&r.ID, &r.CorrelationID, &r.Machine, &r.Step, &r.Retries, &r.Fence, &r.From, &r.Event, &r.To,
		&actions, &outcome, &r.Error, &started, &duration)
	if actions != "" {
		r.Actions = strings.Split(actions, actionSep)
	}
	r.Outcome, r.Started, r.Duration = engine.Outcome(outcome), fromNanos(started), time.Duration(duration)
	return r, err
}

// History implements engine.Store.
func (d *DB) History(ctx context.Context, correlationID string) ([]engine.HistoryEntry, error) {
	rows, err := d.history(ctx, `SELECT `+historyColumns+` FROM history WHERE correlation_id = ?1 ORDER BY id`, correlationID)
	if err != nil {
		return nil, d.fileError("history of "+correlationID, err)
	}
	out := make([]engine.HistoryEntry, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.HistoryEntry)
	}
	if len(out) == 0 {
		if _, err := d.Get(ctx, correlationID); err != nil {
			return nil, fmt.Errorf("history of %s: %w", correlationID, err)
		}
	}
	return out, nil
}

// HistorySince implements engine.Tailer: rows are numbered by the history
// table's AUTOINCREMENT id, which never reuses or goes back.
func (d *DB) HistorySince(ctx context.Context, afterID int64, f engine.HistoryFilter) ([]engine.HistoryRow, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := d.history(ctx, `SELECT `+historyColumns+` FROM history
WHERE id > ?1 AND (?2 = '' OR machine = ?2) AND (?3 = '' OR correlation_id = ?3)
ORDER BY id LIMIT ?4`, afterID, f.Machine, f.CorrelationID, limit)
	if err != nil {
		return nil, d.fileError("tail history", err)
	}
	return rows, nil
}

func (d *DB) history(ctx context.Context, query string, args ...any) ([]engine.HistoryRow, error) {
	rows, err := d.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]engine.HistoryRow, 0)
	for rows.Next() {
		r, err := scanHistory(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// lock takes the write lock for one operation. A canceled ctx is honoured
// before the operation starts; the statements themselves are not interrupted,
// and a wait for another process's lock is bounded by Options.BusyTimeout.
func (d *DB) lock(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.wmu.Lock()
	if d.closed {
		d.wmu.Unlock()
		return nil, errClosed
	}
	return d.wmu.Unlock, nil
}

// joinActions joins a history entry's actions with actionSep.
func joinActions(actions []string) string {
	if len(actions) == 1 {
		return actions[0]
	}
	return strings.Join(actions, actionSep)
}

// Reopen implements engine.Store with one conditional update.
func (d *DB) Reopen(ctx context.Context, r engine.Reopen) error {
	err := d.write(ctx, false, func(ctx context.Context) error { return d.reopen(r) })
	return d.reopenError(r, err)
}

// ReopenSend implements engine.ReopenSender: the conditional update and the
// message's insert in one transaction; a refused reopen sends nothing.
func (d *DB) ReopenSend(ctx context.Context, r engine.Reopen, out engine.OutMessage) (string, error) {
	receipt := ""
	err := d.write(ctx, true, func(ctx context.Context) error {
		if err := d.reopen(r); err != nil {
			return err
		}
		var err error
		receipt, err = d.insertMessage(out)
		return err
	})
	if err := d.reopenError(r, err); err != nil {
		return "", err
	}
	d.wakeReceivers()
	return receipt, nil
}

// reopen runs Reopen's statement on the write connection.
func (d *DB) reopen(r engine.Reopen) error {
	err := d.ws.reopen.bind().text(1, r.CorrelationID).text(2, string(r.From)).text(3, string(r.To)).blob(4, r.Checkpoint).
		int64(5, nanos(r.DueAt)).int64(6, nanos(r.Now)).exec()
	if err != nil {
		return err
	}
	if d.w.changes() == 1 {
		return nil
	}
	st, found, err := d.acquireState(r.CorrelationID)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("reopen %s: %w", r.CorrelationID, engine.ErrNotFound)
	}
	return fmt.Errorf("reopen %s from %s to %s: %w", r.CorrelationID, r.From, r.To,
		&engine.StatusError{CorrelationID: r.CorrelationID, Status: engine.Status(st.status), DoneStep: st.done,
			Want: engine.StatusSwap{CorrelationID: r.CorrelationID, Step: st.done, From: r.From, To: r.To}})
}

// reopenError passes a refusal on and names the file in any other error.
func (d *DB) reopenError(r engine.Reopen, err error) error {
	var se *engine.StatusError
	if err == nil || errors.As(err, &se) || errors.Is(err, engine.ErrNotFound) {
		return err
	}
	return d.fileError("reopen "+r.CorrelationID, err)
}

// Renew implements engine.Store with one conditional update.
func (d *DB) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	var n int64
	err := d.write(ctx, false, func(ctx context.Context) error {
		if err := d.ws.renew.bind().text(1, r.CorrelationID).int64(2, r.Fence).int64(3, nanos(r.Expires)).exec(); err != nil {
			return err
		}
		n = d.w.changes()
		return nil
	})
	if err != nil {
		return d.fileError("renew the lease of "+r.CorrelationID, err)
	}
	if n == 0 {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	}
	return nil
}

// Stranded implements engine.Store: an indexed read of the candidates (none,
// usually: then no write at all), then one transaction that claims those
// still stranded as they were read.
func (d *DB) Stranded(ctx context.Context, q engine.StrandedQuery) ([]engine.Execution, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	now := nanos(q.Now)
	rows, err := d.db.QueryContext(ctx, sqlStrandedSelect, nanos(q.Now.Add(-q.Grace)), now, limit)
	if err != nil {
		return nil, d.fileError("find stranded executions", err)
	}
	var cands []engine.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			rows.Close()
			return nil, d.fileError("find stranded executions", err)
		}
		cands = append(cands, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, d.fileError("find stranded executions", err)
	}
	out := make([]engine.Execution, 0, len(cands))
	if len(cands) == 0 {
		return out, nil
	}
	err = d.write(ctx, true, func(ctx context.Context) error {
		out = out[:0]
		for _, e := range cands {
			if err := d.ws.strandedClaim.bind().text(1, e.CorrelationID).int64(2, nanos(e.DueAt)).int64(3, now).exec(); err != nil {
				return err
			}
			if d.w.changes() == 1 {
				e.DueAt = q.Now
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, d.fileError("claim stranded executions", err)
	}
	return out, nil
}

// Pending implements engine.PendingCounter.
func (d *DB) Pending(ctx context.Context, key string) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM queue WHERE key = ?1`, key).Scan(&n); err != nil {
		return 0, d.fileError("count the messages of "+key, err)
	}
	return n, nil
}

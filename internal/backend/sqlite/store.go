package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	d.ws.rollback.ExecContext(ctx) // fails harmlessly if SQLite already rolled back
}

// Create implements engine.Store; see memory.Backend.Create for the rules
// every backend follows.
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
	ctx, unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("create execution %s: %w", e.CorrelationID, err)
	}
	defer unlock()
	res, err := d.ws.create.ExecContext(ctx, e.CorrelationID, e.Machine, string(e.Status), e.State, e.Event,
		e.Retries, e.Fence, e.LastError, e.Checkpoint, e.SendReceipt, nanos(e.CreatedAt), nanos(e.UpdatedAt))
	if err != nil {
		return d.fileError("create execution "+e.CorrelationID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return d.fileError("create execution "+e.CorrelationID, err)
	} else if n == 0 {
		var status string
		d.ws.acquireState.QueryRowContext(ctx, e.CorrelationID).Scan(&status)
		return fmt.Errorf("create execution %s (status %s): %w", e.CorrelationID, status, engine.ErrExists)
	}
	return nil
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

func (d *DB) acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	for range 3 {
		var fence int64
		err := d.ws.acquire.QueryRowContext(ctx, q.CorrelationID, q.Machine, q.Step, q.Retries,
			nanos(q.Now), nanos(q.Expires)).Scan(&fence)
		if err == nil {
			return engine.Lease{Fence: fence}, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return engine.Lease{}, d.fileError(fmt.Sprintf("acquire %s step %d", q.CorrelationID, q.Step), err)
		}
		var (
			status                    string
			done, leaseStep           int
			leaseExpires              int64
			failedStep, failedAttempt int
		)
		err = d.ws.acquireState.QueryRowContext(ctx, q.CorrelationID).Scan(&status, &done, &leaseStep, &leaseExpires, &failedStep, &failedAttempt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return engine.Lease{}, d.fileError(fmt.Sprintf("acquire %s step %d", q.CorrelationID, q.Step), err)
		}
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Deleted by another process in between: try again.
		case status == string(engine.StatusStopped):
			return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrInactive)
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
	var checkpoint any
	if c.Checkpoint != nil {
		checkpoint = c.Checkpoint
	}
	var m string
	err := d.ws.commitExec.QueryRowContext(ctx, c.CorrelationID, c.Fence, c.Step, c.Retries, string(c.Outcome),
		string(commitStatus(c)), c.State, c.Event, checkpoint, c.SendReceipt, c.Error, nanos(c.Now), c.Machine).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("commit %s step %d fence %d: %w", c.CorrelationID, c.Step, c.Fence, engine.ErrFenceLost)
	}
	if err != nil {
		return err
	}
	h := c.History
	_, err = d.ws.insertHistory.ExecContext(ctx, c.CorrelationID, m, h.Step, h.Retries, h.Fence, h.From, h.Event,
		h.To, strings.Join(h.Actions, actionSep), string(h.Outcome), h.Error, nanos(h.Started), int64(h.Duration))
	return err
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
			res, err := d.ws.send.ExecContext(ctx, out.Key, payload, visible)
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			receipt = strconv.FormatInt(id, 10)
			c.SendReceipt = receipt
		}
		if err := d.commit(ctx, c); err != nil {
			return err
		}
		if ack != "" {
			// No row: the delivery is not current (delivered again); the later
			// delivery finds the step done.
			if _, err := d.ws.ack.ExecContext(ctx, ackID, ackAttempts); err != nil {
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

// commitStatus is the status a commit moves an execution to: c.Status, or when
// that is empty, the one its outcome implies.
func commitStatus(c engine.Commit) engine.Status {
	if c.Status != "" {
		return c.Status
	}
	switch c.Outcome {
	case engine.OutcomeWait:
		return engine.StatusWaiting
	case engine.OutcomeDone:
		return engine.StatusDone
	case engine.OutcomeFailed:
		return engine.StatusFailed
	default:
		return engine.StatusRunning
	}
}

// SetStatus implements engine.Store. reason, if not empty, becomes the last
// error. Resuming a failed execution reopens the step that failed, so its
// checkpoint (the failed message) is accepted again.
func (d *DB) SetStatus(ctx context.Context, correlationID string, s engine.Status, reason string, now time.Time) error {
	ctx, unlock, err := d.lock(ctx)
	if err != nil {
		return fmt.Errorf("set status of %s: %w", correlationID, err)
	}
	defer unlock()
	res, err := d.ws.setStatus.ExecContext(ctx, correlationID, string(s), reason, nanos(now), !s.Terminal())
	if err != nil {
		return d.fileError(fmt.Sprintf("set status of %s", correlationID), err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return d.fileError(fmt.Sprintf("set status of %s", correlationID), err)
	} else if n == 1 {
		return nil
	}
	var status string
	err = d.ws.acquireState.QueryRowContext(ctx, correlationID).Scan(&status, new(int), new(int), new(int64), new(int), new(int))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("set status of %s: %w", correlationID, engine.ErrNotFound)
	}
	if err != nil {
		return d.fileError(fmt.Sprintf("set status of %s", correlationID), err)
	}
	return fmt.Errorf("set status of %s to %s: execution is %s: %w", correlationID, s, status, engine.ErrInactive)
}

const executionColumns = `correlation_id, machine, status, state, event, done_step, retries, fence,
	lease_step, lease_expires, last_error, checkpoint, send_receipt, created_at, updated_at`

func scanExecution(row interface{ Scan(...any) error }) (engine.Execution, error) {
	var (
		e                                  engine.Execution
		status                             string
		leaseExpires, createdAt, updatedAt int64
	)
	err := row.Scan(&e.CorrelationID, &e.Machine, &status, &e.State, &e.Event, &e.DoneStep, &e.Retries, &e.Fence,
		&e.LeaseStep, &leaseExpires, &e.LastError, &e.Checkpoint, &e.SendReceipt, &createdAt, &updatedAt)
	e.Status = engine.Status(status)
	e.LeaseExpires, e.CreatedAt, e.UpdatedAt = fromNanos(leaseExpires), fromNanos(createdAt), fromNanos(updatedAt)
	return e, err
}

// Get implements engine.Store.
func (d *DB) Get(ctx context.Context, correlationID string) (engine.Execution, error) {
	e, err := scanExecution(d.db.QueryRowContext(ctx,
		`SELECT `+executionColumns+` FROM executions WHERE correlation_id = ?1`, correlationID))
	if errors.Is(err, sql.ErrNoRows) {
		return engine.Execution{}, fmt.Errorf("get %s: %w", correlationID, engine.ErrNotFound)
	}
	if err != nil {
		return engine.Execution{}, d.fileError("get "+correlationID, err)
	}
	return e, nil
}

// List implements engine.Store. Executions updated at the same time are ordered
// by correlation id.
func (d *DB) List(ctx context.Context, f engine.ListFilter) ([]engine.Execution, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1
	}
	rows, err := d.db.QueryContext(ctx, `SELECT `+executionColumns+` FROM executions
WHERE (?1 = '' OR machine = ?1) AND (?2 = '' OR status = ?2)
ORDER BY updated_at DESC, correlation_id LIMIT ?3`, f.Machine, string(f.Status), limit)
	if err != nil {
		return nil, d.fileError("list executions", err)
	}
	defer rows.Close()
	out := make([]engine.Execution, 0)
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, d.fileError("list executions", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fileError("list executions", err)
	}
	return out, nil
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

// lock takes the write lock for one operation. Statements run under a context
// that is never canceled: with a cancelable one, the driver starts a goroutine
// per statement to interrupt it, which costs more than our statements take. A
// canceled ctx is honoured before the operation starts; a wait for another
// process's lock is bounded by Options.BusyTimeout.
func (d *DB) lock(ctx context.Context) (context.Context, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	d.wmu.Lock()
	return context.WithoutCancel(ctx), d.wmu.Unlock, nil
}

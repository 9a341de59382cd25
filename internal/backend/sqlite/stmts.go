package sqlite

import (
	"fmt"
)

// writeStmts are prepared once on the write connection.
type writeStmts struct {
	begin, commit, rollback, savepoint, rollbackTo, release *stmt

	create, acquire, acquireState, tombstone, commitExec, insertHistory, setStatus, swapStatus *stmt

	reopen, renew, strandedClaim *stmt

	send, receive, receiveKey, ack *stmt

	insertDrop *stmt
}

const (
	// sqlCreate inserts nothing for an id that has a record or a tombstone.
	sqlCreate = `
INSERT INTO executions (correlation_id, machine, status, state, event, retries, fence,
	last_error, checkpoint, send_receipt, created_at, updated_at, due_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE correlation_id = ?1)
ON CONFLICT (correlation_id) DO NOTHING`

	// sqlAcquire is the acquire rule as one conditional upsert: ?1 id,
	// ?2 machine, ?3 step, ?4 retries, ?5 now, ?6 expires, ?7 the message's
	// restart time. A pruned id (a tombstone) is not recorded on the fly. A
	// grant of a step's lease its holder let expire counts a takeover (SET
	// reads the old values).
	sqlAcquire = `
INSERT INTO executions (correlation_id, machine, status, retries, fence, lease_step,
	lease_expires, created_at, updated_at)
SELECT ?1, ?2, 'running', ?4, 1, ?3, ?6, ?5, ?5
WHERE NOT EXISTS (SELECT 1 FROM tombstones WHERE correlation_id = ?1)
ON CONFLICT (correlation_id) DO UPDATE SET
	takeovers = iif(lease_step = ?3, iif(lease_expires <> 0, takeovers + 1, takeovers), 0),
	fence = fence + 1, lease_step = ?3, lease_expires = ?6, retries = ?4,
	status = 'running', updated_at = ?5, machine = iif(machine = '', ?2, machine)
WHERE status <> 'stopped' AND done_step < ?3
	AND NOT (lease_expires > ?5 AND lease_step >= ?3)
	AND NOT (failed_step = ?3 AND failed_attempt >= ?4)
	AND restarted <= ?7
RETURNING fence, takeovers`

	sqlTombstone = `SELECT status, done_step FROM tombstones WHERE correlation_id = ?1`

	sqlAcquireState = `
SELECT status, done_step, lease_step, lease_expires, failed_step, failed_attempt, restarted
FROM executions WHERE correlation_id = ?1`

	// sqlCommit applies a commit if the fence is current and the lease still
	// held: ?1 id, ?2 fence, ?3 step, ?4 retries, ?5 outcome, ?6 status,
	// ?7 state, ?8 event, ?9 checkpoint (NULL keeps it), ?10 send receipt,
	// ?11 error, ?12 now, ?13 machine, ?14 due.
	sqlCommit = `
UPDATE executions SET
	done_step = iif(?5 <> 'retry' AND ?3 > done_step, ?3, done_step),
	failed_attempt = iif(?5 = 'retry', iif(failed_step = ?3, max(failed_attempt, ?4), ?4), failed_attempt),
	failed_step = iif(?5 = 'retry', ?3, failed_step),
	lease_expires = 0,
	status = iif(status = 'stopped' AND ?5 NOT IN ('done', 'failed'), 'stopped', ?6),
	state = ?7, event = ?8,
	checkpoint = coalesce(?9, checkpoint),
	send_receipt = iif(?10 <> '', ?10, send_receipt),
	last_error = iif(?11 <> '' OR ?5 IN ('retry', 'failed'), ?11, last_error),
	retries = ?4, updated_at = ?12, due_at = ?14,
	machine = iif(machine = '', ?13, machine)
WHERE correlation_id = ?1 AND fence = ?2 AND lease_expires <> 0
RETURNING machine`

	sqlInsertHistory = `
INSERT INTO history (correlation_id, machine, step, retries, fence, from_state, event,
	to_state, actions, outcome, error, started, duration)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)`

	// sqlSetStatus: ?1 id, ?2 status, ?3 reason, ?4 now, ?5 1 when s is not
	// terminal (resuming a failed execution reopens its failed step; resuming
	// a failed or stopped one forgets failed attempts). Done refuses any
	// change, failed refuses a stop (see memory.Backend.SetStatus).
	sqlSetStatus = `
UPDATE executions SET
	done_step = iif(status = 'failed' AND ?5 AND done_step >= lease_step, lease_step - 1, done_step),
	failed_step = iif(status IN ('failed', 'stopped') AND ?5, -1, failed_step),
	failed_attempt = iif(status IN ('failed', 'stopped') AND ?5, -1, failed_attempt),
	status = ?2, last_error = iif(?3 <> '', ?3, last_error), updated_at = ?4,
	due_at = iif(?2 = 'running', ?4, due_at)
WHERE correlation_id = ?1 AND status <> 'done' AND NOT (status = 'failed' AND ?2 = 'stopped')`

	// sqlSwapStatus: ?1 id, ?2 from, ?3 to, ?4 step (the done step the
	// caller saw), ?5 checkpoint (NULL keeps it), ?6 now, ?7 due. See engine.Store.
	sqlSwapStatus = `
UPDATE executions SET status = ?3, checkpoint = coalesce(?5, checkpoint), updated_at = ?6, due_at = ?7
WHERE correlation_id = ?1 AND status = ?2 AND done_step = ?4 AND lease_step <= ?4`

	// sqlReopen: ?1 id, ?2 from, ?3 to, ?4 checkpoint (NULL keeps it), ?5 due,
	// ?6 now. SetStatus's resume rule, conditional on the status; a resume
	// to running records the restart time. See engine.Store.Reopen.
	sqlReopen = `
UPDATE executions SET
	done_step = iif(status = 'failed' AND done_step >= lease_step, lease_step - 1, done_step),
	failed_step = -1, failed_attempt = -1, takeovers = 0,
	status = ?3, checkpoint = coalesce(?4, checkpoint), due_at = ?5,
	restarted = iif(?3 = 'running', ?6, restarted), updated_at = ?6
WHERE correlation_id = ?1 AND status = ?2 AND ?2 IN ('failed', 'stopped') AND ?3 IN ('running', 'waiting')`

	// sqlRenew: ?1 id, ?2 fence, ?3 new expiry (0 gives the lease back).
	sqlRenew = `
UPDATE executions SET lease_expires = ?3
WHERE correlation_id = ?1 AND fence = ?2 AND lease_expires <> 0`

	// sqlStrandedSelect finds repair candidates: ?1 due cutoff, ?2 now,
	// ?3 limit. One scan of the executions and one of the queue's keys
	// (materialized once for NOT IN): no index that every transition would
	// have to rewrite.
	sqlStrandedSelect = `
SELECT ` + executionColumns + ` FROM executions
WHERE status = 'running' AND due_at > 0 AND due_at <= ?1 AND lease_expires <= ?2
	AND correlation_id NOT IN (SELECT key FROM queue)
ORDER BY due_at, correlation_id LIMIT ?3`

	// sqlStrandedClaim moves a candidate's due time to now iff it is still
	// stranded as it was read: ?1 id, ?2 due read, ?3 now.
	sqlStrandedClaim = `
UPDATE executions SET due_at = ?3
WHERE correlation_id = ?1 AND due_at = ?2 AND status = 'running' AND lease_expires <= ?3
	AND NOT EXISTS (SELECT 1 FROM queue WHERE key = ?1)`

	sqlSend = `INSERT INTO queue (key, payload, visible_at) VALUES (?1, ?2, ?3)`

	// sqlReceive claims up to ?3 visible messages atomically: ?1 hidden until,
	// ?2 now.
	sqlReceive = `
UPDATE queue SET visible_at = ?1, attempts = attempts + 1
WHERE id IN (SELECT id FROM queue WHERE visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3)
RETURNING id, payload, attempts`

	// sqlReceiveKey is sqlReceive for the messages of one key (?4): a scan
	// of the visible messages (lfsm run's own first; no index on key, which
	// every send and ack would have to maintain).
	sqlReceiveKey = `
UPDATE queue SET visible_at = ?1, attempts = attempts + 1
WHERE id IN (SELECT id FROM queue WHERE key = ?4 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3)
RETURNING id, payload, attempts`

	sqlAck = `DELETE FROM queue WHERE id = ?1 AND attempts = ?2`
)

func (s *writeStmts) prepare(c *conn) error {
	for _, p := range []struct {
		dst   **stmt
		query string
	}{
		{&s.begin, "BEGIN IMMEDIATE"},
		{&s.commit, "COMMIT"},
		{&s.rollback, "ROLLBACK"},
		{&s.savepoint, "SAVEPOINT op"},
		{&s.rollbackTo, "ROLLBACK TO op"},
		{&s.release, "RELEASE op"},
		{&s.create, sqlCreate},
		{&s.acquire, sqlAcquire},
		{&s.acquireState, sqlAcquireState},
		{&s.tombstone, sqlTombstone},
		{&s.commitExec, sqlCommit},
		{&s.insertHistory, sqlInsertHistory},
		{&s.setStatus, sqlSetStatus},
		{&s.swapStatus, sqlSwapStatus},
		{&s.reopen, sqlReopen},
		{&s.renew, sqlRenew},
		{&s.strandedClaim, sqlStrandedClaim},
		{&s.send, sqlSend},
		{&s.receive, sqlReceive},
		{&s.receiveKey, sqlReceiveKey},
		{&s.ack, sqlAck},
		{&s.insertDrop, sqlInsertDrop},
	} {
		st, err := c.prepare(p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", firstLine(p.query), err)
		}
		*p.dst = st
	}
	return nil
}

func (s *writeStmts) close() {
	for _, st := range []*stmt{s.begin, s.commit, s.rollback, s.savepoint, s.rollbackTo, s.release, s.create, s.acquire, s.acquireState, s.tombstone,
		s.commitExec, s.insertHistory, s.setStatus, s.swapStatus, s.reopen, s.renew, s.strandedClaim, s.send, s.receive, s.receiveKey, s.ack, s.insertDrop} {
		st.close()
	}
}

func firstLine(q string) string {
	for len(q) > 0 && q[0] == '\n' {
		q = q[1:]
	}
	for i, r := range q {
		if r == '\n' {
			return q[:i]
		}
	}
	return q
}

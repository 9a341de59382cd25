package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.Pruner = (*DB)(nil)

// pruneBatch is how many executions one prune transaction deletes, so that
// workers sharing the file wait for the write lock briefly.
const pruneBatch = 500

// Prune implements engine.Pruner: batches of executions are moved to
// tombstones and deleted with their history, each batch one IMMEDIATE
// transaction, then the dropped-message records before r.Before. The freed
// pages go back to the file system when the file has incremental
// auto-vacuum (files this package creates; see Vacuum for older ones);
// otherwise SQLite reuses them for new rows.
func (d *DB) Prune(ctx context.Context, r engine.PruneRequest) (engine.PruneResult, error) {
	var res engine.PruneResult
	for r.Limit <= 0 || res.Executions < r.Limit {
		n := pruneBatch
		if r.Limit > 0 {
			n = min(n, r.Limit-res.Executions)
		}
		execs, hist, err := d.pruneBatch(ctx, r, n)
		res.Executions += execs
		res.History += hist
		if err != nil {
			return res, d.fileError("prune executions", err)
		}
		if execs < n {
			break
		}
	}
	dropped, err := d.db.ExecContext(ctx, `DELETE FROM dropped WHERE at < ?1`, nanos(r.Before))
	if err != nil {
		return res, d.fileError("prune dropped messages", err)
	}
	n, _ := dropped.RowsAffected()
	res.Dropped = int(n)
	if res != (engine.PruneResult{}) {
		if err := d.reclaim(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (d *DB) pruneBatch(ctx context.Context, r engine.PruneRequest, n int) (execs, hist int, err error) {
	tx, err := d.db.BeginTx(ctx, nil) // IMMEDIATE (_txlock)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT correlation_id FROM executions
WHERE status IN ('done', 'failed', 'stopped') AND updated_at < ?1 LIMIT ?2`, nanos(r.Before), n)
	if err != nil {
		return 0, 0, err
	}
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, 0, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, 0, err
	}
	if len(ids) == 0 {
		return 0, 0, nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return 0, 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tombstones (correlation_id, machine, status, done_step, pruned_at)
SELECT correlation_id, machine, status, done_step, ?2 FROM executions
WHERE correlation_id IN (SELECT value FROM json_each(?1))`, list, nanos(r.Now)); err != nil {
		return 0, 0, err
	}
	h, err := tx.ExecContext(ctx, `DELETE FROM history WHERE correlation_id IN (SELECT value FROM json_each(?1))`, list)
	if err != nil {
		return 0, 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM executions WHERE correlation_id IN (SELECT value FROM json_each(?1))`, list); err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	nh, _ := h.RowsAffected()
	return len(ids), int(nh), nil
}

// reclaim gives freed pages back to the file system when the file has
// incremental auto-vacuum, and checkpoints the WAL so that the file shrinks
// now rather than at the next checkpoint (best effort: a reader in another
// process may hold the WAL).
func (d *DB) reclaim(ctx context.Context) error {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return d.fileError("reclaim space", err)
	}
	defer c.Close()
	var mode int
	if err := c.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return d.fileError("reclaim space", err)
	}
	if mode != autoVacuumIncremental {
		return nil
	}
	if err := drain(c.QueryContext(ctx, "PRAGMA incremental_vacuum")); err != nil {
		return d.fileError("reclaim space", err)
	}
	if err := drain(c.QueryContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")); err != nil {
		return d.fileError("reclaim space", err)
	}
	return nil
}

// autoVacuumIncremental is PRAGMA auto_vacuum's value for INCREMENTAL.
const autoVacuumIncremental = 2

// drain reads a pragma's rows to the end (incremental_vacuum frees pages as
// its statement steps).
func drain(rows *sql.Rows, err error) error {
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	return rows.Close()
}

// Vacuum rewrites the file without its free pages and turns on incremental
// auto-vacuum, so that later prunes shrink it as they go: for files created
// before lfsm set it (schema versions before 4 were created without), or to
// compact one at any time. It needs room for a copy of the database and
// holds the write lock throughout: workers on the file wait (up to their
// busy timeout).
func (d *DB) Vacuum(ctx context.Context) error {
	c, err := d.db.Conn(ctx)
	if err != nil {
		return d.fileError("vacuum", err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		return d.fileError("vacuum", err)
	}
	if _, err := c.ExecContext(ctx, "VACUUM"); err != nil {
		return d.fileError("vacuum", err)
	}
	if err := drain(c.QueryContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")); err != nil {
		return d.fileError("vacuum", err)
	}
	return nil
}

// AutoVacuum reports whether the file gives pages freed by Prune back to the
// file system (incremental auto-vacuum).
func (d *DB) AutoVacuum(ctx context.Context) (bool, error) {
	var mode int
	if err := d.db.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return false, d.fileError("read auto_vacuum", err)
	}
	return mode == autoVacuumIncremental, nil
}

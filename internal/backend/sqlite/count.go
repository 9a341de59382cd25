package sqlite

import (
	"context"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.Counter = (*DB)(nil)

// Count implements engine.Counter with one pass over the executions_count
// index (machine, state, status), which holds every column the query reads,
// so no table row is read.
func (d *DB) Count(ctx context.Context, machine string) ([]engine.CountRow, error) {
	q := `SELECT state, status, count(*) FROM executions INDEXED BY executions_count GROUP BY state, status ORDER BY state, status`
	args := []any{}
	if machine != "" {
		q = `SELECT state, status, count(*) FROM executions INDEXED BY executions_count WHERE machine = ?1
GROUP BY state, status ORDER BY state, status`
		args = append(args, machine)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, d.fileError("count executions", err)
	}
	defer rows.Close()
	out := []engine.CountRow{}
	for rows.Next() {
		var r engine.CountRow
		var status string
		if err := rows.Scan(&r.State, &status, &r.N); err != nil {
			return nil, d.fileError("count executions", err)
		}
		r.Status = engine.Status(status)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fileError("count executions", err)
	}
	return out, nil
}

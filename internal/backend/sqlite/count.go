package sqlite

import (
	"cmp"
	"context"
	"slices"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.Counter = (*DB)(nil)

// Count implements engine.Counter with one pass over the executions_count
// index (machine, state, status), which holds every column the query reads,
// so no table row is read.
func (d *DB) Count(ctx context.Context, machine string) ([]engine.CountRow, error) {
	// Grouping by the index's own order needs no sort; across machines the
	// groups of each (state, status) are summed here.
	rows, err := d.db.QueryContext(ctx, `SELECT state, status, count(*) FROM executions INDEXED BY executions_count
WHERE ?1 = '' OR machine = ?1 GROUP BY machine, state, status`, machine)
	if err != nil {
		return nil, d.fileError("count executions", err)
	}
	defer rows.Close()
	type key struct{ state, status string }
	n := map[key]int{}
	for rows.Next() {
		var k key
		var c int
		if err := rows.Scan(&k.state, &k.status, &c); err != nil {
			return nil, d.fileError("count executions", err)
		}
		n[k] += c
	}
	if err := rows.Err(); err != nil {
		return nil, d.fileError("count executions", err)
	}
	out := make([]engine.CountRow, 0, len(n))
	for k, c := range n {
		out = append(out, engine.CountRow{State: k.state, Status: engine.Status(k.status), N: c})
	}
	slices.SortFunc(out, func(x, y engine.CountRow) int {
		return cmp.Or(cmp.Compare(x.State, y.State), cmp.Compare(x.Status, y.Status))
	})
	return out, nil
}

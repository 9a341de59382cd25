package sqlite

import (
	"cmp"
	"context"
	"slices"
	"time"

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

var _ engine.HistoryCounter = (*DB)(nil)

// CountHistory implements engine.HistoryCounter: one grouped pass over the
// history table and one over the dropped table (lfsm metrics reads them
// rarely; no index is kept for it, since every transition would pay for
// one).
func (d *DB) CountHistory(ctx context.Context, since time.Time) ([]engine.HistoryCount, []engine.DropCount, error) {
	from := int64(0)
	if !since.IsZero() {
		from = nanos(since)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT machine, from_state, event, outcome, count(*) FROM history
WHERE started >= ?1 GROUP BY machine, from_state, event, outcome ORDER BY machine, from_state, event, outcome`, from)
	if err != nil {
		return nil, nil, d.fileError("count history", err)
	}
	hs := []engine.HistoryCount{}
	for rows.Next() {
		var h engine.HistoryCount
		var outcome string
		if err := rows.Scan(&h.Machine, &h.State, &h.Event, &outcome, &h.N); err != nil {
			rows.Close()
			return nil, nil, d.fileError("count history", err)
		}
		h.Outcome = engine.Outcome(outcome)
		hs = append(hs, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, d.fileError("count history", err)
	}
	rows, err = d.db.QueryContext(ctx, `SELECT machine, reason, count(*) FROM dropped WHERE at >= ?1
GROUP BY machine, reason ORDER BY machine, reason`, from)
	if err != nil {
		return nil, nil, d.fileError("count dropped messages", err)
	}
	defer rows.Close()
	ds := []engine.DropCount{}
	for rows.Next() {
		var c engine.DropCount
		var reason string
		if err := rows.Scan(&c.Machine, &reason, &c.N); err != nil {
			return nil, nil, d.fileError("count dropped messages", err)
		}
		c.Reason = engine.DropReason(reason)
		ds = append(ds, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, d.fileError("count dropped messages", err)
	}
	return hs, ds, nil
}

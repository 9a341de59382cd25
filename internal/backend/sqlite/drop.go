package sqlite

import (
	"context"
	"fmt"

	"github.com/lfsm/lfsm/internal/engine"
)

const sqlInsertDrop = `
INSERT INTO dropped (at, reason, detail, correlation_id, machine, size)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)`

// RecordDrop implements engine.DropRecorder with one insert.
func (d *DB) RecordDrop(ctx context.Context, m engine.DroppedMessage) error {
	err := d.write(ctx, false, func(ctx context.Context) error {
		return d.ws.insertDrop.bind().int64(1, nanos(m.Time)).text(2, string(m.Reason)).text(3, m.Detail).
			text(4, m.CorrelationID).text(5, m.Machine).int(6, m.Size).exec()
	})
	if err != nil {
		return d.fileError("record dropped message", err)
	}
	return nil
}

// ListDropped implements engine.DropRecorder: newest first, ties in the
// reverse order of recording (by row id).
func (d *DB) ListDropped(ctx context.Context, f engine.DropFilter) ([]engine.DroppedMessage, error) {
	q := `SELECT at, reason, detail, correlation_id, machine, size FROM dropped`
	var args []any
	if f.Machine != "" {
		q += ` WHERE machine = ?`
		args = append(args, f.Machine)
	}
	q += ` ORDER BY at DESC, id DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, d.fileError("list dropped messages", err)
	}
	defer rows.Close()
	out := []engine.DroppedMessage{}
	for rows.Next() {
		var (
			m      engine.DroppedMessage
			at     int64
			reason string
		)
		if err := rows.Scan(&at, &reason, &m.Detail, &m.CorrelationID, &m.Machine, &m.Size); err != nil {
			return nil, fmt.Errorf("list dropped messages (%s): %w", d.path, err)
		}
		m.Time, m.Reason = fromNanos(at), engine.DropReason(reason)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, d.fileError("list dropped messages", err)
	}
	return out, nil
}

package engine

import (
	"context"
	"errors"
)

// ErrExists is returned by Store.Create when the correlation id belongs to an
// execution that is not terminal (it is running or waiting).
var ErrExists = errors.New("execution exists and is not terminal")

// HistoryRow is one history entry with its position in the store's history log.
// ID increases with every entry the store writes, across all executions, so a
// reader that remembers the last ID it saw can poll for newer rows (lfsm tail).
type HistoryRow struct {
	ID            int64  `json:"id"`
	CorrelationID string `json:"correlation_id"`
	Machine       string `json:"machine"`
	HistoryEntry
}

// HistoryFilter selects rows for HistorySince (zero values match all).
type HistoryFilter struct {
	Machine       string
	CorrelationID string
	// Limit caps the number of rows returned; 0 means no cap.
	Limit int
}

// Tailer is implemented by stores that keep a global, ordered history log.
type Tailer interface {
	// HistorySince returns rows with ID > afterID matching f, lowest ID first.
	HistorySince(ctx context.Context, afterID int64, f HistoryFilter) ([]HistoryRow, error)
}

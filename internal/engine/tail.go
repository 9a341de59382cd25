package engine

import (
	"context"
	"errors"
)

// ErrExists is returned by Store.Create when the correlation id already
// names an execution, whatever its status: an id identifies one execution
// forever.
var ErrExists = errors.New("correlation id is taken by an existing execution")

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

// ErrNeedsCorrelationID: a HistoryPager asked for more than one execution's
// history.
var ErrNeedsCorrelationID = errors.New("this store pages one execution's history at a time: name the execution")

// HistoryPager is implemented by stores that keep no global, ordered
// history log, where Tailer cannot be (the DynamoDB store: an increasing id
// across executions would be a counter item that every commit writes). It
// pages one execution's history by an opaque cursor.
type HistoryPager interface {
	// HistoryPage returns f.CorrelationID's entries after cursor (empty:
	// from the first), oldest first, at most f.Limit of them (0: all), and
	// the cursor to continue from: the same one when there is nothing new.
	// Without f.CorrelationID it returns ErrNeedsCorrelationID. Row IDs
	// count the execution's entries from 1; they are not global.
	HistoryPage(ctx context.Context, cursor string, f HistoryFilter) (rows []HistoryRow, next string, err error)
}

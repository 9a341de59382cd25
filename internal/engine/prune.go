package engine

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ErrPruned: the execution was deleted by a prune and only its tombstone
// remains. Acquire returns it joined with ErrDuplicate (a late message of a
// pruned execution is stale), and the engine records the drop (DropPruned).
var ErrPruned = errors.New("execution was pruned")

// DropPruned: the message belongs to an execution that was pruned (see
// Pruner): its actions must not run again. Handle reports it as
// DropDuplicate; the record (DroppedMessage.Reason) says which.
const DropPruned DropReason = "pruned"

// PruneRequest selects the executions Prune deletes.
type PruneRequest struct {
	// Before: executions in a terminal status (done, failed, stopped) last
	// updated before it are deleted; so are dropped-message records
	// (DropRecorder) older than it.
	Before time.Time
	// Limit caps the executions one call deletes (0: no cap), so that a
	// worker pruning as it runs keeps its writes short.
	Limit int
	// Now is when the prune happens (the tombstones' time).
	Now time.Time
}

// PruneResult says what Prune deleted.
type PruneResult struct {
	Executions int `json:"executions"`
	History    int `json:"history"`
	Dropped    int `json:"dropped"`
}

// Pruner is implemented by stores that can delete finished executions (lfsm
// prune, and the retention setting a worker applies). It is optional.
type Pruner interface {
	// Prune deletes what r selects: each execution with its history,
	// keeping a tombstone of it (correlation id, machine, status and done
	// step), so its id stays refused: Create returns ErrExists, Acquire
	// ErrPruned joined with ErrDuplicate, Get ErrPruned joined with
	// ErrNotFound, History ErrNotFound, and List no longer lists it. Tombstones are small and are never deleted.
	Prune(ctx context.Context, r PruneRequest) (PruneResult, error)
}

// recordPruned records a message of a pruned execution as dropped. Failing
// to record it is an infrastructure error: the message comes back.
func (e *Engine) recordPruned(ctx context.Context, sys *SystemContext, size int, started time.Time, err error) error {
	d := DroppedMessage{Time: started, Reason: DropPruned, Detail: err.Error(), CorrelationID: boundField(sys.CorrelationID),
		Machine: boundField(sys.MachineName), Size: size}
	e.metrics.Add(MetricKey{Name: MetricDropped, Machine: d.Machine}, 1)
	if e.logEnabled {
		e.logger.LogAttrs(ctx, slog.LevelWarn, "dropped message of a pruned execution",
			slog.String("correlation_id", d.CorrelationID), slog.String("machine", d.Machine), slog.Int("steps", sys.Steps))
	}
	if e.drops == nil {
		return nil
	}
	return e.drops.RecordDrop(ctx, d)
}

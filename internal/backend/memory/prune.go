package memory

import (
	"context"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.Pruner = (*Backend)(nil)

// tombstone is what is left of a pruned execution.
type tombstone struct {
	machine string
	status  engine.Status
	done    int
}

// Prune implements engine.Pruner. History rows of pruned executions are
// blanked in place (the log keeps its ids), not freed.
func (b *Backend) Prune(ctx context.Context, r engine.PruneRequest) (engine.PruneResult, error) {
	var res engine.PruneResult
	b.smu.Lock()
	for id, rec := range b.execs {
		if r.Limit > 0 && res.Executions == r.Limit {
			break
		}
		e := &rec.e
		if !e.Status.Terminal() || !e.UpdatedAt.Before(r.Before) {
			continue
		}
		for _, i := range rec.hist {
			row := b.log.at(i)
			*row = engine.HistoryRow{ID: row.ID}
		}
		res.History += len(rec.hist)
		res.Executions++
		b.tombs[id] = tombstone{machine: e.Machine, status: e.Status, done: e.DoneStep}
		delete(b.execs, id)
	}
	b.smu.Unlock()
	b.dmu.Lock()
	kept := b.dropped.drops[:0]
	for _, d := range b.dropped.drops {
		if d.Time.Before(r.Before) {
			res.Dropped++
			continue
		}
		kept = append(kept, d)
	}
	b.dropped.drops = kept
	b.dmu.Unlock()
	return res, nil
}

package memory

import (
	"cmp"
	"context"
	"slices"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.DropRecorder = (*Backend)(nil)

// dropLog is the record of dropped messages, in the order recorded.
type dropLog struct {
	drops []engine.DroppedMessage
}

// RecordDrop implements engine.DropRecorder.
func (b *Backend) RecordDrop(ctx context.Context, d engine.DroppedMessage) error {
	b.dmu.Lock()
	b.dropped.drops = append(b.dropped.drops, d)
	b.dmu.Unlock()
	return nil
}

// ListDropped implements engine.DropRecorder: newest first, ties in the
// reverse order of recording.
func (b *Backend) ListDropped(ctx context.Context, f engine.DropFilter) ([]engine.DroppedMessage, error) {
	b.dmu.Lock()
	defer b.dmu.Unlock()
	out := []engine.DroppedMessage{}
	for i := len(b.dropped.drops) - 1; i >= 0; i-- {
		if d := b.dropped.drops[i]; f.Machine == "" || d.Machine == f.Machine {
			out = append(out, d)
		}
	}
	slices.SortStableFunc(out, func(x, y engine.DroppedMessage) int { return cmp.Compare(y.Time.UnixNano(), x.Time.UnixNano()) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

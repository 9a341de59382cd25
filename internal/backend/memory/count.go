package memory

import (
	"cmp"
	"context"
	"slices"

	"github.com/lfsm/lfsm/internal/engine"
)

var _ engine.Counter = (*Backend)(nil)

// Count implements engine.Counter by walking every execution.
func (b *Backend) Count(ctx context.Context, machine string) ([]engine.CountRow, error) {
	type key struct {
		state  string
		status engine.Status
	}
	n := map[key]int{}
	b.smu.Lock()
	for _, r := range b.execs {
		if machine == "" || r.e.Machine == machine {
			n[key{r.e.State, r.e.Status}]++
		}
	}
	b.smu.Unlock()
	out := make([]engine.CountRow, 0, len(n))
	for k, v := range n {
		out = append(out, engine.CountRow{State: k.state, Status: k.status, N: v})
	}
	slices.SortFunc(out, func(x, y engine.CountRow) int {
		return cmp.Or(cmp.Compare(x.State, y.State), cmp.Compare(x.Status, y.Status))
	})
	return out, nil
}

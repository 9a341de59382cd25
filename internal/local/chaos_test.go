package local

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// Under chaos every store and queue call may fail; Run treats those as
// infrastructure errors (retry, or redelivery after the short chaos
// visibility and lease) and still finishes the execution, in seconds.
func TestRunUnderChaos(t *testing.T) {
	s := loadExample(t)
	for _, seed := range []uint64{2, 4, 5} {
		inj := chaos.New(chaos.Config{Default: 0.3, Rand: rand.New(rand.NewPCG(seed, seed))})
		t0 := time.Now()
		res, err := Run(t.Context(), RunOptions{Spec: s, Resolve: seedActions, Backend: memory.New(memory.Options{}),
			Machine: "Example", Context: map[string]any{"arg1": 1}, Chaos: inj})
		if err != nil {
			t.Fatalf("seed %d: Run: %v", seed, err)
		}
		if res.Status != engine.StatusDone {
			t.Errorf("seed %d: status %s (%s), want done", seed, res.Status, res.Error)
		}
		if d := time.Since(t0); d > 20*time.Second {
			t.Errorf("seed %d: took %v, want seconds", seed, d)
		}
		if _, failures := inj.Stats(); len(failures) == 0 {
			t.Errorf("seed %d: no call failed; the test proves nothing", seed)
		}
		t.Logf("seed %d: %v, %s", seed, time.Since(t0), inj.Summary())
	}
}

// With every call failing, Run gives up rather than spin forever.
func TestRunUnderTotalChaosGivesUp(t *testing.T) {
	inj := chaos.New(chaos.Config{Ops: map[string]float64{chaos.OpReceive: 1}})
	_, err := Run(t.Context(), RunOptions{Spec: loadExample(t), Resolve: seedActions, Backend: memory.New(memory.Options{}),
		Machine: "Example", Context: map[string]any{"arg1": 1}, Chaos: inj})
	if err == nil {
		t.Fatal("Run succeeded with every Receive failing")
	}
}

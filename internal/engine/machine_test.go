package engine_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

func TestCompileErrors(t *testing.T) {
	ok := func(string) (fsm.Action, error) { return fsm.ActionFunc(nil), nil }
	tests := []struct {
		name    string
		machine *spec.Machine
		resolve engine.Resolver
		want    []string
	}{
		{
			name:    "no initial state",
			machine: &spec.Machine{Name: "M", States: []*spec.State{{Name: "A"}}},
			want:    []string{"no initial state"},
		},
		{
			name: "structural problems, all at once",
			machine: &spec.Machine{Name: "M", States: []*spec.State{
				{Name: "A", Initial: true, Transitions: []*spec.Transition{
					{Target: "Nowhere", Event: "go"}, {Target: "A", Event: "x"}, {Target: "A", Event: "x"}, {Target: "A", Event: spec.PseudoFinal},
				}},
				{Name: "A"},
				{Name: spec.PseudoInit},
			}},
			want: []string{
				`duplicate state "A"`,
				`state name "pseudo_init" is reserved`,
				`state "A": transition "go" targets unknown state "Nowhere"`,
				`state "A": duplicate transition for event "x"`,
				`state "A": event name "pseudo_final" is reserved`,
			},
		},
		{
			name:    "unresolvable action",
			machine: &spec.Machine{Name: "M", States: []*spec.State{{Name: "A", Initial: true, DoAction: ref("x.Missing")}}},
			resolve: func(r string) (fsm.Action, error) { return nil, errors.New("no such symbol") },
			want:    []string{`A.do_action: resolve action "x.Missing": no such symbol`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.resolve
			if r == nil {
				r = ok
			}
			_, err := engine.Compile(tt.machine, r)
			var ce *engine.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error = %v, want a *CompileError", err)
			}
			if diff := cmp.Diff(tt.want, ce.Problems); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileManyTransitions(t *testing.T) {
	// More transitions than a scan handles: the indexed lookup must agree.
	st := &spec.State{Name: "A", Initial: true, DoAction: ref("pick")}
	for _, ev := range strings.Fields("e0 e1 e2 e3 e4 e5 e6 e7 e8 e9 e10 e11") {
		st.Transitions = append(st.Transitions, &spec.Transition{Target: spec.StateName("T" + ev), Event: spec.EventName(ev)})
	}
	m := &spec.Machine{Name: "M", States: []*spec.State{st}}
	for _, tr := range st.Transitions {
		m.States = append(m.States, &spec.State{Name: tr.Target, Final: true, DoAction: ref("pick")})
	}
	pick := fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
		if c.State() == "A" {
			return "e10", nil
		}
		return "", nil
	})
	h := newHarness(t, []*engine.Machine{mustCompile(t, m, func(string) (fsm.Action, error) { return pick, nil })})
	id := h.start("M", nil)
	h.drain()
	if x := h.get(id); x.State != "Te10" || x.Status != engine.StatusDone {
		t.Errorf("execution %s in %q, want done in Te10", x.Status, x.State)
	}
}

func TestSimulateActions(t *testing.T) {
	t.Run("events list", func(t *testing.T) {
		m := exampleSpec()
		h := newHarness(t, []*engine.Machine{mustCompile(t, m, engine.SimulateActions(m, engine.SimulateOptions{Events: []string{"done", "done"}}))})
		id := h.start("Example", nil)
		if diff := cmp.Diff([][]string{lambda1, lambda2, lambda4, lambda5}, actionsOf(h.drain())); diff != "" {
			t.Errorf("simulated λ trace (-want +got):\n%s", diff)
		}
		if got := h.get(id).Status; got != engine.StatusDone {
			t.Errorf("status = %s, want done", got)
		}
	})
	t.Run("seeded random walk", func(t *testing.T) {
		walk := func() [][]string {
			m := exampleSpec()
			r := engine.SimulateActions(m, engine.SimulateOptions{Rand: rand.New(rand.NewPCG(5, 6))})
			h := newHarness(t, []*engine.Machine{mustCompile(t, m, r)})
			id := h.start("Example", nil)
			out := actionsOf(h.drain())
			if got := h.get(id).Status; got != engine.StatusDone {
				t.Errorf("status = %s, want done", got)
			}
			return out
		}
		a, b := walk(), walk()
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("same seed, different walks (-first +second):\n%s", diff)
		}
		if first := a[0]; !cmp.Equal(first, lambda1) {
			t.Errorf("walk starts with %v, want λ1", first)
		}
	})
}

func TestCounters(t *testing.T) {
	c := engine.NewCounters()
	k := engine.MetricKey{Name: engine.MetricRetry, Machine: "M", State: "S", Event: "e"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Add(k, 1)
			}
		})
	}
	wg.Wait()
	c.Add(engine.MetricKey{Name: engine.MetricRetry, Machine: "N"}, 5)
	c.Add(engine.MetricKey{Name: engine.MetricDone}, 1)
	snap := c.Snapshot()
	if snap[k] != 800 || c.Total(engine.MetricRetry) != 805 || c.Total(engine.MetricDone) != 1 {
		t.Errorf("snapshot %v, retry total %d", snap, c.Total(engine.MetricRetry))
	}
	snap[k] = 0 // a copy
	if c.Snapshot()[k] != 800 {
		t.Error("Snapshot returned the live map")
	}
}

func TestStopWhileWaitingResumesToWaiting(t *testing.T) {
	s := &script{events: []string{"", "done", ""}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	id := h.start("Example", map[string]any{"arg1": 1})
	h.drain()
	if err := h.eng.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Send(t.Context(), id, "done"); !errors.Is(err, engine.ErrNotWaiting) {
		t.Errorf("Send to a stopped execution = %v, want ErrNotWaiting", err)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if got := h.get(id).Status; got != engine.StatusWaiting {
		t.Fatalf("resumed status = %s, want waiting", got)
	}
	if err := h.eng.Send(t.Context(), id, "done"); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
	if err := h.eng.Send(t.Context(), "missing", "done"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Send to a missing execution = %v, want ErrNotFound", err)
	}
}

// TestWorkerFinishesInFlightOnCancel: cancelling the worker's context lets the
// message being handled finish (and be committed) before RunWorker returns.
func TestWorkerFinishesInFlightOnCancel(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	block := fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) {
		close(entered)
		<-release
		return "ok", nil
	})
	h := newHarness(t, []*engine.Machine{mustCompile(t, twoStates(nil), func(string) (fsm.Action, error) { return block, nil })})
	id := h.start("M", nil)
	ctx, cancel := context.WithCancel(t.Context())
	returned := make(chan error)
	go func() {
		returned <- engine.RunWorker(ctx, h.mem, h.eng, engine.WorkerOptions{Concurrency: 2, Visibility: time.Hour, Wait: 10 * time.Millisecond})
	}()
	<-entered
	cancel()
	select {
	case err := <-returned:
		t.Fatalf("RunWorker returned %v while a message was in flight", err)
	default:
	}
	close(release)
	if err := <-returned; err != nil {
		t.Errorf("RunWorker = %v, want nil", err)
	}
	if x := h.get(id); x.Status != engine.StatusDone {
		t.Errorf("status = %s, want done: the in-flight message was abandoned", x.Status)
	}
	if n := h.mem.Len(); n != 0 {
		t.Errorf("%d messages left unacknowledged", n)
	}
}

// TestWorkerOnHandled: the worker reports every handled delivery with its
// result, so lfsm dev can print a λ line per step.
func TestWorkerOnHandled(t *testing.T) {
	ok := fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "ok", nil })
	h := newHarness(t, []*engine.Machine{mustCompile(t, twoStates(nil), func(string) (fsm.Action, error) { return ok, nil })})
	id := h.start("M", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var mu sync.Mutex
	var outcomes []engine.Outcome
	returned := make(chan error)
	go func() {
		returned <- engine.RunWorker(ctx, h.mem, h.eng, engine.WorkerOptions{Wait: 10 * time.Millisecond,
			OnHandled: func(d engine.Delivery, r engine.Result, err error, took time.Duration) {
				if err != nil || r.CorrelationID != id || len(d.Payload) == 0 || took < 0 {
					t.Errorf("OnHandled(%q, %+v, %v, %s)", d.Payload, r, err, took)
				}
				mu.Lock()
				outcomes = append(outcomes, r.Outcome)
				mu.Unlock()
			}})
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); h.get(id).Status != engine.StatusDone && time.Now().Before(deadline); {
		<-tick.C
	}
	cancel()
	if err := <-returned; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) == 0 || outcomes[len(outcomes)-1] != engine.OutcomeDone {
		t.Errorf("outcomes reported %v, want the steps ending with done", outcomes)
	}
}

package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// harness runs an engine on the memory backend with a fake clock, one message
// at a time, so that tests see every invocation.
type harness struct {
	t        *testing.T
	clock    *storetest.Clock
	mem      *memory.Backend
	eng      *engine.Engine
	counters *engine.Counters
}

type harnessOption func(*engine.Options)

func newHarness(t *testing.T, machines []*engine.Machine, opts ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, clock: storetest.NewClock(epoch), counters: engine.NewCounters()}
	h.mem = memory.New(memory.Options{Clock: h.clock.Now})
	o := engine.Options{
		Machines: machines,
		Store:    h.mem,
		Queue:    h.mem,
		Metrics:  h.counters,
		Clock:    h.clock,
		Rand:     rand.New(rand.NewPCG(7, 11)),
	}
	for _, f := range opts {
		f(&o)
	}
	eng, err := engine.New(o)
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	h.eng = eng
	return h
}

// next receives one visible message, or reports false.
func (h *harness) next() (engine.Delivery, bool) {
	h.t.Helper()
	ds, err := h.mem.Receive(h.t.Context(), 1, time.Hour, 0)
	if err != nil {
		h.t.Fatalf("receive: %v", err)
	}
	if len(ds) == 0 {
		return engine.Delivery{}, false
	}
	return ds[0], true
}

// step handles one visible message and acknowledges it like the worker does
// (in the step's commit when the engine's store is h.mem).
func (h *harness) step() (engine.Result, bool) {
	h.t.Helper()
	d, ok := h.next()
	if !ok {
		return engine.Result{}, false
	}
	res, err := h.eng.HandleDelivery(h.t.Context(), h.mem, d)
	if err != nil {
		h.t.Fatalf("HandleDelivery: %v", err)
	}
	if res.Acked == (res.Dropped == engine.DropLeaseHeld) {
		h.t.Fatalf("HandleDelivery = %+v: acked iff not lease held", res)
	}
	return res, true
}

// drain handles messages until none is visible, advancing the clock past
// retry delays. It returns the results of the processed (not dropped) ones.
func (h *harness) drain() []engine.Result {
	h.t.Helper()
	var out []engine.Result
	for i := 0; ; i++ {
		if i > 10000 {
			h.t.Fatal("drain: too many messages")
		}
		res, ok := h.step()
		if !ok {
			if h.mem.Len() == 0 {
				return out
			}
			h.clock.Advance(engine.MaxRetryDelay)
			continue
		}
		if res.Dropped == "" {
			out = append(out, res)
		}
	}
}

func (h *harness) start(machine string, ctx map[string]any) string {
	h.t.Helper()
	id, err := h.eng.Start(h.t.Context(), engine.StartRequest{Machine: machine, Context: ctx})
	if err != nil {
		h.t.Fatalf("Start: %v", err)
	}
	return id
}

func (h *harness) get(id string) engine.Execution {
	h.t.Helper()
	x, err := h.mem.Get(h.t.Context(), id)
	if err != nil {
		h.t.Fatalf("get %s: %v", id, err)
	}
	return x
}

func actionsOf(rs []engine.Result) [][]string {
	out := make([][]string, len(rs))
	for i, r := range rs {
		out[i] = r.Actions
	}
	return out
}

// script hands out events to do actions in order, and logs every action run.
type script struct {
	mu     sync.Mutex
	events []string
	ran    []string
}

func (s *script) log(c *fsm.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ran = append(s.ran, c.State()+"."+string(c.Facts().Kind))
}

func (s *script) event() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) == 0 {
		return ""
	}
	ev := s.events[0]
	s.events = s.events[1:]
	return ev
}

func ref(s string) *spec.ActionRef { return &spec.ActionRef{Ref: s} }

// exampleSpec is the seed's Example machine.
func exampleSpec() *spec.Machine {
	return &spec.Machine{Name: "Example", States: []*spec.State{
		{Name: "FirstState", Initial: true, EntryAction: ref("path.to.Action1"), DoAction: ref("path.to.Action2"), ExitAction: ref("path.to.Action3"),
			Transitions: []*spec.Transition{{Target: "SecondState", Event: "done"}, {Target: "ThirdState", Event: "skip"}}},
		{Name: "SecondState", EntryAction: ref("path.to.Action4"), DoAction: ref("path.to.Action5"), ExitAction: ref("path.to.Action6"),
			Transitions: []*spec.Transition{{Target: "ThirdState", Event: "done"}}},
		{Name: "ThirdState", Final: true, EntryAction: ref("path.to.Action7"), DoAction: ref("path.to.Action8"), ExitAction: ref("path.to.Action9")},
	}}
}

// exampleActions resolves the Example's references: Action2 computes mff from
// arg1, Action5 reads it back into "seen"; do actions return the script's events.
func exampleActions(s *script) engine.Resolver {
	return func(r string) (fsm.Action, error) {
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			s.log(c)
			switch r {
			case "path.to.Action2":
				arg1, ok := c.Int("arg1")
				if !ok {
					return "", fsm.Permanent(fmt.Errorf("arg1 missing"))
				}
				c.Set("mff", fmt.Sprintf("mff(%d)", arg1))
			case "path.to.Action5":
				mff, _ := c.String("mff")
				c.Set("seen", mff)
			}
			if c.Facts().Kind == fsm.KindDo {
				return s.event(), nil
			}
			return "", nil
		}), nil
	}
}

func mustCompile(t testing.TB, m *spec.Machine, r engine.Resolver) *engine.Machine {
	t.Helper()
	cm, err := engine.Compile(m, r)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return cm
}

// funcs resolves references through a map of action functions.
func funcs(m map[string]fsm.ActionFunc) engine.Resolver {
	return func(r string) (fsm.Action, error) {
		f, ok := m[r]
		if !ok {
			return nil, fmt.Errorf("no action %q", r)
		}
		return f, nil
	}
}

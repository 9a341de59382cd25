package ui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// clock is a settable clock shared by the engine and the memory queue, so
// that retry delays pass without waiting.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a memory store with known executions of testdata/orders.yaml,
// run by a real engine with the actions below.
type fixture struct {
	spec *spec.Spec
	// backend is the queue, and the store unless store says otherwise.
	backend *memory.Backend
	store   engine.Store
	engine  *engine.Engine
	clock   *clock
	// ids by what the fixture made of them.
	ids map[string]string
}

// operator is what the CLI passes: the engine's own operator calls.
type operator struct{ e *engine.Engine }

func (o operator) Stop(ctx context.Context, id string) error        { return o.e.Stop(ctx, id) }
func (o operator) Resume(ctx context.Context, id string) error      { return o.e.Resume(ctx, id) }
func (o operator) Send(ctx context.Context, id, event string) error { return o.e.Send(ctx, id, event) }

func loadOrders(t testing.TB) *spec.Spec {
	t.Helper()
	s, diags := spec.Load("testdata/orders.yaml")
	if diags.HasErrors() {
		t.Fatalf("load spec: %v", diags)
	}
	return s
}

func newFixture(t testing.TB) *fixture { return newFixtureOn(t, nil) }

// newFixtureOn runs the engine on the store storeOn makes of the memory
// queue (nil: the memory backend is the store too).
func newFixtureOn(t testing.TB, storeOn func(*memory.Backend) engine.Store) *fixture {
	t.Helper()
	f := &fixture{spec: loadOrders(t), clock: &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, ids: map[string]string{}}
	f.backend = memory.New(memory.Options{Clock: f.clock.Now})
	f.store = f.backend
	var queue engine.Queue = f.backend
	if storeOn != nil {
		f.store = storeOn(f.backend)
		queue = f.store.(engine.Queue)
	}
	actions := map[string]fsm.Action{
		"Route": fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			r, _ := c.String("route")
			return r, nil
		}),
		"Ask": fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			c.Set("asked", true)
			return "", nil
		}),
		"Fail": fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			return "", errors.New("warehouse unreachable")
		}),
		"Ship": fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			c.Set("shipped", true)
			return "", nil
		}),
	}
	m, err := engine.Compile(f.spec.Machines[0], func(ref string) (fsm.Action, error) {
		return actions[ref[strings.LastIndex(ref, ".")+1:]], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.engine, err = engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: f.store, Queue: queue, Clock: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) start(t testing.TB, name string, ctx map[string]any) string {
	t.Helper()
	id, err := f.engine.Start(t.Context(), engine.StartRequest{Machine: "Orders", Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		f.ids[name] = id
	}
	f.clock.advance(time.Millisecond) // newest first is by creation time
	return id
}

// drain handles every message due, moving the clock past retry delays,
// until the queue is empty.
func (f *fixture) drain(t testing.TB) {
	t.Helper()
	ctx := t.Context()
	for f.backend.Len() > 0 {
		ds, err := f.backend.Receive(ctx, 10, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			f.clock.advance(engine.MaxRetryDelay + time.Second)
			continue
		}
		for _, d := range ds {
			if _, err := f.engine.HandleDelivery(ctx, f.backend, d); err != nil {
				t.Fatalf("handle: %v", err)
			}
		}
	}
}

// known makes one execution of every status: done, waiting (in Approval),
// failed after its retries (in Broken), stopped, and running (its start
// message never handled), plus a waiting one with a large context.
func (f *fixture) known(t testing.TB) {
	t.Helper()
	f.start(t, "done", map[string]any{"route": "auto"})
	f.start(t, "waiting", map[string]any{"route": "needs_approval", "order": 42})
	f.start(t, "failed", map[string]any{"route": "broken"})
	f.start(t, "stopped", map[string]any{"route": "needs_approval"})
	f.start(t, "large", map[string]any{"route": "needs_approval", "blob": strings.Repeat("x", 3*MaxContextBytes)})
	f.drain(t)
	if err := f.engine.Stop(t.Context(), f.ids["stopped"]); err != nil {
		t.Fatal(err)
	}
	f.start(t, "running", map[string]any{"route": "auto"})
}

package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// errCrashed is what every call returns once the simulated process died.
var errCrashed = errors.New("process crashed")

// crashing counts the calls a process makes to its store and queue and
// fails every call from the after-th on: the process died there.
type crashing struct {
	after int
	calls atomic.Int32
}

func (c *crashing) dead() bool { return int(c.calls.Add(1)) > c.after }

type crashStore struct {
	engine.Store
	c *crashing
}

func (s crashStore) Create(ctx context.Context, x engine.Execution) error {
	if s.c.dead() {
		return errCrashed
	}
	return s.Store.Create(ctx, x)
}
func (s crashStore) Acquire(ctx context.Context, r engine.AcquireRequest) (engine.Lease, error) {
	if s.c.dead() {
		return engine.Lease{}, errCrashed
	}
	return s.Store.Acquire(ctx, r)
}
func (s crashStore) Commit(ctx context.Context, x engine.Commit) error {
	if s.c.dead() {
		return errCrashed
	}
	return s.Store.Commit(ctx, x)
}
func (s crashStore) Get(ctx context.Context, id string) (engine.Execution, error) {
	if s.c.dead() {
		return engine.Execution{}, errCrashed
	}
	return s.Store.Get(ctx, id)
}
func (s crashStore) SetStatus(ctx context.Context, id string, st engine.Status, reason string, now time.Time) error {
	if s.c.dead() {
		return errCrashed
	}
	return s.Store.SetStatus(ctx, id, st, reason, now)
}
func (s crashStore) Reopen(ctx context.Context, r engine.Reopen) error {
	if s.c.dead() {
		return errCrashed
	}
	return s.Store.Reopen(ctx, r)
}
func (s crashStore) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	if s.c.dead() {
		return errCrashed
	}
	return s.Store.Renew(ctx, r)
}

type crashQueue struct {
	q engine.Queue
	c *crashing
}

func (q crashQueue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if q.c.dead() {
		return "", errCrashed
	}
	return q.q.Send(ctx, m)
}

// chainMachine is A -> B -> C (final, with an exit action), one remote
// transition per step; fail, when set, decides whether B's do action fails
// for good.
func chainMachine(t *testing.T, fail func() bool) *engine.Machine {
	t.Helper()
	m := &spec.Machine{Name: "Chain", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", DoAction: ref("b.Do"), Transitions: []*spec.Transition{{Target: "C", Event: "go"}}},
		{Name: "C", Final: true, ExitAction: ref("c.Exit")},
	}}
	do := func(ctx context.Context, c *fsm.Context) (string, error) { return "go", nil }
	return mustCompile(t, m, funcs(map[string]fsm.ActionFunc{
		"a.Do": do,
		"b.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
			if fail != nil && fail() {
				return "", fsm.Permanent(errors.New("b failed"))
			}
			return "go", nil
		},
		"c.Exit": func(ctx context.Context, c *fsm.Context) (string, error) { return "", nil },
	}))
}

// split is a store and a queue that are not one backend (as on AWS, with SQS),
// both in memory, on one fake clock.
type split struct {
	t     *testing.T
	clock *storetest.Clock
	store *memory.Backend
	queue *memory.Backend
	m     *engine.Machine
}

func newSplit(t *testing.T, m *engine.Machine) *split {
	c := storetest.NewClock(epoch)
	return &split{t: t, clock: c, store: memory.New(memory.Options{Clock: c.Now}), queue: memory.New(memory.Options{Clock: c.Now}), m: m}
}

// engine returns an engine of a process that dies after `after` calls
// (never with after < 0).
func (s *split) engine(after int) *engine.Engine {
	var store engine.Store = s.store
	var queue engine.Queue = s.queue
	if after >= 0 {
		c := &crashing{after: after}
		store, queue = crashStore{s.store, c}, crashQueue{s.queue, c}
	}
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{s.m}, Store: store, Queue: queue,
		Clock: s.clock, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		s.t.Fatal(err)
	}
	return e
}

// work handles what the queue delivers until e fails (it crashed) or nothing
// is left to deliver within a minute of fake time.
func (s *split) work(e *engine.Engine) error {
	for range 1000 {
		ds, err := s.queue.Receive(s.t.Context(), 1, time.Minute, 0)
		if err != nil {
			s.t.Fatal(err)
		}
		if len(ds) == 0 {
			if s.queue.Len() == 0 {
				return nil
			}
			s.clock.Advance(time.Minute)
			continue
		}
		if _, err := e.HandleDelivery(s.t.Context(), s.queue, ds[0]); err != nil {
			return err
		}
	}
	s.t.Fatal("work: too many messages")
	return nil
}

// recover runs a healthy process: it works, and repairs every grace, until
// the execution is finished or a few repairs made no difference.
func (s *split) recover(id string) engine.Execution {
	e := s.engine(-1)
	for range 5 {
		if err := s.work(e); err != nil {
			s.t.Fatalf("healthy worker: %v", err)
		}
		x, err := s.store.Get(s.t.Context(), id)
		if err != nil || x.Status != engine.StatusRunning {
			return x
		}
		s.clock.Advance(engine.DefaultRepairGrace + engine.DefaultLeaseTimeout)
		if _, err := e.Repair(s.t.Context(), engine.RepairOptions{}); err != nil {
			s.t.Fatalf("Repair: %v", err)
		}
	}
	x, _ := s.store.Get(s.t.Context(), id)
	return x
}

// TestSplitStoreNeverStranded: on a store that is not the queue, a process
// that dies between any two of its calls (start, steps) leaves nothing that
// a healthy worker with Repair cannot finish. Before Repair, a death between
// Create and the start message's Send (or a lost send and commit) left the
// execution running with nothing in flight, forever.
func TestSplitStoreNeverStranded(t *testing.T) {
	// A whole run is Create, Send, and per step Acquire, Send, Commit.
	for after := 0; after < 12; after++ {
		t.Run(fmt.Sprintf("dies after %d calls", after), func(t *testing.T) {
			s := newSplit(t, chainMachine(t, nil))
			id := engine.NewCorrelationID()
			if _, err := s.engine(after).Start(t.Context(), engine.StartRequest{Machine: "Chain", CorrelationID: id}); err == nil {
				s.work(s.engine(after - 2)) // the same process carries on (its calls so far: Create, Send)
			}
			if _, err := s.store.Get(t.Context(), id); errors.Is(err, engine.ErrNotFound) {
				return // died before Create: nothing to finish
			}
			x := s.recover(id)
			if x.Status != engine.StatusDone {
				t.Fatalf("status %s (%s), want done", x.Status, x.LastError)
			}
		})
	}
}

// TestSplitStoreResumeNeverStranded: a resume that dies between its reopen
// and its send is finished by Repair.
func TestSplitStoreResumeNeverStranded(t *testing.T) {
	for after := 0; after < 3; after++ {
		t.Run(fmt.Sprintf("dies after %d calls", after), func(t *testing.T) {
			failing := atomic.Bool{}
			failing.Store(true)
			s := newSplit(t, chainMachine(t, failing.Load))
			id, err := s.engine(-1).Start(t.Context(), engine.StartRequest{Machine: "Chain"})
			if err != nil {
				t.Fatal(err)
			}
			s.work(s.engine(-1))
			if x, _ := s.store.Get(t.Context(), id); x.Status != engine.StatusFailed {
				t.Fatalf("status %s, want failed before the resume", x.Status)
			}
			failing.Store(false)
			s.engine(after).Resume(t.Context(), id) // Get, Reopen, Send
			if x := s.recover(id); x.Status != engine.StatusDone && !(after < 2 && x.Status == engine.StatusFailed) {
				t.Fatalf("status %s (%s), want done (or still failed if it died before the reopen)", x.Status, x.LastError)
			}
		})
	}
}

// TestRepairNeverEarly: a delayed start message is not re-sent before its
// due time plus the grace, however long nothing happens before.
func TestRepairNeverEarly(t *testing.T) {
	s := newSplit(t, chainMachine(t, nil))
	id := engine.NewCorrelationID()
	e := s.engine(1) // Create, then dies before the Send
	if _, err := e.Start(t.Context(), engine.StartRequest{Machine: "Chain", CorrelationID: id, Context: nil}); err == nil {
		t.Fatal("Start succeeded in a process that died")
	}
	healthy := s.engine(-1)
	grace := time.Minute
	for _, d := range []time.Duration{0, grace - time.Second} {
		s.clock.Advance(d)
		if n, err := healthy.Repair(t.Context(), engine.RepairOptions{Grace: grace}); err != nil || n != 0 {
			t.Fatalf("Repair %v after the start = %d, %v; want nothing re-sent yet", d, n, err)
		}
	}
	s.clock.Advance(time.Second)
	if n, err := healthy.Repair(t.Context(), engine.RepairOptions{Grace: grace}); err != nil || n != 1 {
		t.Fatalf("Repair at due + grace = %d, %v; want the start re-sent", n, err)
	}
	if x := s.recover(id); x.Status != engine.StatusDone {
		t.Fatalf("status %s, want done", x.Status)
	}
}

// TestRetryBackoffNotRepairedEarly: a retry's backoff is part of its due
// time, so a long backoff is not cut short by Repair.
func TestRetryBackoffNotRepairedEarly(t *testing.T) {
	var fails atomic.Int32
	fails.Store(1)
	m := &spec.Machine{Name: "Flaky", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		if fails.Add(-1) >= 0 {
			return "", errors.New("flaky")
		}
		return "go", nil
	}}))
	s := newSplit(t, cm)
	e := s.engine(-1)
	id, err := e.Start(t.Context(), engine.StartRequest{Machine: "Flaky"})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := s.queue.Receive(t.Context(), 1, time.Minute, 0)
	res, err := e.HandleDelivery(t.Context(), s.queue, ds[0])
	if err != nil || res.Outcome != engine.OutcomeRetry {
		t.Fatalf("first attempt = %+v, %v; want a retry", res, err)
	}
	x, _ := s.store.Get(t.Context(), id)
	if want := s.clock.Now().Add(res.Delay); !x.DueAt.Equal(want) {
		t.Errorf("due at %v after the retry, want now + its delay (%v)", x.DueAt, want)
	}
	s.clock.Advance(x.DueAt.Sub(s.clock.Now()) - time.Nanosecond)
	if n, _ := e.Repair(t.Context(), engine.RepairOptions{Grace: time.Nanosecond}); n != 0 {
		t.Errorf("Repair before the retry is due re-sent %d", n)
	}
}

// TestResumeRunningWithNothingInFlight: lfsm resume accepts an execution
// left running with no message and no lease (a start that died between its
// two writes), and refuses one that is only in progress.
func TestResumeRunningWithNothingInFlight(t *testing.T) {
	s := newSplit(t, chainMachine(t, nil))
	id := engine.NewCorrelationID()
	s.engine(1).Start(t.Context(), engine.StartRequest{Machine: "Chain", CorrelationID: id})
	// The store is not the queue: the message may be on its way until the
	// repair grace has passed.
	if err := s.engine(-1).Resume(t.Context(), id); !errors.Is(err, engine.ErrNotResumable) {
		t.Errorf("Resume right after the start = %v, want ErrNotResumable (the message may be on its way)", err)
	}
	s.clock.Advance(engine.DefaultRepairGrace)
	if err := s.engine(-1).Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume of a stranded execution: %v", err)
	}
	if err := s.work(s.engine(-1)); err != nil {
		t.Fatal(err)
	}
	if x, _ := s.store.Get(t.Context(), id); x.Status != engine.StatusDone {
		t.Errorf("status %s after the resume, want done", x.Status)
	}

	// On a backend that is store and queue, a queued message is in flight.
	h := newHarness(t, []*engine.Machine{chainMachine(t, nil)})
	id = h.start("Chain", nil)
	if err := h.eng.Resume(t.Context(), id); !errors.Is(err, engine.ErrNotResumable) || !strings.Contains(err.Error(), "queued") {
		t.Errorf("Resume with its message queued = %v, want ErrNotResumable naming the queued message", err)
	}
	d, _ := h.next()
	if _, err := h.mem.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "Chain", Step: 0,
		Now: h.clock.Now(), Expires: h.clock.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	h.mem.Ack(t.Context(), d.Receipt)
	if err := h.eng.Resume(t.Context(), id); !errors.Is(err, engine.ErrNotResumable) || !strings.Contains(err.Error(), "lease") {
		t.Errorf("Resume with a live lease = %v, want ErrNotResumable naming the lease", err)
	}
	h.clock.Advance(time.Minute)
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Errorf("Resume once the lease expired and nothing is queued: %v", err)
	}
	h.drain()
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status %s, want done", got)
	}
}

// TestStartAndResumeAreOneWrite: on a store that is also the queue, Start
// and Resume write the execution and its message together (CreateSend,
// ReopenSend), so no crash can come between them.
func TestStartAndResumeAreOneWrite(t *testing.T) {
	var failing atomic.Bool
	var cnt *counting
	h := newHarness(t, []*engine.Machine{chainMachine(t, failing.Load)}, func(o *engine.Options) {
		cnt = &counting{Store: o.Store, q: o.Queue}
		o.Store, o.Queue = oneWrite{cnt}, oneWrite{cnt}
	})
	failing.Store(true)
	id, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "Chain"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CreateSend"}, cnt.calls); diff != "" {
		t.Errorf("Start's backend calls (-want +got):\n%s", diff)
	}
	h.drain()
	failing.Store(false)
	cnt.calls = nil
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Get", "ReopenSend"}, cnt.calls); diff != "" {
		t.Errorf("Resume's backend calls (-want +got):\n%s", diff)
	}
}

// oneWrite is counting with the memory backend's one-write operator calls
// (a comparable value, so the engine sees store and queue as one).
type oneWrite struct{ *counting }

func (o oneWrite) CreateSend(ctx context.Context, x engine.Execution, out engine.OutMessage) (string, error) {
	o.calls = append(o.calls, "CreateSend")
	return o.Store.(engine.CreateSender).CreateSend(ctx, x, out)
}

func (o oneWrite) ReopenSend(ctx context.Context, r engine.Reopen, out engine.OutMessage) (string, error) {
	o.calls = append(o.calls, "ReopenSend")
	return o.Store.(engine.ReopenSender).ReopenSend(ctx, r, out)
}

// TestMaxStepsRefusedAtAcquire: a message whose steps are already beyond
// max_steps fails the execution before any action runs.
func TestMaxStepsRefusedAtAcquire(t *testing.T) {
	ran := 0
	m := &spec.Machine{Name: "Capped", MaxSteps: new(int), States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "A", Event: "go"}}},
	}}
	*m.MaxSteps = 3
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		ran++
		return "go", nil
	}}))
	h := newHarness(t, []*engine.Machine{cm})
	msg := engine.Message{Version: engine.WireVersion, System: engine.SystemContext{MachineName: "Capped", CurrentState: "A",
		CurrentEvent: "go", CorrelationID: "foreign", Steps: 7}, User: map[string]any{}}
	payload, err := engine.EncodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.eng.Handle(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if ran != 0 || res.Outcome != engine.OutcomeFailed || !strings.Contains(res.Err.Error(), "max_steps") {
		t.Errorf("Handle = %+v (%d actions ran); want failed naming max_steps, no action run", res, ran)
	}
	if x := h.get("foreign"); x.Status != engine.StatusFailed {
		t.Errorf("status %s, want failed", x.Status)
	}
}

// TestTakeoversBounded: a step whose holder keeps disappearing (here: it
// acquires and never commits, as a process that crashes in the action would)
// fails the execution after MaxTakeovers takeovers instead of running forever.
func TestTakeoversBounded(t *testing.T) {
	runs := 0
	m := &spec.Machine{Name: "Crashy", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		runs++
		return "go", nil
	}}))
	h := newHarness(t, []*engine.Machine{cm})
	id := h.start("Crashy", nil)
	d, _ := h.next()
	// The holder dies after acquiring, every time.
	for range engine.DefaultMaxTakeovers + 1 {
		if _, err := h.mem.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "Crashy", Step: 0,
			Now: h.clock.Now(), Expires: h.clock.Now().Add(engine.DefaultLeaseTimeout)}); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(engine.DefaultLeaseTimeout)
	}
	res, err := h.eng.Handle(t.Context(), d.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if runs != 0 || res.Outcome != engine.OutcomeFailed || !strings.Contains(res.Err.Error(), "taken over") {
		t.Errorf("Handle after %d takeovers = %+v (%d runs); want failed, naming the takeovers", engine.DefaultMaxTakeovers+1, res, runs)
	}
	if x := h.get(id); x.Status != engine.StatusFailed {
		t.Errorf("status %s, want failed", x.Status)
	}
}

// TestHeartbeatRenewsLongActions: an action that runs longer than its lease
// keeps it (the engine renews it), so a duplicate delivery meanwhile is
// refused instead of running the step a second time. Before heartbeats the
// duplicate took the expired lease over: an action of 1.5 s with a 1 s lease
// ran 40 times in 40 s and never committed.
func TestHeartbeatRenewsLongActions(t *testing.T) {
	const lease = 300 * time.Millisecond
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	var runs atomic.Int32
	m := &spec.Machine{Name: "Slow", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		if runs.Add(1) > 1 {
			return "go", nil // a second run (the bug): do not block
		}
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
		return "go", nil
	}}))
	mem := memory.New(memory.Options{})
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: mem, Queue: mem, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Start(t.Context(), engine.StartRequest{Machine: "Slow"})
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := mem.Receive(t.Context(), 1, time.Hour, 0)
	var wg sync.WaitGroup
	var first engine.Result
	wg.Go(func() { first, _ = e.Handle(context.WithoutCancel(t.Context()), ds[0].Payload) })
	<-started
	// Wait (real time: the lease is real) until the lease would have expired
	// three times over without renewals, then deliver the message again.
	granted := time.Now()
	renewals := 0
	var last time.Time
	for time.Since(granted) < 3*lease {
		x, err := mem.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !x.LeaseExpires.Equal(last) {
			renewals++
			last = x.LeaseExpires
		}
		time.Sleep(5 * time.Millisecond) // polling the store's lease; not a wait for an outcome
	}
	dup, err := e.Handle(t.Context(), ds[0].Payload)
	close(release)
	wg.Wait()
	if err != nil || dup.Dropped != engine.DropLeaseHeld {
		t.Errorf("duplicate during the long action = %+v, %v; want dropped, lease held", dup, err)
	}
	if first.Outcome != engine.OutcomeNext || first.Dropped != "" {
		t.Errorf("long action's step = %+v, want committed (next)", first)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the action ran %d times, want once", n)
	}
	if renewals < 2 {
		t.Errorf("saw %d lease expiries while the action ran, want renewals", renewals)
	}
}

// TestLostLeaseCancelsTheAction: a renewal refused on the fence (another
// worker took the step over) cancels the actions' context with ErrLeaseLost,
// and the step commits and sends nothing.
func TestLostLeaseCancelsTheAction(t *testing.T) {
	const lease = 90 * time.Millisecond
	cause := make(chan error, 1)
	started := make(chan struct{}, 1)
	m := &spec.Machine{Name: "Slow", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		started <- struct{}{}
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return "", ctx.Err()
	}}))
	mem := memory.New(memory.Options{})
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: mem, Queue: mem, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := e.Start(t.Context(), engine.StartRequest{Machine: "Slow"})
	ds, _ := mem.Receive(t.Context(), 1, time.Hour, 0)
	done := make(chan engine.Result, 1)
	go func() {
		r, _ := e.Handle(context.WithoutCancel(t.Context()), ds[0].Payload)
		done <- r
	}()
	<-started
	// Another worker takes the step over (as after a freeze longer than the
	// lease): a new fence, so the holder's next renewal is refused.
	x, _ := mem.Get(t.Context(), id)
	if _, err := mem.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "Slow", Step: 0,
		Now: x.LeaseExpires, Expires: x.LeaseExpires.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, engine.ErrLeaseLost) {
			t.Errorf("action's context cause = %v, want ErrLeaseLost", err)
		}
	case <-time.After(30 * time.Second): // a guard, not a wait: the renewal is due after lease/3
		t.Fatal("the action's context was not cancelled after its lease was taken over")
	}
	if r := <-done; r.Dropped != engine.DropFenceLost {
		t.Errorf("Handle = %+v, want dropped (fence lost)", r)
	}
	if n := mem.Len(); n != 1 { // the delivered start message, not acknowledged by Handle
		t.Errorf("%d messages queued, want nothing sent by the step that lost its lease", n-1)
	}
}

// TestStopDuringBackoffKeepsRetryBudget: stop during a retry's backoff,
// resume, and the resumed chain gets every attempt; the pre-stop retry is
// refused. Before, the stale retry ran first and the resumed chain got
// attempts 0, 2, 3 instead of four.
func TestStopDuringBackoffKeepsRetryBudget(t *testing.T) {
	var attempts []string
	m := &spec.Machine{Name: "Flaky", MaxRetries: new(int), States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.Do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	*m.MaxRetries = 3
	cm := mustCompile(t, m, funcs(map[string]fsm.ActionFunc{"a.Do": func(ctx context.Context, c *fsm.Context) (string, error) {
		attempts = append(attempts, fmt.Sprint(c.Facts().Retries))
		return "", errors.New("flaky")
	}}))
	h := newHarness(t, []*engine.Machine{cm})
	id := h.start("Flaky", nil)
	if res, _ := h.step(); res.Outcome != engine.OutcomeRetry {
		t.Fatalf("attempt 0 = %+v, want a retry", res)
	}
	// Stopped while the retry waits out its backoff, resumed at once.
	if err := h.eng.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	attempts = attempts[:0]
	// Queues do not promise an order (SQS does not): the stale retry comes first.
	h.clock.Advance(engine.RetryDelayBound(1))
	ds, err := h.mem.Receive(t.Context(), 10, time.Hour, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("received %d messages, %v; want the stale retry and the resumed message", len(ds), err)
	}
	if msg, _ := engine.DecodeMessage(ds[0].Payload); msg.System.RestartedAt != 0 {
		ds[0], ds[1] = ds[1], ds[0]
	}
	for _, d := range ds {
		if _, err := h.eng.HandleDelivery(t.Context(), h.mem, d); err != nil {
			t.Fatal(err)
		}
	}
	h.drain()
	if diff := cmp.Diff([]string{"0", "1", "2", "3"}, attempts); diff != "" {
		t.Errorf("attempts of the resumed chain (-want +got):\n%s", diff)
	}
	if x := h.get(id); x.Status != engine.StatusFailed {
		t.Errorf("status %s, want failed after the full budget", x.Status)
	}
}

// TestWorkerRepairsStranded: RunWorker calls Repair periodically, so an
// execution left running with nothing in flight (created, its start message
// never sent) is finished by a running worker.
func TestWorkerRepairsStranded(t *testing.T) {
	mem := memory.New(memory.Options{})
	cm := chainMachine(t, nil)
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: mem, Queue: mem, LeaseTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start, _ := engine.EncodeMessage(engine.Message{Version: engine.WireVersion, System: engine.SystemContext{MachineName: "Chain",
		CurrentState: spec.PseudoInit, CurrentEvent: spec.PseudoInit, CorrelationID: "stranded"}, User: map[string]any{}})
	past := time.Now().Add(-time.Minute)
	if err := mem.Create(t.Context(), engine.Execution{CorrelationID: "stranded", Machine: "Chain", Checkpoint: start,
		DueAt: past, CreatedAt: past}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- engine.RunWorker(ctx, mem, e, engine.WorkerOptions{Wait: 10 * time.Millisecond, RepairEvery: 10 * time.Millisecond})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		x, err := mem.Get(t.Context(), "stranded")
		if err != nil {
			t.Fatal(err)
		}
		if x.Status == engine.StatusDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s after 30 s, want done (repaired by the worker)", x.Status)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// cancelOnCreate cancels the caller's context once Create is in (a Ctrl-C
// right after the store write of a start).
type cancelOnCreate struct {
	engine.Store
	cancel context.CancelFunc
}

func (s cancelOnCreate) Create(ctx context.Context, x engine.Execution) error {
	err := s.Store.Create(ctx, x)
	s.cancel()
	return err
}

// ctxQueue fails a send on a cancelled context, as a network client does.
type ctxQueue struct{ q engine.Queue }

func (q ctxQueue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return q.q.Send(ctx, m)
}

// TestStartInterruptedAfterCreate: Ctrl-C during a batch of starts finishes
// the start in flight (its message is sent) instead of leaving a spurious
// failed execution ("start message not sent ... context canceled").
func TestStartInterruptedAfterCreate(t *testing.T) {
	s := newSplit(t, chainMachine(t, nil))
	ctx, cancel := context.WithCancel(t.Context())
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{s.m}, Store: cancelOnCreate{s.store, cancel},
		Queue: ctxQueue{s.queue}, Clock: s.clock})
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Start(ctx, engine.StartRequest{Machine: "Chain"})
	if err != nil {
		t.Fatalf("Start interrupted after its Create: %v, want the start finished", err)
	}
	if n := s.queue.Len(); n != 1 {
		t.Errorf("%d messages queued, want the start message", n)
	}
	if x, _ := s.store.Get(t.Context(), id); x.Status != engine.StatusRunning {
		t.Errorf("status %s, want running", x.Status)
	}
}

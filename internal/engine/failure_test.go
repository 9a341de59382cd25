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

// flaky fails its first n calls with err (or panics when err is nil).
type flaky struct {
	mu    sync.Mutex
	n     int
	err   error
	calls int
}

func (f *flaky) Execute(_ context.Context, c *fsm.Context) (string, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.n
	f.mu.Unlock()
	// The context an attempt mutates must not leak into its retry.
	if _, dirty := c.Get("dirty"); dirty {
		return "", fsm.Permanent(errors.New("retry saw the mutated context"))
	}
	c.Set("dirty", true)
	if fail {
		if f.err == nil {
			panic("boom")
		}
		return "", f.err
	}
	return "ok", nil
}

// twoStates: A's do action leads to the final state B, in one invocation.
func twoStates(maxRetries *int) *spec.Machine {
	return &spec.Machine{Name: "M", MaxRetries: maxRetries, States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("flaky"), Transitions: []*spec.Transition{{Target: "B", Event: "ok", Local: true}}},
		{Name: "B", Final: true},
	}}
}

func compileFlaky(t *testing.T, f *flaky, maxRetries *int) *engine.Machine {
	return mustCompile(t, twoStates(maxRetries), func(string) (fsm.Action, error) { return f, nil })
}

func TestTransientFailuresRetriedWithBackoff(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{{"error", errors.New("flaky backend")}, {"panic", nil}} {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{n: 3, err: tt.err}
			h := newHarness(t, []*engine.Machine{compileFlaky(t, f, nil)})
			id := h.start("M", nil)
			for retry := 1; retry <= 3; retry++ {
				res, ok := h.step()
				if !ok || res.Outcome != engine.OutcomeRetry {
					t.Fatalf("attempt %d: %+v, want a retry outcome", retry, res)
				}
				if tt.err == nil && !strings.Contains(res.Err.Error(), "action A.do_action panicked: boom") {
					t.Errorf("attempt %d error %q does not name the panicking action", retry, res.Err)
				}
				if bound := engine.RetryDelayBound(retry); res.Delay < 0 || res.Delay >= bound {
					t.Errorf("retry %d delay %v outside full jitter [0, %v)", retry, res.Delay, bound)
				}
				// Not delivered before its delay, delivered at it.
				if res.Delay > 0 {
					h.clock.Advance(res.Delay - time.Nanosecond)
					if _, ok := h.next(); ok {
						t.Fatalf("retry %d delivered before its delay %v", retry, res.Delay)
					}
				}
				h.clock.Advance(time.Nanosecond)
				if x := h.get(id); x.Status != engine.StatusRunning || x.LastError == "" {
					t.Errorf("after attempt %d: status %s, last error %q", retry, x.Status, x.LastError)
				}
			}
			rs := h.drain()
			if len(rs) != 1 || rs[0].Retries != 3 || rs[0].Outcome != engine.OutcomeDone {
				t.Fatalf("final attempt %+v, want done at retries 3", rs)
			}
			if got := h.get(id).Status; got != engine.StatusDone {
				t.Errorf("status = %s, want done", got)
			}
			if got := h.counters.Total(engine.MetricRetry); got != 3 {
				t.Errorf("retry counter = %d, want 3", got)
			}
		})
	}
}

func TestRetryDelayBound(t *testing.T) {
	for retries, want := range map[int]time.Duration{1: 2 * time.Second, 2: 4 * time.Second, 5: 32 * time.Second, 6: time.Minute, 40: time.Minute} {
		if got := engine.RetryDelayBound(retries); got != want {
			t.Errorf("RetryDelayBound(%d) = %v, want %v", retries, got, want)
		}
	}
}

// A machine's own backoff (retry_delay 600 s, max_retry_delay an hour): the
// bound doubles from 20 minutes and stops at the hour, and a retry drawn at
// the top of its range is delayed by close to an hour, delivered no earlier.
func TestMachineBackoff(t *testing.T) {
	base, ceiling, three := 600, 3600, 3
	sm := twoStates(&three)
	sm.RetryDelay, sm.MaxRetryDelay = &base, &ceiling
	f := &flaky{n: 3, err: errors.New("partner down")}
	m := mustCompile(t, sm, func(string) (fsm.Action, error) { return f, nil })
	for retries, want := range map[int]time.Duration{0: 10 * time.Minute, 1: 20 * time.Minute, 2: 40 * time.Minute, 3: time.Hour, 60: time.Hour} {
		if got := m.RetryDelayBound(retries); got != want {
			t.Errorf("RetryDelayBound(%d) = %v, want %v", retries, got, want)
		}
	}
	h := newHarness(t, []*engine.Machine{m}, func(o *engine.Options) { o.Rand = rand.New(top{}) })
	h.start("M", nil)
	var delays []time.Duration
	for range 3 {
		res, ok := h.step()
		if !ok || res.Outcome != engine.OutcomeRetry {
			t.Fatalf("%+v, want a retry", res)
		}
		delays = append(delays, res.Delay)
		h.clock.Advance(res.Delay - time.Second)
		if _, ok := h.next(); ok {
			t.Fatalf("retry delayed %v delivered a second early", res.Delay)
		}
		h.clock.Advance(time.Second)
	}
	for i, want := range []time.Duration{20 * time.Minute, 40 * time.Minute, time.Hour} {
		if d := delays[i]; d > want || d < want-time.Second {
			t.Errorf("retry %d delayed %v, want just under its bound %v", i+1, d, want)
		}
	}
	if res, ok := h.step(); !ok || res.Outcome != engine.OutcomeDone {
		t.Fatalf("after three retries: %+v, want done", res)
	}
	// A machine built without the spec's checks is refused by Compile,
	// naming the limit.
	week := spec.MaxRetryDelayLimit + 1
	sm.MaxRetryDelay = &week
	if _, err := engine.Compile(sm, func(string) (fsm.Action, error) { return f, nil }); err == nil || !strings.Contains(err.Error(), "604800 (7 days)") {
		t.Errorf("Compile with max_retry_delay %d: %v, want an error naming the 7-day limit", week, err)
	}
}

// top is a random source at the top of its range: full jitter then draws
// its bound.
type top struct{}

func (top) Uint64() uint64 { return ^uint64(0) }

func TestRetriesExhaustedThenResume(t *testing.T) {
	two := 2
	f := &flaky{n: 3, err: errors.New("still down")}
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, &two)})
	id := h.start("M", nil)
	rs := h.drain()
	if len(rs) != 3 || rs[2].Outcome != engine.OutcomeFailed {
		t.Fatalf("results %+v, want 3 attempts, the last failed", rs)
	}
	x := h.get(id)
	if x.Status != engine.StatusFailed || !strings.Contains(x.LastError, "still down") {
		t.Fatalf("execution %s, last error %q; want failed with the last error", x.Status, x.LastError)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rs = h.drain()
	if len(rs) != 1 || rs[0].Retries != 0 || rs[0].Outcome != engine.OutcomeDone {
		t.Fatalf("after resume %+v, want one attempt with retries 0, done", rs)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

func TestMaxRetriesSources(t *testing.T) {
	zero, one, three := 0, 1, 3
	tests := []struct {
		name     string
		machine  *int
		message  *int
		attempts int
	}{
		{"default", nil, nil, spec.DefaultMaxRetries + 1},
		{"machine", &three, nil, 4},
		{"zero means no retry", &zero, nil, 1},
		{"message wins", &three, &one, 2},
		{"message zero wins", nil, &zero, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{n: 100, err: errors.New("down")}
			h := newHarness(t, []*engine.Machine{compileFlaky(t, f, tt.machine)})
			id, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", MaxRetries: tt.message})
			if err != nil {
				t.Fatal(err)
			}
			h.drain()
			if f.calls != tt.attempts {
				t.Errorf("%d attempts, want %d", f.calls, tt.attempts)
			}
			if got := h.get(id).Status; got != engine.StatusFailed {
				t.Errorf("status = %s, want failed", got)
			}
		})
	}
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	f := &flaky{n: 100, err: fsm.Permanent(errors.New("bad input"))}
	h := newHarness(t, []*engine.Machine{compileFlaky(t, f, nil)})
	id := h.start("M", nil)
	h.drain()
	if f.calls != 1 {
		t.Errorf("%d attempts, want 1", f.calls)
	}
	if x := h.get(id); x.Status != engine.StatusFailed || !strings.Contains(x.LastError, "A.do_action: bad input") {
		t.Errorf("execution %s, last error %q", x.Status, x.LastError)
	}
}

// TestStaleFenceRefused: a worker whose lease expired while its action ran
// loses to the worker that took over; its commit writes nothing.
func TestStaleFenceRefused(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	slow := fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			close(entered)
			<-release
			c.Set("by", "slow")
		} else {
			c.Set("by", "fast")
		}
		return "ok", nil
	})
	m := mustCompile(t, twoStates(nil), func(string) (fsm.Action, error) { return slow, nil })
	h := newHarness(t, []*engine.Machine{m}, func(o *engine.Options) { o.LeaseTimeout = time.Minute })
	id := h.start("M", nil)
	d, _ := h.next()
	type out struct {
		res engine.Result
		err error
	}
	done := make(chan out)
	go func() {
		res, err := h.eng.Handle(context.WithoutCancel(t.Context()), d.Payload)
		done <- out{res, err}
	}()
	<-entered
	// The slow worker's lease expires. Its heartbeat may still renew it
	// first (an expired lease nobody took over may be renewed): the
	// engine's sweeper, on wall-clock ticks, can make its first pass only
	// now on a loaded machine. Then the takeover is refused as a lease
	// held, and the lease must expire once more; the sweeper's next pass
	// is seconds of wall time away.
	var (
		fast engine.Result
		err  error
	)
	for range 3 {
		h.clock.Advance(time.Minute + time.Second)
		fast, err = h.eng.Handle(t.Context(), d.Payload)
		if err != nil || fast.Dropped != engine.DropLeaseHeld {
			break
		}
	}
	if err != nil || fast.Outcome != engine.OutcomeDone {
		t.Fatalf("takeover Handle = %+v, %v", fast, err)
	}
	before, _ := h.mem.History(t.Context(), id)
	close(release)
	slowOut := <-done
	if slowOut.err != nil || slowOut.res.Dropped != engine.DropFenceLost {
		t.Errorf("stale Handle = %+v, %v; want dropped %q", slowOut.res, slowOut.err, engine.DropFenceLost)
	}
	after, _ := h.mem.History(t.Context(), id)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("stale commit wrote history (-before +after):\n%s", diff)
	}
	x := h.get(id)
	final, _ := engine.DecodeMessage(x.Checkpoint)
	if x.Status != engine.StatusDone || final.User["by"] != "fast" {
		t.Errorf("execution %s by %v, want done by the fast worker", x.Status, final.User["by"])
	}
}

// failingCommits fails the next n commits as if the store were unreachable.
type failingCommits struct {
	engine.Store
	mu sync.Mutex
	n  int
}

func (f *failingCommits) Commit(ctx context.Context, c engine.Commit) error {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return errors.New("store unreachable")
	}
	return f.Store.Commit(ctx, c)
}

// TestCrashBetweenSendAndCommit: the next message was sent but the commit was
// lost; the successor takes the lease over and the execution finishes.
func TestCrashBetweenSendAndCommit(t *testing.T) {
	s := &script{events: []string{"done", "done"}}
	fc := &failingCommits{}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))}, func(o *engine.Options) {
		fc.Store = o.Store
		o.Store = fc
	})
	id := h.start("Example", map[string]any{"arg1": 1})
	h.step()
	fc.n = 1
	res, ok := h.step() // λ2: sends step 2, commit fails
	if !ok || res.Outcome != engine.OutcomeNext {
		t.Fatalf("λ2 = %+v", res)
	}
	if x := h.get(id); x.DoneStep != 0 || x.LeaseExpires.IsZero() {
		t.Fatalf("after the lost commit: done step %d, lease expires %v; want step 1 held", x.DoneStep, x.LeaseExpires)
	}
	rs := h.drain()
	if diff := cmp.Diff([][]string{lambda4, lambda5}, actionsOf(rs)); diff != "" {
		t.Errorf("successors (-want +got):\n%s", diff)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

// TestCommitFailureWithoutSend: nothing carries the execution on, so Handle
// reports an infrastructure error for the caller to redeliver, and gives its
// lease back: the redelivery runs the step at once instead of waiting for the
// lease to expire (a 6 s run took 303 s).
func TestCommitFailureWithoutSend(t *testing.T) {
	s := &script{events: []string{""}}
	fc := &failingCommits{n: 1}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))}, func(o *engine.Options) {
		fc.Store = o.Store
		o.Store = fc
	})
	id := h.start("Example", map[string]any{"arg1": 1})
	d, _ := h.next()
	if _, err := h.eng.Handle(t.Context(), d.Payload); err == nil {
		t.Fatal("Handle succeeded although its commit failed and nothing was sent")
	}
	if x := h.get(id); !x.LeaseExpires.IsZero() {
		t.Errorf("after the failed commit the lease expires at %v; want it given back", x.LeaseExpires)
	}
	res, err := h.eng.Handle(t.Context(), d.Payload)
	if err != nil || res.Outcome != engine.OutcomeWait {
		t.Fatalf("redelivery within the lease = %+v, %v; want the step run (wait)", res, err)
	}
}

// failingSends fails every Send of the queue.
type failingSends struct{ engine.Queue }

func (failingSends) Send(context.Context, engine.OutMessage) (string, error) {
	return "", errors.New("queue unreachable")
}

func TestSendFailureBecomesRetry(t *testing.T) {
	s := &script{events: []string{"done"}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	h.start("Example", map[string]any{"arg1": 1})
	d, _ := h.next()
	broken, err := engine.New(engine.Options{
		Machines: []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))},
		Store:    h.mem, Queue: failingSends{h.mem}, Retrier: h.mem, Clock: h.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := broken.Handle(t.Context(), d.Payload)
	if err != nil || res.Outcome != engine.OutcomeRetry || !strings.Contains(res.Err.Error(), "queue unreachable") {
		t.Fatalf("Handle = %+v, %v; want a retry naming the send error", res, err)
	}
}

// downStore fails every Acquire as an unreachable store would.
type downStore struct{ engine.Store }

func (downStore) Acquire(context.Context, engine.AcquireRequest) (engine.Lease, error) {
	return engine.Lease{}, errors.New("store unreachable")
}

func TestAcquireFailureIsAnInfrastructureError(t *testing.T) {
	s := &script{events: []string{"done"}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))}, func(o *engine.Options) {
		o.Store = downStore{o.Store}
	})
	h.start("Example", map[string]any{"arg1": 1})
	d, _ := h.next()
	if _, err := h.eng.Handle(t.Context(), d.Payload); err == nil || !strings.Contains(err.Error(), "store unreachable") {
		t.Errorf("Handle = %v, want the store's error for the caller to redeliver", err)
	}
	if len(s.ran) != 0 {
		t.Errorf("actions ran without a lease: %v", s.ran)
	}
	if got := h.counters.Total(engine.MetricCache); got != 1 {
		t.Errorf("cache counter = %d, want 1", got)
	}
}

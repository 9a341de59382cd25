package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// The seed's "Lambda Calls" listing, per invocation.
var (
	lambda1 = []string{"FirstState.entry_action", "FirstState.do_action"}
	lambda2 = []string{"FirstState.exit_action", "SecondState.entry_action", "SecondState.do_action"}
	lambda3 = []string{"FirstState.exit_action", "ThirdState.entry_action", "ThirdState.do_action"}
	lambda4 = []string{"SecondState.exit_action", "ThirdState.entry_action", "ThirdState.do_action"}
	lambda5 = []string{"ThirdState.exit_action"}
)

func TestExampleLambdas(t *testing.T) {
	tests := []struct {
		name     string
		events   []string
		want     [][]string
		wantSeen any
	}{
		{"done done", []string{"done", "done"}, [][]string{lambda1, lambda2, lambda4, lambda5}, "mff(21)"},
		{"skip", []string{"skip"}, [][]string{lambda1, lambda3, lambda5}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{events: tt.events}
			h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
			id := h.start("Example", map[string]any{"arg1": 21})
			rs := h.drain()
			if diff := cmp.Diff(tt.want, actionsOf(rs)); diff != "" {
				t.Errorf("actions per invocation (-want +got):\n%s", diff)
			}
			// The actions really ran, in that order.
			if diff := cmp.Diff(flatten(tt.want), s.ran); diff != "" {
				t.Errorf("actions run (-want +got):\n%s", diff)
			}
			x := h.get(id)
			if x.Status != engine.StatusDone {
				t.Errorf("status = %s, want done", x.Status)
			}
			// Context written in FirstState, read in SecondState.
			final, err := engine.DecodeMessage(x.Checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			if got := final.User["seen"]; got != tt.wantSeen {
				t.Errorf("seen = %v, want %v", got, tt.wantSeen)
			}
			if final.System.FinishedAt == 0 {
				t.Error("finished_at not set in the final checkpoint")
			}
			hist, err := h.mem.History(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			var histActions [][]string
			for i, e := range hist {
				histActions = append(histActions, e.Actions)
				if e.Step != i {
					t.Errorf("history[%d].Step = %d", i, e.Step)
				}
			}
			if diff := cmp.Diff(tt.want, histActions); diff != "" {
				t.Errorf("history actions (-want +got):\n%s", diff)
			}
			if got, want := hist[len(hist)-1].Outcome, engine.OutcomeDone; got != want {
				t.Errorf("last outcome = %s, want %s", got, want)
			}
			if got := h.counters.Total(engine.MetricDone); got != 1 {
				t.Errorf("done counter = %d, want 1", got)
			}
			if got, want := h.counters.Total(engine.MetricDispatch), int64(len(tt.want)); got != want {
				t.Errorf("dispatch counter = %d, want %d", got, want)
			}
		})
	}
}

func flatten(xs [][]string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x...)
	}
	return out
}

func TestFinalStateEdges(t *testing.T) {
	nop := func(ev string) fsm.ActionFunc {
		return func(context.Context, *fsm.Context) (string, error) { return ev, nil }
	}
	tests := []struct {
		name    string
		machine *spec.Machine
		actions map[string]fsm.ActionFunc
		want    [][]string
	}{
		{
			name: "initial and final",
			machine: &spec.Machine{Name: "M", States: []*spec.State{
				{Name: "Only", Initial: true, Final: true, EntryAction: ref("e"), DoAction: ref("d"), ExitAction: ref("x")},
			}},
			actions: map[string]fsm.ActionFunc{"e": nop(""), "d": nop(""), "x": nop("")},
			want:    [][]string{{"Only.entry_action", "Only.do_action"}, {"Only.exit_action"}},
		},
		{
			name: "final without exit ends at once",
			machine: &spec.Machine{Name: "M", States: []*spec.State{
				{Name: "A", Initial: true, DoAction: ref("ok"), Transitions: []*spec.Transition{{Target: "End", Event: "ok"}}},
				{Name: "End", Final: true, EntryAction: ref("e")},
			}},
			actions: map[string]fsm.ActionFunc{"ok": nop("ok"), "e": nop("")},
			want:    [][]string{{"A.do_action"}, {"End.entry_action"}},
		},
		{
			name: "final state follows a transition of its own",
			machine: &spec.Machine{Name: "M", States: []*spec.State{
				{Name: "Reboot", Initial: true, Final: true, DoAction: ref("fail"), ExitAction: ref("x"),
					Transitions: []*spec.Transition{{Target: "Cleanup", Event: "fail", Action: ref("t")}}},
				{Name: "Cleanup", Final: true, DoAction: ref("end")},
			}},
			actions: map[string]fsm.ActionFunc{"fail": nop("fail"), "x": nop(""), "t": nop(""), "end": nop("unknown-is-fine-here")},
			want:    [][]string{{"Reboot.do_action"}, {"Reboot.exit_action", "Reboot.fail.action", "Cleanup.do_action"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, []*engine.Machine{mustCompile(t, tt.machine, funcs(tt.actions))})
			id := h.start("M", nil)
			if diff := cmp.Diff(tt.want, actionsOf(h.drain())); diff != "" {
				t.Errorf("actions per invocation (-want +got):\n%s", diff)
			}
			if got := h.get(id).Status; got != engine.StatusDone {
				t.Errorf("status = %s, want done", got)
			}
		})
	}
}

// counting wraps the memory backend's Store and Queue and counts calls.
type counting struct {
	engine.Store
	q     engine.Queue
	calls []string
}

func (c *counting) Acquire(ctx context.Context, r engine.AcquireRequest) (engine.Lease, error) {
	c.calls = append(c.calls, "Acquire")
	return c.Store.Acquire(ctx, r)
}

func (c *counting) Commit(ctx context.Context, x engine.Commit) error {
	c.calls = append(c.calls, "Commit")
	return c.Store.Commit(ctx, x)
}

func (c *counting) Get(ctx context.Context, id string) (engine.Execution, error) {
	c.calls = append(c.calls, "Get")
	return c.Store.Get(ctx, id)
}

func (c *counting) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	c.calls = append(c.calls, "Send")
	return c.q.Send(ctx, m)
}

func (c *counting) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	c.calls = append(c.calls, "ScheduleRetry")
	_, err := c.q.Send(ctx, m)
	return err
}

func TestHappyPathMakesThreeBackendCalls(t *testing.T) {
	s := &script{events: []string{"done", "done"}}
	var cnt *counting
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))}, func(o *engine.Options) {
		cnt = &counting{Store: o.Store, q: o.Queue}
		o.Store, o.Queue, o.Retrier = cnt, cnt, cnt
	})
	h.start("Example", map[string]any{"arg1": 1})
	for i := range 3 {
		cnt.calls = nil
		res, ok := h.step()
		if !ok || res.Outcome != engine.OutcomeNext {
			t.Fatalf("step %d: %+v, want a next outcome", i, res)
		}
		if diff := cmp.Diff([]string{"Acquire", "Send", "Commit"}, cnt.calls); diff != "" {
			t.Errorf("step %d backend calls (-want +got):\n%s", i, diff)
		}
	}
}

func TestDuplicateMessageRunsOnce(t *testing.T) {
	s := &script{events: []string{"done", "done"}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	h.start("Example", map[string]any{"arg1": 1})
	d, _ := h.next()
	first, err := h.eng.Handle(t.Context(), d.Payload)
	if err != nil || first.Outcome != engine.OutcomeNext {
		t.Fatalf("first Handle = %+v, %v", first, err)
	}
	ran := len(s.ran)
	again, err := h.eng.Handle(t.Context(), d.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if again.Dropped != engine.DropDuplicate {
		t.Errorf("second Handle dropped = %q, want %q", again.Dropped, engine.DropDuplicate)
	}
	if len(s.ran) != ran {
		t.Errorf("actions ran again: %v", s.ran[ran:])
	}
	if got := h.counters.Total(engine.MetricDuplicate); got != 1 {
		t.Errorf("duplicate counter = %d, want 1", got)
	}
}

func TestUnknownEventFailsAtOnce(t *testing.T) {
	s := &script{events: []string{"done", "bogus"}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	id := h.start("Example", map[string]any{"arg1": 1})
	rs := h.drain()
	if got := len(rs); got != 2 {
		t.Fatalf("%d invocations, want 2 (no retries)", got)
	}
	x := h.get(id)
	if x.Status != engine.StatusFailed {
		t.Errorf("status = %s, want failed", x.Status)
	}
	if want := `state "SecondState" has no transition for event "bogus"`; !strings.Contains(x.LastError, want) {
		t.Errorf("last error = %q, want it to contain %q", x.LastError, want)
	}
	if got := h.counters.Total(engine.MetricRetry); got != 0 {
		t.Errorf("retry counter = %d, want 0", got)
	}
	if got := h.counters.Total(engine.MetricFatal); got != 1 {
		t.Errorf("fatal counter = %d, want 1", got)
	}
}

// looper is the looper shapes of the Python framework's integration tests:
// start loops on ok until the counter reaches limit, then goes to end on done.
func looper(name string, local bool) *spec.Machine {
	return &spec.Machine{Name: name, States: []*spec.State{
		{Name: "start", Initial: true, DoAction: ref("IncrementCounter"), Transitions: []*spec.Transition{
			{Target: "start", Event: "ok", Local: local},
			{Target: "end", Event: "done", Local: local},
		}},
		{Name: "end", Final: true},
	}}
}

func incrementCounter(limit int) fsm.ActionFunc {
	return func(_ context.Context, c *fsm.Context) (string, error) {
		n, _ := c.Int("counter")
		n++
		c.Set("counter", n)
		if limit >= 0 && n >= limit {
			return "done", nil
		}
		return "ok", nil
	}
}

func TestLocalTransitions(t *testing.T) {
	m := mustCompile(t, looper("looper-local", true), funcs(map[string]fsm.ActionFunc{"IncrementCounter": incrementCounter(5)}))
	h := newHarness(t, []*engine.Machine{m})
	id := h.start("looper-local", nil)
	rs := h.drain()
	want := [][]string{{"start.do_action", "start.do_action", "start.do_action", "start.do_action", "start.do_action"}}
	if diff := cmp.Diff(want, actionsOf(rs)); diff != "" {
		t.Errorf("one invocation runs the whole loop (-want +got):\n%s", diff)
	}
	x := h.get(id)
	if x.Status != engine.StatusDone || x.State != "end" {
		t.Errorf("execution %s in %q, want done in end", x.Status, x.State)
	}
	final, _ := engine.DecodeMessage(x.Checkpoint)
	if got := final.User["counter"]; got != json.Number("5") {
		t.Errorf("counter = %v (%T), want 5", got, got)
	}
}

func TestRunawayGuards(t *testing.T) {
	tests := []struct {
		name    string
		machine *spec.Machine
		opts    harnessOption
		want    string
		calls   int
	}{
		{
			name:    "max_steps",
			machine: func() *spec.Machine { m := looper("looper", false); n := 10; m.MaxSteps = &n; return m }(),
			want:    "max_steps 10 exceeded",
			calls:   11, // steps 0..10; step 10 may not send step 11
		},
		{
			name:    "max local hops",
			machine: looper("looper-local", true),
			opts:    func(o *engine.Options) { o.MaxLocalHops = 50 },
			want:    "more than 50 local transitions",
			calls:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustCompile(t, tt.machine, funcs(map[string]fsm.ActionFunc{"IncrementCounter": incrementCounter(-1)}))
			var opts []harnessOption
			if tt.opts != nil {
				opts = append(opts, tt.opts)
			}
			h := newHarness(t, []*engine.Machine{m}, opts...)
			id := h.start(tt.machine.Name, nil)
			rs := h.drain()
			if len(rs) != tt.calls {
				t.Errorf("%d invocations, want %d", len(rs), tt.calls)
			}
			x := h.get(id)
			if x.Status != engine.StatusFailed || !strings.Contains(x.LastError, tt.want) {
				t.Errorf("execution %s, last error %q; want failed with %q", x.Status, x.LastError, tt.want)
			}
		})
	}
}

func TestWaitingAndSend(t *testing.T) {
	s := &script{events: []string{"", "done", ""}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	id := h.start("Example", map[string]any{"arg1": 3})
	rs := h.drain()
	if len(rs) != 1 || rs[0].Outcome != engine.OutcomeWait {
		t.Fatalf("results %+v, want one wait", rs)
	}
	x := h.get(id)
	if x.Status != engine.StatusWaiting || x.State != "FirstState" {
		t.Fatalf("execution %s in %q, want waiting in FirstState", x.Status, x.State)
	}
	if err := h.eng.Send(t.Context(), id, "nope"); !errors.Is(err, engine.ErrUnknownEvent) {
		t.Errorf("Send(nope) = %v, want ErrUnknownEvent", err)
	}
	if err := h.eng.Send(t.Context(), id, "done"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	rs = h.drain()
	if diff := cmp.Diff([][]string{lambda2, lambda4, lambda5}, actionsOf(rs)); diff != "" {
		t.Errorf("after Send (-want +got):\n%s", diff)
	}
	if rs[0].Step != 1 {
		t.Errorf("sent message has step %d, want 1", rs[0].Step)
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
	if err := h.eng.Send(t.Context(), id, "done"); !errors.Is(err, engine.ErrNotWaiting) {
		t.Errorf("Send to a done execution = %v, want ErrNotWaiting", err)
	}
}

func TestPythonMessageContinues(t *testing.T) {
	payload, err := os.ReadFile("testdata/python_message.json")
	if err != nil {
		t.Fatal(err)
	}
	s := &script{events: []string{"done"}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	res, err := h.eng.Handle(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lambda2, res.Actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	rs := h.drain()
	if diff := cmp.Diff([][]string{lambda4, lambda5}, actionsOf(rs)); diff != "" {
		t.Errorf("later invocations (-want +got):\n%s", diff)
	}
	x := h.get("0f3c2b1a9e8d4c7b8a6f5e4d3c2b1a09")
	if x.Status != engine.StatusDone {
		t.Errorf("status = %s, want done", x.Status)
	}
	final, _ := engine.DecodeMessage(x.Checkpoint)
	if got := final.User["seen"]; got != "..." {
		t.Errorf("SecondState read mff = %v, want the Python context's %q", got, "...")
	}
	if final.System.LeasePrimary == nil || !*final.System.LeasePrimary || *final.System.MaxRetries != 5 {
		t.Errorf("system keys not carried on: %+v", final.System)
	}
}

func TestDelays(t *testing.T) {
	m := &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("wait"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", Final: true},
	}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, m, funcs(map[string]fsm.ActionFunc{
		"wait": func(_ context.Context, c *fsm.Context) (string, error) {
			c.Delay(5 * time.Second)
			c.Delay(time.Second) // the largest wins
			return "ok", nil
		},
	}))})
	id := h.start("M", nil)
	res, _ := h.step()
	if res.Delay != 5*time.Second {
		t.Errorf("delay = %v, want 5s", res.Delay)
	}
	h.clock.Advance(5*time.Second - time.Nanosecond)
	if _, ok := h.next(); ok {
		t.Fatal("delayed message delivered early")
	}
	h.clock.Advance(time.Nanosecond)
	h.drain()
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Errorf("status = %s, want done", got)
	}
}

func TestStopAndResume(t *testing.T) {
	s := &script{events: []string{"done", "done"}}
	h := newHarness(t, []*engine.Machine{mustCompile(t, exampleSpec(), exampleActions(s))})
	id := h.start("Example", map[string]any{"arg1": 1})
	h.step()
	if err := h.eng.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	res, _ := h.step()
	if res.Dropped != engine.DropInactive {
		t.Errorf("message of a stopped execution: dropped %q, want %q", res.Dropped, engine.DropInactive)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rs := h.drain()
	if diff := cmp.Diff([][]string{lambda2, lambda4, lambda5}, actionsOf(rs)); diff != "" {
		t.Errorf("after Resume (-want +got):\n%s", diff)
	}
	x := h.get(id)
	if x.Status != engine.StatusDone {
		t.Errorf("status = %s, want done", x.Status)
	}
	final, _ := engine.DecodeMessage(x.Checkpoint)
	if final.System.RestartedAt == 0 {
		t.Error("restarted_at not set")
	}
	if err := h.eng.Resume(t.Context(), id); !errors.Is(err, engine.ErrNotResumable) {
		t.Errorf("Resume of a done execution = %v, want ErrNotResumable", err)
	}
}

func TestStartUnknownMachine(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "nope"}); !errors.Is(err, engine.ErrUnknownMachine) {
		t.Errorf("Start = %v, want ErrUnknownMachine", err)
	}
}

func TestMalformedMessageDropped(t *testing.T) {
	h := newHarness(t, nil)
	res, err := h.eng.Handle(t.Context(), []byte(`{"version":"0.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Dropped != engine.DropMalformed || res.Err == nil {
		t.Errorf("result %+v, want a malformed drop with its error", res)
	}
}

// TestUntouchedContextPassesThrough: a context no action uses is sent on as it
// came (not decoded); one an action reads is decoded and written again, and
// keeps its numbers' literals, even one float64 cannot hold.
func TestUntouchedContextPassesThrough(t *testing.T) {
	const user = `{"big": 1e999, "keep": [1, 2]}`
	for _, touch := range []bool{false, true} {
		t.Run(map[bool]string{false: "untouched", true: "touched"}[touch], func(t *testing.T) {
			m := mustCompile(t, twoStatesQueued(), funcs(map[string]fsm.ActionFunc{
				"do": func(_ context.Context, c *fsm.Context) (string, error) {
					if touch {
						c.Get("keep")
					}
					return "ok", nil
				},
			}))
			h := newHarness(t, []*engine.Machine{m})
			payload := `{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init",` +
				`"correlation_id":"c1","steps":0,"retries":0},"user_context":` + user + `}`
			res, err := h.eng.Handle(t.Context(), []byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != engine.OutcomeNext {
				t.Fatalf("result %+v, want next", res)
			}
			want := user
			if touch {
				want = `{"big":1e999,"keep":[1,2]}` // written again: compact, the literals kept
			}
			d, ok := h.next()
			if !ok || !strings.Contains(string(d.Payload), `"user_context":`+want) {
				t.Errorf("next message %s does not carry the user context %s", d.Payload, want)
			}
		})
	}
}

func twoStatesQueued() *spec.Machine {
	return &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("do"), Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", Final: true},
	}}
}

func TestLongLocalChainHistoryIsCapped(t *testing.T) {
	m := mustCompile(t, looper("looper-local", true), funcs(map[string]fsm.ActionFunc{"IncrementCounter": incrementCounter(300)}))
	h := newHarness(t, []*engine.Machine{m})
	h.start("looper-local", nil)
	rs := h.drain()
	if len(rs) != 1 {
		t.Fatalf("%d invocations, want 1", len(rs))
	}
	got := rs[0].Actions
	if len(got) != 257 || got[0] != "start.do_action" || got[255] != "start.do_action" || got[256] != "(44 more actions)" {
		t.Errorf("actions: %d entries ending %q, want 256 then \"(44 more actions)\"", len(got), got[len(got)-1])
	}
}

func TestAdditionalDelayAddsToRequestedDelay(t *testing.T) {
	m := mustCompile(t, twoStatesQueued(), funcs(map[string]fsm.ActionFunc{
		"do": func(_ context.Context, c *fsm.Context) (string, error) {
			c.Delay(5 * time.Second)
			return "ok", nil
		},
	}))
	h := newHarness(t, []*engine.Machine{m})
	payload := `{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init",` +
		`"correlation_id":"c2","steps":0,"retries":0,"additional_delay_seconds":2.5},"user_context":{}}`
	res, err := h.eng.Handle(t.Context(), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if want := 7500 * time.Millisecond; res.Delay != want {
		t.Errorf("delay = %v, want %v", res.Delay, want)
	}
	h.clock.Advance(res.Delay - time.Nanosecond)
	if _, ok := h.next(); ok {
		t.Error("message delivered before its delay")
	}
	h.clock.Advance(time.Nanosecond)
	d, ok := h.next()
	if !ok || !strings.Contains(string(d.Payload), `"additional_delay_seconds":2.5`) {
		t.Errorf("next message %s: want it delivered, carrying additional_delay_seconds", d.Payload)
	}
}

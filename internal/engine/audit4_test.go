package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// counted is a machine A -(go)-> B (final, with an exit action) whose
// actions count their runs.
func counted(t *testing.T, runs map[string]int) *engine.Machine {
	t.Helper()
	count := func(name, ev string) fsm.ActionFunc {
		return func(context.Context, *fsm.Context) (string, error) { runs[name]++; return ev, nil }
	}
	return mustCompile(t, &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("a.do"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true, EntryAction: ref("b.entry"), ExitAction: ref("b.exit")},
	}}, funcs(map[string]fsm.ActionFunc{"a.do": count("a.do", "go"), "b.entry": count("b.entry", ""), "b.exit": count("b.exit", "")}))
}

// TestStartRefusesAFinishedID: a correlation id names one execution forever.
// Starting it again used to begin a new run with the done marker back at -1,
// so a late duplicate of the old run's messages was accepted by the new run
// (its actions ran twice, on the wrong context).
func TestStartRefusesAFinishedID(t *testing.T) {
	runs := map[string]int{}
	h := newHarness(t, []*engine.Machine{counted(t, runs)})
	id, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", CorrelationID: "c1"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// Keep a copy of step 1's message, to deliver again late.
	var late []byte
	for {
		d, ok := h.next()
		if !ok {
			break
		}
		if msg, err := engine.DecodeMessage(d.Payload); err == nil && msg.System.Steps == 1 {
			late = append([]byte{}, d.Payload...)
		}
		if _, err := h.eng.HandleDelivery(t.Context(), h.mem, d); err != nil {
			t.Fatalf("HandleDelivery: %v", err)
		}
	}
	if got := h.get(id).Status; got != engine.StatusDone {
		t.Fatalf("status %s, want done", got)
	}
	_, err = h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", CorrelationID: "c1"})
	if !errors.Is(err, engine.ErrExists) {
		t.Fatalf("Start of a done id = %v, want ErrExists", err)
	}
	res, err := h.eng.Handle(t.Context(), late)
	if err != nil {
		t.Fatalf("Handle(late duplicate): %v", err)
	}
	if res.Dropped != engine.DropDuplicate {
		t.Errorf("late duplicate of step 1: %+v, want dropped as a duplicate", res)
	}
	if runs["b.entry"] != 1 || runs["a.do"] != 1 {
		t.Errorf("actions ran %v, want each once", runs)
	}
	if x := h.get(id); x.Status != engine.StatusDone {
		t.Errorf("status after the refused start %s, want done", x.Status)
	}
}

// TestMessagesWithoutARecordStillRun: a producer that never called Start
// (the Python framework) sends messages whose execution Acquire records on
// the fly; refusing Create of existing ids must not touch that path.
func TestMessagesWithoutARecordStillRun(t *testing.T) {
	runs := map[string]int{}
	h := newHarness(t, []*engine.Machine{counted(t, runs)})
	start := []byte(`{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init","correlation_id":"py1","steps":0,"retries":0},"user_context":{}}`)
	if _, err := h.mem.Send(t.Context(), engine.OutMessage{Key: "py1", Payload: start}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	h.drain()
	if x := h.get("py1"); x.Status != engine.StatusDone {
		t.Errorf("status %s, want done", x.Status)
	}
	if _, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", CorrelationID: "py1"}); !errors.Is(err, engine.ErrExists) {
		t.Errorf("Start of an id recorded on the fly = %v, want ErrExists", err)
	}
}

// TestMaxStepsBoundary: max_steps caps the transitions an execution may
// dispatch, a runaway guard. The end message of a final state with an exit
// action (pseudo_final) cannot loop, so it does not count: an execution that
// reaches its final state within max_steps finishes, exactly at the cap too.
func TestMaxStepsBoundary(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exit     bool
		maxSteps int
		want     engine.Status
	}{
		// A -(go)-> B -(go)-> C: two transitions, messages 1 and 2.
		{"final exit, cap = transitions", true, 2, engine.StatusDone},
		{"final exit, cap above", true, 3, engine.StatusDone},
		{"final exit, cap below", true, 1, engine.StatusFailed},
		{"final without exit, cap = transitions", false, 2, engine.StatusDone},
		{"final without exit, cap below", false, 1, engine.StatusFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goOn := func(context.Context, *fsm.Context) (string, error) { return "go", nil }
			none := func(context.Context, *fsm.Context) (string, error) { return "", nil }
			c := &spec.State{Name: "C", Final: true}
			if tc.exit {
				c.ExitAction = ref("none")
			}
			n := tc.maxSteps
			m := mustCompile(t, &spec.Machine{Name: "M", MaxSteps: &n, States: []*spec.State{
				{Name: "A", Initial: true, DoAction: ref("go"), Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
				{Name: "B", DoAction: ref("go"), Transitions: []*spec.Transition{{Target: "C", Event: "go"}}},
				c,
			}}, funcs(map[string]fsm.ActionFunc{"go": goOn, "none": none}))
			h := newHarness(t, []*engine.Machine{m})
			id := h.start("M", nil)
			h.drain()
			x := h.get(id)
			if x.Status != tc.want {
				t.Errorf("max_steps %d: status %s (%s), want %s", tc.maxSteps, x.Status, x.LastError, tc.want)
			}
		})
	}
}

// parked is a machine that waits in A for an outside event: x or y, each to
// a final state.
func parked(t *testing.T) *engine.Machine {
	t.Helper()
	return mustCompile(t, &spec.Machine{Name: "P", States: []*spec.State{
		{Name: "A", Initial: true, Transitions: []*spec.Transition{{Target: "X", Event: "x"}, {Target: "Y", Event: "y"}}},
		{Name: "X", Final: true},
		{Name: "Y", Final: true},
	}}, funcs(nil))
}

// TestConcurrentSendsOneWins: concurrent Sends of different events to one
// waiting execution used to all report success while only one advanced (the
// others' messages were dropped as duplicates at acquire). Exactly one may
// win; the others get ErrNotWaiting and sent nothing.
func TestConcurrentSendsOneWins(t *testing.T) {
	for _, oneWrite := range []bool{true, false} {
		t.Run(fmt.Sprintf("one write %v", oneWrite), func(t *testing.T) {
			var opts []harnessOption
			if !oneWrite {
				// A Queue that is not the Store: claim and enqueue are two writes.
				opts = append(opts, func(o *engine.Options) { o.Queue = queueOnly{o.Queue} })
			}
			h := newHarness(t, []*engine.Machine{parked(t)}, opts...)
			id := h.start("P", nil)
			h.drain()
			if got := h.get(id).Status; got != engine.StatusWaiting {
				t.Fatalf("status %s, want waiting", got)
			}
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = h.eng.Send(t.Context(), id, []string{"x", "y"}[i%2]) })
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, engine.ErrNotWaiting):
					t.Errorf("losing Send = %v, want ErrNotWaiting", err)
				}
			}
			if won != 1 {
				t.Fatalf("%d of %d concurrent Sends succeeded, want 1", won, n)
			}
			if q := h.mem.Len(); q != 1 {
				t.Errorf("%d messages queued, want 1 (the winner's)", q)
			}
			rs := h.drain()
			if len(rs) != 1 || rs[0].Outcome != engine.OutcomeDone {
				t.Errorf("after the sends: %+v, want one step that finishes", rs)
			}
		})
	}
}

// queueOnly hides every method of a backend but Send, so the engine sees a
// Queue that is not its Store.
type queueOnly struct{ q engine.Queue }

func (w queueOnly) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return w.q.Send(ctx, m)
}

// failingQueue refuses every message.
type failingQueue struct{}

func (failingQueue) Send(context.Context, engine.OutMessage) (string, error) {
	return "", errors.New("queue down")
}

// TestSendRacingStop: a Stop that lands before Send's claim makes Send fail
// with ErrNotWaiting (it used to report success while its message was
// dropped); one that lands after it stops an execution whose checkpoint is
// the event's message, so resume delivers the event.
func TestSendRacingStop(t *testing.T) {
	for range 20 {
		h := newHarness(t, []*engine.Machine{parked(t)})
		id := h.start("P", nil)
		h.drain()
		var sendErr, stopErr error
		var wg sync.WaitGroup
		wg.Go(func() { sendErr = h.eng.Send(t.Context(), id, "x") })
		wg.Go(func() { stopErr = h.eng.Stop(t.Context(), id) })
		wg.Wait()
		if stopErr != nil {
			t.Fatalf("Stop: %v", stopErr)
		}
		if sendErr != nil && !errors.Is(sendErr, engine.ErrNotWaiting) {
			t.Fatalf("Send = %v, want nil or ErrNotWaiting", sendErr)
		}
		h.drain() // a sent message is dropped: the execution is stopped
		if err := h.eng.Resume(t.Context(), id); err != nil {
			t.Fatalf("Resume: %v", err)
		}
		h.drain()
		want := engine.StatusDone
		if sendErr != nil {
			want = engine.StatusWaiting // the event was refused: resume parks it again
		}
		if got := h.get(id); got.Status != want {
			t.Errorf("Send err %v: after resume status %s, want %s", sendErr, got.Status, want)
		}
	}
}

// TestSendGivesTheClaimBack: when the event's message cannot be enqueued,
// Send fails and the execution is waiting again, for the same event or
// another.
func TestSendGivesTheClaimBack(t *testing.T) {
	h := newHarness(t, []*engine.Machine{parked(t)})
	id := h.start("P", nil)
	h.drain()
	parkedAt := h.get(id)
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{parked(t)}, Store: h.mem, Queue: failingQueue{}, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Send(t.Context(), id, "x"); err == nil {
		t.Fatal("Send through a failing queue succeeded")
	}
	x := h.get(id)
	if x.Status != engine.StatusWaiting || string(x.Checkpoint) != string(parkedAt.Checkpoint) {
		t.Fatalf("after a failed Send: status %s, checkpoint %s; want waiting, the parked message", x.Status, x.Checkpoint)
	}
	if err := h.eng.Send(t.Context(), id, "y"); err != nil {
		t.Fatalf("Send after the claim was given back: %v", err)
	}
	h.drain()
	if got := h.get(id); got.Status != engine.StatusDone || got.State != "Y" {
		t.Errorf("status %s in %s, want done in Y", got.Status, got.State)
	}
}

package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestMessageSizeLimit: every message the engine writes is checked against
// Options.MaxMessageBytes (default: SNS's 256 KiB, the smallest AWS limit on
// the way); one too large fails with the size and the limit named, before
// anything is sent.
func TestMessageSizeLimit(t *testing.T) {
	grow := 0
	sm := &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("do"), Transitions: []*spec.Transition{{Target: "W", Event: "ok"}}},
		{Name: "W", Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	m := mustCompile(t, sm, funcs(map[string]fsm.ActionFunc{
		"do": func(_ context.Context, c *fsm.Context) (string, error) {
			if grow > 0 {
				c.Set("blob", strings.Repeat("x", grow))
			}
			return "ok", nil
		},
	}))
	tooLarge := func(t *testing.T, err error, limit int) {
		t.Helper()
		var te *engine.MessageTooLargeError
		if !errors.As(err, &te) || te.Limit != limit || te.Size <= limit {
			t.Fatalf("error %v, want a MessageTooLargeError over %d bytes", err, limit)
		}
		if want := " bytes is larger than the limit of "; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name the sizes", err)
		}
	}

	t.Run("start", func(t *testing.T) {
		h := newHarness(t, []*engine.Machine{m})
		big := map[string]any{"blob": strings.Repeat("x", engine.DefaultMaxMessageBytes)}
		_, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", Context: big})
		tooLarge(t, err, engine.DefaultMaxMessageBytes)
		if xs, _ := h.mem.List(t.Context(), engine.ListFilter{}); len(xs.Executions) != 0 || h.mem.Len() != 0 {
			t.Errorf("a refused start left %d executions, %d messages", len(xs.Executions), h.mem.Len())
		}
	})

	t.Run("context grown by a step", func(t *testing.T) {
		h := newHarness(t, []*engine.Machine{m}, func(o *engine.Options) { o.MaxMessageBytes = 1000 })
		grow = 2000
		defer func() { grow = 0 }()
		id := h.start("M", nil)
		start := h.get(id).Checkpoint
		res, _ := h.step()
		if res.Outcome != engine.OutcomeFailed {
			t.Fatalf("outcome %s, want failed", res.Outcome)
		}
		tooLarge(t, res.Err, 1000)
		x := h.get(id)
		if x.Status != engine.StatusFailed || !strings.Contains(x.LastError, "larger than the limit of 1000 bytes") {
			t.Errorf("execution %s (%q), want failed naming the limit", x.Status, x.LastError)
		}
		if string(x.Checkpoint) != string(start) {
			t.Errorf("checkpoint %s, want the start message", x.Checkpoint)
		}
		if h.mem.Len() != 0 {
			t.Errorf("%d messages queued, want none", h.mem.Len())
		}
	})

	t.Run("retry of a message that came in too large", func(t *testing.T) {
		failing := mustCompile(t, twoStatesQueued(), funcs(map[string]fsm.ActionFunc{
			"do": func(context.Context, *fsm.Context) (string, error) { return "", errors.New("down") },
		}))
		h := newHarness(t, []*engine.Machine{failing}, func(o *engine.Options) { o.MaxMessageBytes = 500 })
		payload := `{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init",` +
			`"correlation_id":"c9","steps":0,"retries":0},"user_context":{"blob":"` + strings.Repeat("y", 600) + `"}}`
		res, err := h.eng.Handle(t.Context(), []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome != engine.OutcomeFailed || h.mem.Len() != 0 {
			t.Fatalf("outcome %s with %d messages queued, want failed and none", res.Outcome, h.mem.Len())
		}
		tooLarge(t, res.Err, 500)
		if !strings.Contains(res.Err.Error(), "the attempt failed with: M.do") && !strings.Contains(res.Err.Error(), "down") {
			t.Errorf("error %q does not say why the attempt failed", res.Err)
		}
	})

	t.Run("send and resume", func(t *testing.T) {
		// An execution parked under a larger limit; an engine with a smaller
		// one refuses to send its event or resume it, and sends nothing.
		h := newHarness(t, []*engine.Machine{m})
		grow = 3000
		defer func() { grow = 0 }()
		id := h.start("M", nil)
		h.drain()
		if x := h.get(id); x.Status != engine.StatusWaiting {
			t.Fatalf("status %s, want waiting", x.Status)
		}
		small, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: h.mem, Queue: h.mem, Clock: h.clock, MaxMessageBytes: 1000})
		if err != nil {
			t.Fatal(err)
		}
		tooLarge(t, small.Send(t.Context(), id, "go"), 1000)
		if x := h.get(id); x.Status != engine.StatusWaiting || h.mem.Len() != 0 {
			t.Errorf("after a refused send: %s with %d messages, want waiting and none", x.Status, h.mem.Len())
		}
		if err := h.eng.Stop(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		// A stopped parked execution resumes to waiting without a message;
		// move it on so that resume must send.
		if err := h.eng.Resume(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if err := h.eng.Send(t.Context(), id, "go"); err != nil {
			t.Fatal(err)
		}
		if err := h.eng.Stop(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		n := h.mem.Len()
		tooLarge(t, small.Resume(t.Context(), id), 1000)
		if x := h.get(id); x.Status != engine.StatusStopped || h.mem.Len() != n {
			t.Errorf("after a refused resume: %s, %d messages (was %d), want stopped and none sent", x.Status, h.mem.Len(), n)
		}
	})
}

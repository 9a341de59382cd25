package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestLastAttemptChoosesFallback: actions see max_retries, so the last
// attempt can pick a fallback event (the Python framework's max_retry_event
// pattern) instead of failing the execution.
func TestLastAttemptChoosesFallback(t *testing.T) {
	two := 2
	sm := &spec.Machine{Name: "M", MaxRetries: &two, States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("do"), Transitions: []*spec.Transition{
			{Target: "Ok", Event: "ok"}, {Target: "Fallback", Event: "fallback"}}},
		{Name: "Ok", Final: true},
		{Name: "Fallback", Final: true},
	}}
	var seen [][2]int
	m := mustCompile(t, sm, funcs(map[string]fsm.ActionFunc{
		"do": func(_ context.Context, c *fsm.Context) (string, error) {
			seen = append(seen, [2]int{c.Retries(), c.MaxRetries()})
			if c.LastAttempt() {
				return "fallback", nil
			}
			return "", errors.New("service down")
		},
	}))
	h := newHarness(t, []*engine.Machine{m})
	id := h.start("M", nil)
	h.drain()
	if x := h.get(id); x.Status != engine.StatusDone || x.State != "Fallback" {
		t.Errorf("execution %s in %s, want done in Fallback", x.Status, x.State)
	}
	if diff := cmp.Diff([][2]int{{0, 2}, {1, 2}, {2, 2}}, seen); diff != "" {
		t.Errorf("(retries, max_retries) seen by the action (-want +got):\n%s", diff)
	}

	// The message's max_retries wins over the machine's.
	seen = nil
	h = newHarness(t, []*engine.Machine{m})
	zero := 0
	if _, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", MaxRetries: &zero}); err != nil {
		t.Fatal(err)
	}
	h.drain()
	if diff := cmp.Diff([][2]int{{0, 0}}, seen); diff != "" {
		t.Errorf("with max_retries 0 in the message (-want +got):\n%s", diff)
	}
}

// TestMessagesCarrySpecHash: every message the engine writes (start, next,
// retry, the event of send, resume, checkpoints) carries the hash of the
// machine's spec; a message from another producer gets it on its next.
func TestMessagesCarrySpecHash(t *testing.T) {
	fail := true
	sm := &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("do"), Transitions: []*spec.Transition{{Target: "W", Event: "ok"}}},
		{Name: "W", Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true, DoAction: ref("fatal")},
	}}
	m := mustCompile(t, sm, funcs(map[string]fsm.ActionFunc{
		"do": func(context.Context, *fsm.Context) (string, error) {
			if fail {
				fail = false
				return "", errors.New("once")
			}
			return "ok", nil
		},
		"fatal": func(context.Context, *fsm.Context) (string, error) { return "", fsm.Permanent(errors.New("no")) },
	}))
	want := sm.Hash()
	if m.SpecHash() != want || len(want) != spec.HashLength {
		t.Fatalf("Machine.SpecHash = %q, spec hash %q", m.SpecHash(), want)
	}
	h := newHarness(t, []*engine.Machine{m})
	check := func(what string, payload []byte) {
		t.Helper()
		msg, err := engine.DecodeMessage(payload)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if msg.System.SpecHash != want {
			t.Errorf("%s carries spec_hash %q, want %q: %s", what, msg.System.SpecHash, want, payload)
		}
	}
	step := func(what string) {
		t.Helper()
		d, ok := h.next()
		if !ok {
			h.clock.Advance(engine.MaxRetryDelay)
			if d, ok = h.next(); !ok {
				t.Fatalf("%s: no message", what)
			}
		}
		check(what, d.Payload)
		if _, err := h.eng.HandleDelivery(t.Context(), h.mem, d); err != nil {
			t.Fatal(err)
		}
	}
	id := h.start("M", nil)
	step("start message")
	step("retry")
	step("next message")
	check("waiting checkpoint", h.get(id).Checkpoint)
	if err := h.eng.Send(t.Context(), id, "go"); err != nil {
		t.Fatal(err)
	}
	step("message of send")
	if x := h.get(id); x.Status != engine.StatusFailed {
		t.Fatalf("status %s, want failed", x.Status)
	}
	if err := h.eng.Resume(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	step("resumed message")

	// A Python message has none; its next message has it.
	h = newHarness(t, []*engine.Machine{m})
	fail = false
	py := `{"version": "0.1", "system_context": {"machine_name": "M", "current_state": "pseudo_init", "current_event": "pseudo_init", ` +
		`"correlation_id": "0f3c2b1a9e8d4c7b8a6f5e4d3c2b1a09", "steps": 0, "retries": 0}, "user_context": {}}`
	if _, err := h.eng.Handle(t.Context(), []byte(py)); err != nil {
		t.Fatal(err)
	}
	d, ok := h.next()
	if !ok {
		t.Fatal("no next message")
	}
	check("next message of a Python message", d.Payload)
}

// TestRetryDelayIgnoresAdditionalDelay: additional_delay_seconds paces the
// steps of an execution: the next message waits for it (plus what the
// actions asked for), but a retry waits only for its backoff. The retry
// message keeps the key, so the step's next message, once the retry
// succeeds, waits for it again.
func TestRetryDelayIgnoresAdditionalDelay(t *testing.T) {
	fail := true
	m := mustCompile(t, twoStatesQueued(), funcs(map[string]fsm.ActionFunc{
		"do": func(context.Context, *fsm.Context) (string, error) {
			if fail {
				fail = false
				return "", errors.New("once")
			}
			return "ok", nil
		},
	}))
	h := newHarness(t, []*engine.Machine{m})
	payload := `{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init",` +
		`"correlation_id":"c3","steps":0,"retries":0,"additional_delay_seconds":600},"user_context":{}}`
	res, err := h.eng.Handle(t.Context(), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != engine.OutcomeRetry || res.Delay > engine.RetryDelayBound(1) {
		t.Fatalf("first attempt: %s with delay %v, want a retry within its backoff bound %v", res.Outcome, res.Delay, engine.RetryDelayBound(1))
	}
	h.clock.Advance(engine.RetryDelayBound(1))
	d, ok := h.next()
	if !ok {
		t.Fatal("retry not delivered within its backoff bound")
	}
	if !strings.Contains(string(d.Payload), `"additional_delay_seconds":600`) {
		t.Errorf("retry %s lost additional_delay_seconds", d.Payload)
	}
	res, err = h.eng.HandleDelivery(t.Context(), h.mem, d)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != engine.OutcomeNext || res.Delay != 600*time.Second {
		t.Errorf("retry: %s with delay %v, want next with 10m0s", res.Outcome, res.Delay)
	}
}

// TestNumbersKeepTheirLiterals: numbers keep the literal their producer
// wrote through every message and checkpoint, also when an action reads and
// writes the context (which decodes it): 12345678901234567891 used to become
// 12345678901234567000 and 1.0 became 1.
func TestNumbersKeepTheirLiterals(t *testing.T) {
	var got []any
	m := mustCompile(t, twoStatesQueued(), funcs(map[string]fsm.ActionFunc{
		"do": func(_ context.Context, c *fsm.Context) (string, error) {
			id, _ := c.Number("id")
			price, _ := c.Int("price")
			f, _ := c.Float("ratio")
			got = append(got, id, price, f)
			c.Set("seen", true)
			return "ok", nil
		},
	}))
	h := newHarness(t, []*engine.Machine{m})
	id, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", Context: map[string]any{
		"id": json.Number("12345678901234567891"), "price": json.Number("1.0"), "ratio": json.Number("2.50"),
		"list": []any{json.Number("1e2"), json.Number("-0.0")}}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `"id":12345678901234567891,"list":[1e2,-0.0],"price":1.0,"ratio":2.50`
	d, _ := h.next()
	if !strings.Contains(string(d.Payload), want) {
		t.Errorf("start message %s lacks %s", d.Payload, want)
	}
	if _, err := h.eng.HandleDelivery(t.Context(), h.mem, d); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]any{json.Number("12345678901234567891"), 1, 2.5}, got); diff != "" {
		t.Errorf("what the action read (-want +got):\n%s", diff)
	}
	d, _ = h.next()
	if !strings.Contains(string(d.Payload), want+`,"seen":true`) {
		t.Errorf("next message %s lacks %s", d.Payload, want)
	}
	if cp := h.get(id).Checkpoint; !strings.Contains(string(cp), want) {
		t.Errorf("checkpoint %s lacks %s", cp, want)
	}
	msg, err := engine.DecodeMessage(d.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(msg.User); !strings.Contains(string(b), want) {
		t.Errorf("the decoded context marshals as %s (what inspect and run --output json print), lacking %s", b, want)
	}
}

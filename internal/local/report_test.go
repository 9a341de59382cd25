package local

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// step returns the delivery and result of one step of the example's
// done, done path: λ1 from pseudo_init, λ2 from FirstState, ...
func step(t *testing.T, id string, n int, outcome engine.Outcome) (engine.Delivery, engine.Result) {
	t.Helper()
	from := []string{"pseudo_init", "FirstState", "SecondState", "ThirdState"}[n]
	event := []string{"pseudo_init", "done", "done", "pseudo_final"}[n]
	payload, err := engine.EncodeMessage(engine.Message{Version: "0.1", System: engine.SystemContext{CorrelationID: id,
		MachineName: "Example", CurrentState: from, CurrentEvent: event, Steps: n}, User: map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	return engine.Delivery{Payload: payload},
		engine.Result{CorrelationID: id, Machine: "Example", Step: n, Outcome: outcome, Actions: []string{from + ".exit_action"}}
}

// TestStepReporterAll: every step is a λ line, as lfsm tail prints history,
// numbered from the machine's graph; the summary counts the steps.
func TestStepReporterAll(t *testing.T) {
	var out bytes.Buffer
	r := NewStepReporter(loadExample(t), StepReporterOptions{Out: &out, Mode: StepsAll})
	id := "0000000000000000000000000000000a"
	for n, o := range []engine.Outcome{engine.OutcomeNext, engine.OutcomeNext, engine.OutcomeNext, engine.OutcomeDone} {
		d, res := step(t, id, n, o)
		r.Handled(d, res, nil, time.Millisecond)
	}
	r.Handled(engine.Delivery{}, engine.Result{}, errors.New("store down"), 0)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), out.String())
	}
	for i, want := range []string{"step 0  λ1 ", "step 1  λ2 ", "step 2  λ4 ", "step 3  λ5 "} {
		if !strings.HasPrefix(lines[i], id+" Example "+want) {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], id+" Example "+want)
		}
	}
	if !strings.Contains(lines[1], "FirstState -(done)-> SecondState") {
		t.Errorf("λ2 line lacks its transition: %q", lines[1])
	}
	if got := r.Close(); !strings.HasPrefix(got, "4 λ in ") || !strings.Contains(got, "1 done, 0 failed, 1 left for redelivery") {
		t.Errorf("summary %q", got)
	}
	if strings.Contains(out.String(), "\x1b[K") {
		t.Error("StepsAll redraws a status line")
	}
}

// TestStepReporterSampled: on a terminal at most MaxLinesPerSecond lines a
// second are printed, every failure still, under a summary line redrawn in
// place; the clock is injected.
func TestStepReporterSampled(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(1000, 0)
	r := NewStepReporter(loadExample(t), StepReporterOptions{Out: &out, Mode: StepsSampled, MaxLinesPerSecond: 3,
		Now: func() time.Time { return now }})
	handle := func(n int, o engine.Outcome) {
		d, res := step(t, "0000000000000000000000000000000b", n, o)
		r.Handled(d, res, nil, time.Millisecond)
	}
	for range 10 { // one second: 3 of them get a line
		handle(1, engine.OutcomeNext)
		now = now.Add(100 * time.Millisecond)
	}
	handle(1, engine.OutcomeFailed) // over the budget, printed anyway
	now = now.Add(time.Second)
	handle(3, engine.OutcomeDone) // a new second
	text := strings.ReplaceAll(out.String(), "\r\x1b[K", "\n<status>")
	var lambdas, statuses int
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimPrefix(l, "<status>")
		switch {
		case strings.Contains(l, " Example step "):
			lambdas++
		case l != "":
			statuses++
		}
	}
	if lambdas != 5 {
		t.Errorf("%d λ lines, want 5 (3 in the first second, the failure, 1 in the next):\n%s", lambdas, text)
	}
	if statuses == 0 || !strings.Contains(text, "12 λ (6/s), 1 done, 1 failed; 7 λ lines not shown (-v shows every one)") {
		t.Errorf("no live summary line, or a wrong one:\n%s", text)
	}
	if got := r.Close(); got != "12 λ in 2.00s, 1 done, 1 failed; 7 λ lines not shown (-v shows every one)" {
		t.Errorf("summary %q", got)
	}
	if !strings.HasSuffix(out.String(), "\r\x1b[K") {
		t.Error("Close leaves the summary line on screen")
	}
}

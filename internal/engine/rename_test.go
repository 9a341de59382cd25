package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// orderV1 and orderV2: v2 renames the state Packing to Boxing and the
// event go to proceed.
const (
	renameV1 = `machines:
- name: Order
  max_retries: 1
  states:
  - name: New
    initial: true
    do_action: x.New
    transitions:
    - {target: Packing, event: go}
  - name: Packing
    do_action: x.Pack
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`
	renameV2 = `machines:
- name: Order
  max_retries: 1
  states:
  - name: New
    initial: true
    do_action: x.New
    transitions:
    - {target: Boxing, event: proceed}
  - name: Boxing
    do_action: x.Pack
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`
)

func parseMachine(t *testing.T, src string) *spec.Machine {
	t.Helper()
	s, d := spec.Parse("fsm.yaml", []byte(src))
	if d.HasErrors() {
		t.Fatal(d.Err())
	}
	return s.Machines[0]
}

// orderActions: New's do returns next; Pack's do follows the context's
// mode: "wait" parks, "fail" fails (a retry), "fatal" fails for good, else
// packed. v2 packs everything.
func orderActions(next string, v2 bool) engine.Resolver {
	return funcs(map[string]fsm.ActionFunc{
		"x.New": func(context.Context, *fsm.Context) (string, error) { return next, nil },
		"x.Pack": func(_ context.Context, c *fsm.Context) (string, error) {
			mode, _ := c.String("mode")
			switch {
			case mode == "wait" && c.Event() != "packed":
				return "", nil
			case v2:
			case mode == "fail":
				return "", errors.New("scanner offline")
			case mode == "fatal":
				return "", fsm.Permanent(errors.New("no such warehouse"))
			}
			return "packed", nil
		},
	})
}

// TestRenameInFlight: executions of v1 in every situation a deploy finds
// them (a queued message naming a renamed event, one naming a renamed
// state, one parked in it, a retry in backoff, a failed one) continue on
// v2's engine through the rename, every step in their history once, and
// all finish. Without the rename, v2's engine fails them.
func TestRenameInFlight(t *testing.T) {
	for _, withRename := range []bool{true, false} {
		t.Run(map[bool]string{true: "renamed", false: "not renamed"}[withRename], func(t *testing.T) {
			ctx := t.Context()
			v1 := mustCompile(t, parseMachine(t, renameV1), orderActions("go", false))
			v2 := mustCompile(t, parseMachine(t, renameV2), orderActions("proceed", true))
			h := newHarness(t, []*engine.Machine{v1})
			start := func(id, mode string) {
				if _, err := h.eng.Start(ctx, engine.StartRequest{Machine: "Order", CorrelationID: id, Context: map[string]any{"mode": mode}}); err != nil {
					t.Fatal(err)
				}
			}
			steps := func(n int) {
				for range n {
					if _, ok := h.step(); !ok {
						t.Fatal("no message")
					}
				}
			}
			start("fatal", "fatal")
			steps(2) // failed in New -> Packing
			start("retry", "fail")
			steps(2) // a retry of (New, go) in backoff
			start("parked", "wait")
			steps(2) // waiting in Packing
			start("parked2", "wait")
			steps(2) // waiting in Packing too
			start("packing", "ok")
			steps(2)                    // (Packing, packed) queued
			if _, ok := h.next(); !ok { // hidden for an hour, as a message in flight
				t.Fatal("no message for packing")
			}
			start("new", "ok")
			steps(1) // (New, go) queued
			for id, want := range map[string]engine.Status{"fatal": engine.StatusFailed, "retry": engine.StatusRunning,
				"parked": engine.StatusWaiting, "packing": engine.StatusRunning, "new": engine.StatusRunning} {
				if got := h.get(id).Status; got != want {
					t.Fatalf("%s on v1: %s, want %s", id, got, want)
				}
			}

			// The deploy: v2's engine on the same store and queue.
			o := engine.Options{Machines: []*engine.Machine{v2}, Store: h.mem, Queue: h.mem, Clock: h.clock}
			if withRename {
				o.Renames = []engine.Rename{{Machine: "Order", From: []string{v1.SpecHash()},
					States: map[string]string{"Packing": "Boxing"}, Events: map[string]string{"go": "proceed"}}}
			}
			e2, err := engine.New(o)
			if err != nil {
				t.Fatal(err)
			}
			h.eng = e2
			h.clock.Advance(2 * time.Hour)
			sendErr := e2.Send(ctx, "parked", "packed")
			// An operator's lfsm on v2 has no rename map: its send keeps the
			// message's v1 hash, so the engine that has the map renames it.
			bare, err := engine.New(engine.Options{Machines: []*engine.Machine{v2}, Store: h.mem, Queue: h.mem, Clock: h.clock})
			if err != nil {
				t.Fatal(err)
			}
			if err := bare.Send(ctx, "parked2", "packed"); err != nil {
				t.Fatal(err)
			}
			if m, err := engine.DecodeMessage(h.get("parked2").Checkpoint); err != nil || m.System.SpecHash != v1.SpecHash() || m.System.CurrentState != "Packing" {
				t.Fatalf("the bare send's message: %+v %v", m.System, err)
			}
			resumeErr := e2.Resume(ctx, "fatal")
			h.drain()

			if !withRename {
				if got := h.get("new"); got.Status != engine.StatusFailed || !strings.Contains(got.LastError, `"go"`) {
					t.Errorf("new without the rename: %s %q, want failed on event go", got.Status, got.LastError)
				}
				if got := h.get("packing"); got.Status != engine.StatusFailed {
					t.Errorf("packing without the rename: %s, want failed", got.Status)
				}
				return
			}
			if sendErr != nil || resumeErr != nil {
				t.Fatalf("send: %v, resume: %v", sendErr, resumeErr)
			}
			for _, id := range []string{"fatal", "retry", "parked", "parked2", "packing", "new"} {
				x := h.get(id)
				if x.Status != engine.StatusDone || x.State != "Shipped" {
					t.Errorf("%s: %s in %s (%s), want done in Shipped", id, x.Status, x.State, x.LastError)
				}
				hist, err := h.mem.History(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				var done []int
				var from []string
				for _, en := range hist {
					if en.Outcome != engine.OutcomeRetry && en.Outcome != engine.OutcomeFailed {
						done = append(done, en.Step)
					}
					from = append(from, en.From+"/"+en.Event)
				}
				// start, New's event, packed (Shipped has no exit: done at once)
				want := []int{0, 1, 2}
				if d := cmp.Diff(want, done); d != "" {
					t.Errorf("%s: steps committed (-want +got):\n%s\nhistory %v", id, d, from)
				}
			}
			// The renamed steps ran from the new names.
			hist, _ := h.mem.History(ctx, "packing")
			if got := hist[2].From + "/" + hist[2].Event; got != "Boxing/packed" {
				t.Errorf("packing's step 2 ran from %s, want Boxing/packed", got)
			}
			hist, _ = h.mem.History(ctx, "new")
			if got := hist[1].From + "/" + hist[1].Event; got != "New/proceed" {
				t.Errorf("new's step 1 ran from %s, want New/proceed", got)
			}
		})
	}
}

func TestNewRenamerRefuses(t *testing.T) {
	v2 := mustCompile(t, parseMachine(t, renameV2), orderActions("proceed", true))
	tests := []struct {
		name string
		r    engine.Rename
		want string
	}{
		{"machine", engine.Rename{Machine: "Invoice", From: []string{"x"}}, `machine "Invoice": no such machine`},
		{"target state", engine.Rename{Machine: "Order", From: []string{"x"}, States: map[string]string{"Packing": "Boxed"}}, `"Boxed", which is not a state`},
		{"target event", engine.Rename{Machine: "Order", From: []string{"x"}, Events: map[string]string{"go": "proced"}}, `"proced", which no transition`},
		{"own hash", engine.Rename{Machine: "Order", From: []string{v2.SpecHash()}}, "is the machine's own"},
		{"no hash", engine.Rename{Machine: "Order"}, "no spec hash"},
		{"pseudo", engine.Rename{Machine: "Order", From: []string{"x"}, States: map[string]string{spec.PseudoInit: "New"}}, "are not renamed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := engine.NewRenamer([]*engine.Machine{v2}, []engine.Rename{tt.r})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRenamesRoundTrip(t *testing.T) {
	rs := []engine.Rename{
		{Machine: "Order", From: []string{"b", "a"}, States: map[string]string{"Packing": "Boxing"}, Events: map[string]string{"go": "proceed"}},
		{Machine: "Invoice", From: []string{"c"}, States: map[string]string{"Open": "Draft"}},
	}
	b, err := engine.EncodeRenames(rs)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format_version":"1","machines":[{"machine":"Invoice","from":["c"],"states":{"Open":"Draft"}},{"machine":"Order","from":["a","b"],"states":{"Packing":"Boxing"},"events":{"go":"proceed"}}]}`
	if string(b) != want {
		t.Errorf("encoded\n%s\nwant\n%s", b, want)
	}
	got, err := engine.DecodeRenames(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].States["Packing"] != "Boxing" || got[1].From[0] != "a" {
		t.Errorf("decoded %+v", got)
	}
	for _, bad := range []string{`{"format_version":"2","machines":[]}`, `{"format_version":"1","machines":[],"extra":1}`, `[`} {
		if _, err := engine.DecodeRenames([]byte(bad)); err == nil {
			t.Errorf("DecodeRenames(%s) accepted", bad)
		}
	}
}

// TestRenameSwapKeepsOldHash: v2 swaps the names Left and Right. An
// operator's engine without the map sends r to an execution parked in v1's
// Left (v2's Right, which has no r): the message keeps v1's hash, so the
// function's engine renames it and refuses r from Right, instead of
// taking v2's Left on r as if the names meant the same.
func TestRenameSwapKeepsOldHash(t *testing.T) {
	ctx := t.Context()
	const v1src = `machines:
- name: M
  states:
  - {name: Start, initial: true, do_action: x.Go, transitions: [{target: Left, event: go}]}
  - {name: Left, do_action: x.Wait, transitions: [{target: End, event: l}]}
  - {name: Right, do_action: x.Wait, transitions: [{target: End, event: r}]}
  - {name: End, final: true}
`
	v2src := strings.NewReplacer("Left", "TMP", "Right", "Left").Replace(v1src)
	v2src = strings.ReplaceAll(v2src, "TMP", "Right")
	acts := funcs(map[string]fsm.ActionFunc{
		"x.Go":   func(context.Context, *fsm.Context) (string, error) { return "go", nil },
		"x.Wait": func(context.Context, *fsm.Context) (string, error) { return "", nil },
	})
	v1 := mustCompile(t, parseMachine(t, v1src), acts)
	v2 := mustCompile(t, parseMachine(t, v2src), acts)
	h := newHarness(t, []*engine.Machine{v1})
	id := h.start("M", nil)
	h.drain() // parked in v1's Left
	if x := h.get(id); x.Status != engine.StatusWaiting || x.State != "Left" {
		t.Fatalf("on v1: %s in %s", x.Status, x.State)
	}
	bare, err := engine.New(engine.Options{Machines: []*engine.Machine{v2}, Store: h.mem, Queue: h.mem, Clock: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.Send(ctx, id, "r"); err != nil {
		t.Fatal(err)
	}
	fn, err := engine.New(engine.Options{Machines: []*engine.Machine{v2}, Store: h.mem, Queue: h.mem, Clock: h.clock,
		Renames: []engine.Rename{{Machine: "M", From: []string{v1.SpecHash()}, States: map[string]string{"Left": "Right", "Right": "Left"}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = fn
	h.drain()
	if x := h.get(id); x.Status != engine.StatusFailed || !strings.Contains(x.LastError, `"r"`) {
		t.Errorf("r sent to v1's Left: %s in %s (%q), want failed: Right has no r", x.Status, x.State, x.LastError)
	}
}

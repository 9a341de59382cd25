package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestUnrunnableMessagesAreRecorded: every message the engine cannot run is
// recorded (reason, correlation id and machine where the message got that
// far, size, time) and counted, not only logged. An unknown machine is not
// among them: it is recorded as a failed execution.
func TestUnrunnableMessagesAreRecorded(t *testing.T) {
	sys := func(fields string) string {
		return `{"version":"0.1","system_context":{` + fields + `},"user_context":{}}`
	}
	const good = `"machine_name":"M","current_state":"A","current_event":"ok","steps":1,"retries":0`
	tests := []struct {
		name, payload string
		want          engine.DroppedMessage
	}{
		{"no correlation id", sys(good),
			engine.DroppedMessage{Reason: engine.DropNoCorrelationID, Machine: "M"}},
		{"empty correlation id", sys(good + `,"correlation_id":""`),
			engine.DroppedMessage{Reason: engine.DropNoCorrelationID, Machine: "M"}},
		{"no version", `{"system_context":{` + good + `,"correlation_id":"c1"},"user_context":{}}`,
			engine.DroppedMessage{Reason: engine.DropNoVersion, CorrelationID: "c1", Machine: "M"}},
		{"unknown version", `{"version":"9","system_context":{` + good + `,"correlation_id":"c1"}}`,
			engine.DroppedMessage{Reason: engine.DropUnknownVersion, CorrelationID: "c1", Machine: "M"}},
		{"no current event", sys(`"machine_name":"M","current_state":"A","correlation_id":"c1"`),
			engine.DroppedMessage{Reason: engine.DropNoEvent, CorrelationID: "c1", Machine: "M"}},
		{"NaN in the context (Python's json.dumps)",
			`{"version": "0.1", "system_context": {` + good + `, "correlation_id": "c1"}, "user_context": {"x": NaN}}`,
			engine.DroppedMessage{Reason: engine.DropNonFinite, CorrelationID: "c1", Machine: "M"}},
		{"-Infinity in the context",
			`{"version": "0.1", "system_context": {` + good + `, "correlation_id": "c1"}, "user_context": {"x": [-Infinity]}}`,
			engine.DroppedMessage{Reason: engine.DropNonFinite, CorrelationID: "c1", Machine: "M"}},
		{"not JSON", `{"version":`, engine.DroppedMessage{Reason: engine.DropNotJSON}},
		{"not an object", `[1]`, engine.DroppedMessage{Reason: engine.DropNotJSON}},
		{"bad correlation id", sys(good + ",\"correlation_id\":\"id\xff\xfe\""),
			engine.DroppedMessage{Reason: engine.DropBadCorrelationID, CorrelationID: "id\uFFFD\uFFFD", Machine: "M"}},
		{"correlation id with a space", sys(good + `,"correlation_id":"a b"`),
			engine.DroppedMessage{Reason: engine.DropBadCorrelationID, CorrelationID: "a b", Machine: "M"}},
		{"wrong type", sys(good + `,"correlation_id":"c1","retries":"x"`),
			engine.DroppedMessage{Reason: engine.DropMalformed, CorrelationID: "c1", Machine: "M"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.clock.Advance(3)
			res, err := h.eng.Handle(t.Context(), []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped != engine.DropMalformed || res.Err == nil {
				t.Errorf("result %+v, want a malformed drop with its error", res)
			}
			got, err := h.mem.ListDropped(t.Context(), engine.DropFilter{})
			if err != nil || len(got) != 1 {
				t.Fatalf("ListDropped = %+v, %v; want one record", got, err)
			}
			want := tt.want
			want.Time, want.Size, want.Detail = h.clock.Now(), len(tt.payload), res.Err.Error()
			if diff := cmp.Diff(want, got[0]); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if n := h.counters.Total(engine.MetricDropped); n != 1 {
				t.Errorf("%s = %d, want 1", engine.MetricDropped, n)
			}
		})
	}
	t.Run("NaN detail says how to fix it", func(t *testing.T) {
		h := newHarness(t, nil)
		res, _ := h.eng.Handle(t.Context(), []byte(`{"version":"0.1","user_context":{"x":NaN}}`))
		if res.Err == nil || !strings.Contains(res.Err.Error(), "allow_nan=False") {
			t.Errorf("error %v, want the fix named", res.Err)
		}
	})
	t.Run("unknown machine is a failed execution, not a drop", func(t *testing.T) {
		h := newHarness(t, nil)
		res, err := h.eng.Handle(t.Context(), []byte(sys(`"machine_name":"Nope","current_state":"A","current_event":"e","correlation_id":"u1"`)))
		if err != nil || res.Outcome != engine.OutcomeFailed {
			t.Fatalf("Handle = %+v, %v; want a failed outcome", res, err)
		}
		if x := h.get("u1"); x.Status != engine.StatusFailed {
			t.Errorf("status %s, want failed", x.Status)
		}
		if got, _ := h.mem.ListDropped(t.Context(), engine.DropFilter{}); len(got) != 0 {
			t.Errorf("dropped %+v, want none", got)
		}
	})
}

// failingDrops is a DropRecorder whose store is down.
type failingDrops struct{}

var errDown = errors.New("store down")

func (failingDrops) RecordDrop(ctx context.Context, d engine.DroppedMessage) error { return errDown }
func (failingDrops) ListDropped(ctx context.Context, f engine.DropFilter) ([]engine.DroppedMessage, error) {
	return nil, errDown
}

// TestDropNotRecordedComesBack: a drop the store cannot record is an
// infrastructure error, so the message comes back (and is recorded then)
// instead of vanishing.
func TestDropNotRecordedComesBack(t *testing.T) {
	h := newHarness(t, nil, func(o *engine.Options) { o.Drops = failingDrops{} })
	_, err := h.eng.Handle(t.Context(), []byte(`{}`))
	if !errors.Is(err, errDown) {
		t.Errorf("Handle = %v, want the store's error", err)
	}
}

func TestStartRefusesBadCorrelationID(t *testing.T) {
	m := mustCompile(t, twoStatesQueued(), funcs(map[string]fsm.ActionFunc{
		"do": func(context.Context, *fsm.Context) (string, error) { return "ok", nil }}))
	for _, id := range []string{"id\xff\xfe", "a b", "a/b", strings.Repeat("x", engine.MaxCorrelationIDLength+1)} {
		h := newHarness(t, []*engine.Machine{m})
		_, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", CorrelationID: id})
		if !errors.Is(err, engine.ErrInvalidCorrelationID) {
			t.Errorf("Start(%q) = %v, want ErrInvalidCorrelationID", id, err)
		}
		if xs, _ := h.mem.List(t.Context(), engine.ListFilter{}); len(xs.Executions) != 0 {
			t.Errorf("Start(%q) recorded %d executions", id, len(xs.Executions))
		}
	}
	for _, id := range []string{"0f3c2b1a9e8d4c7b8a6f5e4d3c2b1a09", "order-1:retry_2.x", strings.Repeat("x", engine.MaxCorrelationIDLength)} {
		h := newHarness(t, []*engine.Machine{m})
		if _, err := h.eng.Start(t.Context(), engine.StartRequest{Machine: "M", CorrelationID: id}); err != nil {
			t.Errorf("Start(%q) = %v", id, err)
		}
	}
}

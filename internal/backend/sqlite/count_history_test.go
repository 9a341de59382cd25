package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestCountHistoryRebuildsCounters: the counters engine.CountersFrom
// rebuilds from CountHistory (lfsm metrics on the local store) are the
// ones the engine counted while it ran the same executions on this store,
// for every counter the store keeps a trace of: steps that went on, failed
// and were retried, failed the execution, and ended it, and a malformed
// message recorded as dropped. A since after the run counts nothing.
func TestCountHistoryRebuildsCounters(t *testing.T) {
	clock := storetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	db := open(t, sqlite.Options{Clock: clock.Now})
	m := &spec.Machine{Name: "m", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Flaky"}, Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", DoAction: &spec.ActionRef{Ref: "t.Check"}, Transitions: []*spec.Transition{{Target: "C", Event: "ok"}}},
		{Name: "C", Final: true},
	}}
	var mu sync.Mutex
	fails := map[string]int{}
	cm, err := engine.Compile(m, func(ref string) (fsm.Action, error) {
		if ref == "t.Flaky" {
			return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				if fails[c.CorrelationID()] < 2 {
					fails[c.CorrelationID()]++
					return "", errors.New("not yet")
				}
				return "ok", nil
			}), nil
		}
		return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
			if v, _ := c.Get("bad"); v == true {
				return "", fsm.Permanent(errors.New("bad order"))
			}
			return "ok", nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	counters := engine.NewCounters()
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: db, Queue: db, Retrier: db, Metrics: counters, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := eng.Start(t.Context(), engine.StartRequest{Machine: "m", CorrelationID: fmt.Sprintf("x%d", i),
			Context: map[string]any{"bad": i%3 == 0}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Send(t.Context(), engine.OutMessage{Key: "junk", Payload: []byte(`{"version":"0.1","system_context":{"machine_name":"m"`)}); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		ds, err := db.Receive(t.Context(), 10, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			if n, _ := db.QueueLen(t.Context()); n == 0 {
				break
			}
			clock.Advance(time.Minute) // past the retries' backoff
			continue
		}
		for _, d := range ds {
			if _, err := eng.HandleDelivery(t.Context(), db, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	hs, drops, err := db.CountHistory(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := engine.CountersFrom(hs, drops)
	want := counters.Snapshot()
	if want[engine.MetricKey{Name: engine.MetricRetry, Machine: "m", State: "pseudo_init", Event: "pseudo_init"}] == 0 ||
		want[engine.MetricKey{Name: engine.MetricFatal, Machine: "m", State: "A", Event: "ok"}] != 2 ||
		want[engine.MetricKey{Name: engine.MetricDone, Machine: "m", State: "B", Event: "ok"}] != 4 ||
		want[engine.MetricKey{Name: engine.MetricDropped, Machine: "m"}] != 1 {
		t.Fatalf("the run did not count what the test is about: %v", want)
	}
	for k := range want {
		if k.Name == engine.MetricDuplicate || k.Name == engine.MetricCache {
			t.Fatalf("the run counted %v, which no store keeps", k)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("counters rebuilt from the store (-engine +rebuilt):\n%s", d)
	}
	hs, drops, err = db.CountHistory(t.Context(), clock.Now().Add(time.Second))
	if err != nil || len(hs) != 0 || len(drops) != 0 {
		t.Errorf("CountHistory since after the run = %v, %v, %v; want nothing", hs, drops, err)
	}
}

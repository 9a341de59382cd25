package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

func loadSpecText(t *testing.T, src string) *spec.Spec {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fsm.yaml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(p)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return s
}

const orderV1 = `machines:
- name: Order
  states:
  - name: New
    initial: true
    do_action: example.com/x.Do
    transitions:
    - {target: Packing, event: go}
  - name: Packing
    do_action: example.com/x.Do
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`

// orderV2 renames Packing and the event that leads there.
const orderV2 = `machines:
- name: Order
  states:
  - name: New
    initial: true
    do_action: example.com/x.Do
    transitions:
    - {target: Boxing, event: proceed}
  - name: Boxing
    do_action: example.com/x.Do
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`

// TestInFlight: executions really run on the engine (memory store): one
// parks waiting in Packing, one is about to dispatch go from New, one has
// not started. A spec without Packing and without New's go strands the
// first two, and only those.
func TestInFlight(t *testing.T) {
	ctx := t.Context()
	v1 := loadSpecText(t, orderV1)
	mc, err := engine.Compile(v1.Machines[0], engine.SimulateActions(v1.Machines[0], engine.SimulateOptions{Events: []string{"go", "go"}}))
	if err != nil {
		t.Fatal(err)
	}
	b := memory.New(memory.Options{})
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{mc}, Store: b, Queue: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := e.Start(ctx, engine.StartRequest{Machine: "Order", CorrelationID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// a's start (go), b's start (go), a's go (Packing: no event, waits).
	for range 3 {
		ds, err := b.Receive(ctx, 1, time.Minute, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("receive: %v %v", ds, err)
		}
		if _, err := e.HandleDelivery(ctx, b, ds[0]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Start(ctx, engine.StartRequest{Machine: "Order", CorrelationID: "c"}); err != nil {
		t.Fatal(err)
	}

	if got, err := InFlight(ctx, b, v1); err != nil || len(got) != 0 {
		t.Fatalf("the same spec strands %v (%v)", got, err)
	}
	got, err := InFlight(ctx, b, loadSpecText(t, orderV2))
	if err != nil {
		t.Fatal(err)
	}
	want := []Stranded{
		{Machine: "Order", State: "New", Event: "go", Reason: "event has no transition from this state in the new spec", Where: "store", Count: 1, IDs: []string{"b"}},
		{Machine: "Order", State: "Packing", Reason: "state is not in the new spec", Where: "store", Count: 1, IDs: []string{"a"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stranded (-want +got):\n%s", d)
	}
	msg := (&InFlightError{Stack: "shop", Stranded: got}).Error()
	for _, w := range []string{"2 live execution(s)", "Order in state Packing: 1 (state is not in the new spec), e.g. a", "about to dispatch go", "--force"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	// A spec without the machine strands all three.
	other := loadSpecText(t, strings.ReplaceAll(orderV1, "name: Order", "name: Invoice"))
	got, err = InFlight(ctx, b, other)
	if err != nil || len(got) != 3 {
		t.Fatalf("without the machine: %+v %v", got, err)
	}
	for _, g := range got {
		if g.Count != 1 || g.Reason != "machine is not in the new spec" {
			t.Errorf("without the machine: %+v", g)
		}
	}
}

package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestReceiveLeased: the leases taken with a receive follow Acquire's rule and
// refusals, and are real leases of the store.
func TestReceiveLeased(t *testing.T) {
	ctx := t.Context()
	db := open(t, sqlite.Options{})
	now := time.Now()
	req := func(id string, step int) engine.AcquireRequest {
		return engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: step, Now: now, Expires: now.Add(time.Minute)}
	}
	// Payloads name what the engine would ask for; "-" is malformed.
	requests := map[string]engine.AcquireRequest{
		"x0": req("x", 0), "x0 again": req("x", 0), "y0": req("y", 0), "stopped": req("s", 1),
	}
	lease := func(p []byte) (engine.AcquireRequest, bool) {
		q, ok := requests[string(p)]
		return q, ok
	}
	if err := db.Create(ctx, engine.Execution{CorrelationID: "s", Machine: "M", Status: engine.StatusStopped, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"x0", "x0 again", "y0", "stopped", "-"} {
		if _, err := db.Send(ctx, engine.OutMessage{Key: p, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := db.ReceiveLeased(ctx, 10, time.Minute, 0, lease)
	if err != nil || len(ds) != 5 {
		t.Fatalf("ReceiveLeased = %d deliveries, %v; want 5", len(ds), err)
	}
	want := []struct {
		fence int64
		err   error
	}{{1, nil}, {0, engine.ErrLeaseHeld}, {1, nil}, {0, engine.ErrInactive}}
	for i, w := range want {
		l := ds[i].Lease
		if l == nil || l.Lease.Fence != w.fence || !errors.Is(l.Err, w.err) || (w.err == nil) != (l.Err == nil) {
			t.Errorf("delivery %q: lease %+v, want fence %d, err %v", ds[i].Payload, l, w.fence, w.err)
		}
	}
	if ds[4].Lease != nil {
		t.Errorf("malformed delivery has lease %+v, want none", ds[4].Lease)
	}
	// The lease is the store's: Acquire refuses it to a duplicate, and the
	// holder commits with its fence.
	if _, err := db.Acquire(ctx, req("x", 0)); !errors.Is(err, engine.ErrLeaseHeld) {
		t.Errorf("Acquire of a leased step = %v, want ErrLeaseHeld", err)
	}
	c := engine.Commit{CorrelationID: "x", Machine: "M", Fence: 1, Outcome: engine.OutcomeNext, Status: engine.StatusRunning, Now: now}
	if _, err := db.CommitStep(ctx, c, nil, ds[0].Receipt); err != nil {
		t.Fatal(err)
	}
	// A duplicate of a done step is refused as Acquire refuses it.
	if _, err := db.Send(ctx, engine.OutMessage{Key: "x", Payload: []byte("x0")}); err != nil {
		t.Fatal(err)
	}
	ds, err = db.ReceiveLeased(ctx, 10, time.Minute, 0, lease)
	if err != nil || len(ds) != 1 || ds[0].Lease == nil || !errors.Is(ds[0].Lease.Err, engine.ErrDuplicate) {
		t.Fatalf("ReceiveLeased of a done step = %+v, %v; want one delivery refused with ErrDuplicate", ds, err)
	}
}

// TestLeasedDeliveryRenewedAtStepStart: a delivery that waited in the worker
// with the lease its receive took has the lease renewed when its step starts,
// so the step runs under a whole lease. Before, the lease ran from the
// receive: with two workers, 1 s actions and a 4 s lease, 29 % of the steps
// ran twice (the waiting deliveries' leases expired and were taken over).
func TestLeasedDeliveryRenewedAtStepStart(t *testing.T) {
	ctx := t.Context()
	clock := storetest.NewClock(storetest.T0)
	db := open(t, sqlite.Options{Clock: clock.Now})
	const lease = 4 * time.Second
	var dupErr error
	m := &spec.Machine{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: &spec.ActionRef{Ref: "a"}, Transitions: []*spec.Transition{{Target: "B", Event: "go"}}},
		{Name: "B", Final: true},
	}}
	var id string
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			// The action takes 2 s, and a second worker receives a
			// duplicate meanwhile.
			clock.Advance(2 * time.Second)
			_, dupErr = db.Acquire(ctx, engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: 0,
				Now: clock.Now(), Expires: clock.Now().Add(lease)})
			return "go", nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: db, Queue: db, Clock: clock, LeaseTimeout: lease})
	if err != nil {
		t.Fatal(err)
	}
	if id, err = e.Start(ctx, engine.StartRequest{Machine: "M"}); err != nil {
		t.Fatal(err)
	}
	ds, err := db.ReceiveLeased(ctx, 10, time.Minute, 0, func(p []byte) (engine.AcquireRequest, bool) {
		return engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: 0, Now: clock.Now(), Expires: clock.Now().Add(lease)}, true
	})
	if err != nil || len(ds) != 1 || ds[0].Lease == nil || ds[0].Lease.Err != nil {
		t.Fatalf("ReceiveLeased = %+v, %v", ds, err)
	}
	clock.Advance(lease - time.Second) // it waited behind the rest of its batch
	res, err := e.HandleDelivery(ctx, db, ds[0])
	if err != nil || res.Outcome != engine.OutcomeNext {
		t.Fatalf("HandleDelivery = %+v, %v", res, err)
	}
	if !errors.Is(dupErr, engine.ErrLeaseHeld) {
		t.Errorf("duplicate Acquire while the step ran = %v, want ErrLeaseHeld (the lease renewed at step start)", dupErr)
	}
}

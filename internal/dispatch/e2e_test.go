package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// seedExample compiles the seed's Example (examples/seed/fsm.yaml) with
// actions that do nothing but choose its main path: FirstState and
// SecondState's do actions return done, ThirdState's ends it.
func seedExample(t testing.TB) *engine.Machine {
	t.Helper()
	s, diags := spec.Load(filepath.Join("..", "..", "examples", "seed", "fsm.yaml"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var m *spec.Machine
	for _, x := range s.Machines {
		if x.Name == "Example" {
			m = x
		}
	}
	if m == nil {
		t.Fatal("no machine Example in examples/seed/fsm.yaml")
	}
	cm, err := engine.Compile(m, func(ref string) (fsm.Action, error) {
		event := ""
		if strings.HasSuffix(ref, ".Action2") || strings.HasSuffix(ref, ".Action5") {
			event = "done"
		}
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return event, nil }), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// failTwice is the machine that retries: its step fails on its first two
// attempts, then succeeds and finishes.
func failTwice(t testing.TB) *engine.Machine {
	t.Helper()
	m := &spec.Machine{Name: "Flaky", States: []*spec.State{
		{Name: "Try", Initial: true, DoAction: &spec.ActionRef{Ref: "t.FailTwice"}, Transitions: []*spec.Transition{{Target: "Done", Event: "ok"}}},
		{Name: "Done", Final: true},
	}}
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
			if c.Facts().Retries < 2 {
				return "", errors.New("flaky: not yet")
			}
			return "ok", nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// timer is a machine whose first step asks for its next message to be
// delayed by 2 s (fsm.Context.Delay): a timer, which the dispatches that
// cannot delay put on their retry source.
func timer(t testing.TB) *engine.Machine {
	t.Helper()
	m := &spec.Machine{Name: "Timer", States: []*spec.State{
		{Name: "Wait", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Later"}, Transitions: []*spec.Transition{{Target: "Done", Event: "ok"}}},
		{Name: "Done", Final: true},
	}}
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
			c.Delay(2 * time.Second)
			return "ok", nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// TestEndToEnd runs the seed's Example, the machine that retries (a step
// that fails twice) and a timer once per dispatch on the emulators, wired as fsm/host
// wires the function (the DynamoDB store, the dispatch's queue and retry
// source, the Lambda handler) and fed as the dispatch feeds it: the SQS
// event source mapping (sqs; sns-sqs, whose executions are started through
// the topic and reach the queue by raw delivery), SNS's asynchronous
// invocation (sns; see snsRig), the Kinesis and DynamoDB-stream mappings
// (each shard in order), with the scheduled poll of the retry table where
// the dispatch cannot delay (which also holds the timer's delayed message
// there). Every execution finishes with every step once in its history, in
// order.
func TestEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		rig  func(testing.TB, ...*awsconfig.Meter) rig
	}{
		{"sqs", sqsRig},
		{"sns-sqs", snsSQSRig},
		{"sns", snsRig},
		{"kinesis", kinesisRig},
		{"dynamodb", streamRig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rig(t)
			c := ddbClient(t)
			table := newTable(t, c, "lfsm-e2e-store", dynamodb.CreateTable)
			var retrier engine.Retrier = r.retries
			if r.retries == nil {
				retrier = r.queue.(engine.Retrier)
			}
			store, err := dynamodb.New(dynamodb.Options{Client: c, Table: table, Queue: r.queue, Retrier: retrier, TransactCommit: r.tx})
			if err != nil {
				t.Fatal(err)
			}
			machines := []*engine.Machine{seedExample(t), failTwice(t), timer(t)}
			eng, err := engine.New(engine.Options{Machines: machines, Store: store, Queue: store, Retrier: store,
				MaxMessageBytes: dynamodb.MaxCheckpointBytes})
			if err != nil {
				t.Fatal(err)
			}
			ho := lambda.Options{Engine: eng, Store: store, Retrier: retrier}
			if r.visib != nil {
				ho.Visibility = r.visib
			}
			h, err := lambda.New(ho)
			if err != nil {
				t.Fatal(err)
			}
			poll, err := r.poll(t.Context(), h)
			if err != nil {
				t.Fatal(err)
			}
			starter := eng
			if r.start != nil {
				ss, err := dynamodb.New(dynamodb.Options{Client: c, Table: table, Queue: r.start, Retrier: retrier})
				if err != nil {
					t.Fatal(err)
				}
				if starter, err = engine.New(engine.Options{Machines: machines, Store: ss, Queue: ss, Retrier: ss}); err != nil {
					t.Fatal(err)
				}
			}
			var ids []string
			for _, m := range []string{"Example", "Example", "Flaky", "Flaky", "Timer"} {
				id, err := starter.Start(t.Context(), engine.StartRequest{Machine: m, Context: map[string]any{"arg1": len(ids)}})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			deadline := time.Now().Add(2 * time.Minute)
			for {
				done := 0
				for _, id := range ids {
					x, err := store.Get(t.Context(), id)
					if err != nil {
						t.Fatal(err)
					}
					switch x.Status {
					case engine.StatusDone:
						done++
					case engine.StatusRunning:
					default:
						t.Fatalf("%s is %s: %s", id, x.Status, x.LastError)
					}
				}
				if done == len(ids) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d executions done after two minutes", done, len(ids))
				}
				if err := poll(t.Context()); err != nil {
					t.Fatal(err)
				}
				if r.retries != nil {
					// The scheduled poll, as if a minute had passed: the
					// backoffs (up to 4 s) are shorter than that.
					if _, err := r.retries.Poll(t.Context(), time.Now().Add(time.Minute)); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, id := range ids {
				hist, err := store.History(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range hist {
					got = append(got, fmt.Sprintf("%d.%d %s %s", e.Step, e.Retries, e.Outcome, e.To))
				}
				want := []string{"0.0 next FirstState", "1.0 next SecondState", "2.0 next ThirdState", "3.0 done pseudo_final"}
				if i == 4 {
					want = []string{"0.0 next Wait", "1.0 done Done"}
				} else if i >= 2 {
					want = []string{"0.0 retry pseudo_init", "0.1 retry pseudo_init", "0.2 next Try", "1.0 done Done"}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s history %q, want %q (every step once, in order)", id, got, want)
				}
			}
		})
	}
}

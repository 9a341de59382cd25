package dynamodb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestEngineSendOnAWS drives an execution to waiting, delivers an event
// with Engine.Send (lfsm send) and runs it to its end, on the DynamoDB store
// and a real SQS queue: the claim and the event's message work as locally,
// and a second send of the same event is refused.
func TestEngineSendOnAWS(t *testing.T) {
	sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-send"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
	})
	q, err := sqs.New(t.Context(), sqs.Options{Client: sc, URL: *qu.QueueUrl})
	if err != nil {
		t.Fatal(err)
	}
	c, table := newTable(t, nil)
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q})
	m := &spec.Machine{Name: "Order", States: []*spec.State{
		{Name: "New", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Pack"}, Transitions: []*spec.Transition{{Target: "Packed", Event: "pack"}}},
		{Name: "Packed", Transitions: []*spec.Transition{{Target: "Shipped", Event: "ship"}}},
		{Name: "Shipped", Final: true},
	}}
	pack := fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "pack", nil })
	cm, err := engine.Compile(m, func(string) (fsm.Action, error) { return pack, nil })
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{cm}, Store: s, Queue: s, Retrier: s})
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.Start(t.Context(), engine.StartRequest{Machine: "Order"})
	if err != nil {
		t.Fatal(err)
	}
	// drain handles what the queue holds until the execution is in want.
	drain := func(want engine.Status) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			ds, err := q.Receive(t.Context(), 10, 30*time.Second, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ds {
				if _, err := eng.HandleDelivery(t.Context(), q, d); err != nil {
					t.Fatal(err)
				}
			}
			if x, err := s.Get(t.Context(), id); err == nil && x.Status == want {
				return
			}
		}
		x, _ := s.Get(t.Context(), id)
		t.Fatalf("execution is %s after 30 s, want %s", x.Status, want)
	}
	drain(engine.StatusWaiting)
	if err := eng.Send(t.Context(), id, "ship"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := eng.Send(t.Context(), id, "ship"); !errors.Is(err, engine.ErrNotWaiting) {
		t.Errorf("second Send = %v, want ErrNotWaiting", err)
	}
	drain(engine.StatusDone)
	h, err := s.History(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range h {
		got = append(got, e.From+" -("+e.Event+")-> "+e.To)
	}
	want := []string{"pseudo_init -(pseudo_init)-> New", "New -(pack)-> Packed", "Packed -(ship)-> Shipped"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

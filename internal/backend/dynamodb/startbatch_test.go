package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
)

func startInputs(n int) ([]engine.Execution, []engine.OutMessage) {
	var xs []engine.Execution
	var outs []engine.OutMessage
	for i := range n {
		id := fmt.Sprintf("x%03d", i)
		msg := []byte(`{"start":"` + id + `"}`)
		xs = append(xs, engine.Execution{CorrelationID: id, Machine: "M", State: "pseudo_init", Checkpoint: msg, DueAt: t0, CreatedAt: t0, UpdatedAt: t0})
		outs = append(outs, engine.OutMessage{Key: id, Payload: msg})
	}
	return xs, outs
}

// TestStartBatch creates 60 executions and sends their start messages to a
// real SQS queue (the emulator) in batched calls, and counts the calls.
func TestStartBatch(t *testing.T) {
	m := &awsconfig.Meter{}
	sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", m))
	qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-startbatch"))})
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
	c, table := newTable(t, m)
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q})
	xs, outs := startInputs(60)
	for i, err := range s.StartBatch(t.Context(), xs, outs) {
		if err != nil {
			t.Errorf("execution %d: %v", i, err)
		}
	}
	for _, x := range xs {
		got, err := s.Get(t.Context(), x.CorrelationID)
		if err != nil || got.Status != engine.StatusRunning || string(got.Checkpoint) != string(x.Checkpoint) || !got.DueAt.Equal(t0) {
			t.Errorf("Get(%s) = %+v, %v", x.CorrelationID, got, err)
		}
	}
	u := m.Usage()
	if u["DynamoDB.BatchWriteItem"].Calls != 3 || u["SQS.SendMessageBatch"].Calls != 6 {
		t.Errorf("calls %v: want 3 BatchWriteItem (25 each) and 6 SendMessageBatch (10 each)", u)
	}
	a, err := sc.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: qu.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]; got != "60" {
		t.Errorf("queue holds %s messages, want 60", got)
	}
}

// down is a queue that is unreachable.
type down struct{}

func (down) Send(context.Context, engine.OutMessage) (string, error) {
	return "", errors.New("queue unreachable")
}

// TestStartBatchNotSent: executions created whose start message could not
// be sent are reported with ErrNotSent, so the engine marks them failed.
func TestStartBatchNotSent(t *testing.T) {
	s := newStore(t, dynamodb.Options{Queue: down{}})
	xs, outs := startInputs(3)
	for i, err := range s.StartBatch(t.Context(), xs, outs) {
		if !errors.Is(err, engine.ErrNotSent) {
			t.Errorf("execution %d: %v, want ErrNotSent", i, err)
		}
	}
	if _, err := s.Get(t.Context(), "x001"); err != nil {
		t.Errorf("Get of a created execution whose message was not sent: %v", err)
	}
}

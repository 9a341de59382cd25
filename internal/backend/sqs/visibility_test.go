package sqs_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/sqs"
)

// A received message whose visibility is set to 0 is received again at once
// (with a long visibility it would not be), and the queue's URL is looked
// up once for many changes.
func TestVisibility(t *testing.T) {
	m := &awsconfig.Meter{}
	c, url, arn := newQueue(t, m)
	if _, err := c.SendMessage(t.Context(), &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	receive := func() *string {
		out, err := c.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: &url, VisibilityTimeout: 3600, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			return nil
		}
		return out.Messages[0].ReceiptHandle
	}
	v := sqs.NewVisibility(c)
	for i := range 2 {
		rh := receive()
		if rh == nil {
			t.Fatalf("receive %d: nothing visible", i)
		}
		if err := v.ChangeVisibility(t.Context(), arn, *rh, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Usage()["SQS.GetQueueUrl"].Calls; n != 1 {
		t.Errorf("GetQueueUrl calls %d, want 1 (usage %v)", n, m.Usage())
	}
	if err := v.ChangeVisibility(t.Context(), arn, "rh", -time.Second); err == nil {
		t.Error("negative timeout: no error")
	}
	if err := v.ChangeVisibility(t.Context(), "arn:aws:sqs:nope", "rh", 0); err == nil {
		t.Error("bad ARN: no error")
	}
}

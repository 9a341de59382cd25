package sqs_test

import (
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/sqs"
)

// TestMaxMessageBytes reads a queue's MaximumMessageSize from the emulator:
// a lowered size is the limit (less the attributes' room), and a queue left
// at SQS's default gives the default.
func TestMaxMessageBytes(t *testing.T) {
	c := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	for _, size := range []int{0, 2048} {
		in := &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-limit"))}
		if size > 0 {
			in.Attributes = map[string]string{"MaximumMessageSize": strconv.Itoa(size)}
		}
		q, err := c.CreateQueue(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = c.DeleteQueue(t.Context(), &awssqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
		got, err := sqs.MaxMessageBytes(t.Context(), c, *q.QueueUrl)
		if err != nil {
			t.Fatal(err)
		}
		want := sqs.DefaultMaxMessageBytes
		if size > 0 {
			want = size
		}
		if got >= want || got < want-1024 {
			t.Errorf("MaximumMessageSize %d: limit %d, want a little below %d", size, got, want)
		}
	}
	// A queue that does not exist is an error, and the default for a
	// caller that goes on.
	got, err := sqs.MaxMessageBytes(t.Context(), c, "http://127.0.0.1:1/000000000000/lfsm-no-such-queue")
	if err == nil || got <= 0 {
		t.Errorf("missing queue: %d, %v; want the default and an error", got, err)
	}
}

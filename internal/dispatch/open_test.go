package dispatch_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/dispatch"
)

// The sns dispatch has the store commit in a transaction: each invocation
// carries one record, so nothing is batched, and a transition is 3 calls
// (acquire, transaction, publish) instead of 4 (BenchmarkDispatch/sns+tx).
// SNS's New makes no call, so only the configuration is needed.
func TestOpenSNSCommitsInATransaction(t *testing.T) {
	awstest.Config(t, "SNS", nil) // skips without the emulators' environment
	d, err := dispatch.Open(t.Context(), dispatch.Options{Kind: dispatch.SNS, ARN: "arn:aws:sns:us-east-1:000000000000:t",
		RetryTableARN: "arn:aws:dynamodb:us-east-1:000000000000:table/r"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.TransactCommit {
		t.Errorf("sns dispatch: TransactCommit false, want true")
	}
}

// TestOpenSQSReadsTheQueuesLimit: a queue whose MaximumMessageSize was
// lowered bounds the dispatch's MaxMessageBytes (the engine refuses a bigger
// message before its step commits, instead of SQS refusing the send after).
func TestOpenSQSReadsTheQueuesLimit(t *testing.T) {
	c := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	name := awstest.Name("lfsm-open-limit")
	q, err := c.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(name),
		Attributes: map[string]string{"MaximumMessageSize": "4096"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.DeleteQueue(t.Context(), &awssqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	d, err := dispatch.Open(t.Context(), dispatch.Options{Kind: dispatch.SQS, ARN: "arn:aws:sqs:us-east-1:000000000000:" + name})
	if err != nil {
		t.Fatal(err)
	}
	if d.MaxMessageBytes > 4096 || d.MaxMessageBytes < 3072 {
		t.Errorf("MaxMessageBytes %d, want a little below the queue's 4096", d.MaxMessageBytes)
	}
}

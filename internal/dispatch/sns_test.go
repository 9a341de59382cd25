package dispatch_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sns"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
)

// TestSNSDirect runs a 10-step chain and a step that fails once on the sns
// dispatch: the function publishes each next message to the topic, and
// each notification reaches it as SNS invokes Lambda (one record per
// invocation). fauxqs cannot invoke a function, so a queue subscribed
// without raw delivery receives the notifications (SNS's own envelope:
// message id, topic, message) and the test turns each into the SNS event
// Lambda would get. Retries wait in the retry table, as the deployment's
// SNS dispatch has it; every execution finishes with each step once.
func TestSNSDirect(t *testing.T) {
	nc := awssns.NewFromConfig(awstest.Config(t, "SNS", nil))
	qc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	name := awstest.Name("lfsm-sns-direct")
	top, err := nc.CreateTopic(t.Context(), &awssns.CreateTopicInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	qu, err := qc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"VisibilityTimeout": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = nc.DeleteTopic(t.Context(), &awssns.DeleteTopicInput{TopicArn: top.TopicArn})
		_, _ = qc.DeleteQueue(t.Context(), &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
	})
	attrs, err := qc.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: qu.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(t.Context(), &awssns.SubscribeInput{TopicArn: top.TopicArn, Protocol: aws.String("sqs"),
		Endpoint: aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)])}); err != nil {
		t.Fatal(err)
	}
	topic, err := sns.New(t.Context(), sns.Options{Client: nc, ARN: aws.ToString(top.TopicArn)})
	if err != nil {
		t.Fatal(err)
	}
	retries := retryTable(t, topic)
	c := ddbClient(t)
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: newTable(t, c, "lfsm-sns-store", dynamodb.CreateTable), Queue: topic, Retrier: retries})
	if err != nil {
		t.Fatal(err)
	}
	d := &done{}
	d.left.Store(4)
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, 10), flaky(t)}, Store: store, Queue: store, Retrier: store,
		Metrics: d, MaxMessageBytes: min(topic.MaxMessageBytes(), dynamodb.MaxCheckpointBytes)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := lambda.New(lambda.Options{Engine: eng, Store: store, Retrier: retries})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range []string{"chain", "chain", "flaky", "flaky"} {
		id, err := eng.Start(t.Context(), engine.StartRequest{Machine: m})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for d.left.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d executions not done after two minutes", d.left.Load())
		}
		out, err := qc.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: qu.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range out.Messages {
			var n struct {
				Type, MessageId, TopicArn, Message, Timestamp string
			}
			if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &n); err != nil || n.Type != "Notification" {
				t.Fatalf("not an SNS notification: %q (%v)", aws.ToString(msg.Body), err)
			}
			ev, _ := json.Marshal(events.SNSEvent{Records: []events.SNSEventRecord{{
				EventSource: "aws:sns", EventVersion: "1.0", EventSubscriptionArn: n.TopicArn + ":sub",
				SNS: events.SNSEntity{Type: n.Type, MessageID: n.MessageId, TopicArn: n.TopicArn, Message: n.Message},
			}}})
			if _, err := h.Invoke(t.Context(), ev); err != nil {
				continue // Lambda retries an asynchronous event: here the queue redelivers it
			}
			if _, err := qc.DeleteMessage(t.Context(), &awssqs.DeleteMessageInput{QueueUrl: qu.QueueUrl, ReceiptHandle: msg.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := retries.Poll(t.Context(), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range ids {
		hist, err := store.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range hist {
			got = append(got, fmt.Sprintf("%d/%d", e.Step, e.Retries))
		}
		want := []string{"0/0", "1/0", "2/0", "3/0", "4/0", "5/0", "6/0", "7/0", "8/0", "9/0"}
		if i >= 2 {
			got = nil
			for _, e := range hist {
				got = append(got, fmt.Sprintf("%d/%d %s", e.Step, e.Retries, e.Outcome))
			}
			want = []string{"0/0 retry", "0/1 next", "1/0 done"}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: history %v, want %v (each step once)", id, got, want)
		}
	}
}

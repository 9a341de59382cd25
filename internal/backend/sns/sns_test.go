package sns_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/sns"
	"github.com/lfsm/lfsm/internal/engine"
)

// newTopic creates a topic on fauxqs with an SQS queue subscribed to it with
// raw message delivery (the sns-sqs dispatch), and returns the topic's ARN,
// the SQS client and the queue's URL.
func newTopic(t *testing.T, m *awsconfig.Meter) (*awssns.Client, string, *awssqs.Client, string) {
	t.Helper()
	c := awssns.NewFromConfig(awstest.Config(t, "SNS", m))
	qc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	name := awstest.Name("lfsm-sns-test")
	top, err := c.CreateTopic(t.Context(), &awssns.CreateTopicInput{Name: &name})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	q, err := qc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: &name})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		_, _ = c.DeleteTopic(ctx, &awssns.DeleteTopicInput{TopicArn: top.TopicArn})
		_, _ = qc.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: q.QueueUrl})
	})
	attrs, err := qc.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(t.Context(), &awssns.SubscribeInput{TopicArn: top.TopicArn, Protocol: aws.String("sqs"),
		Endpoint:   aws.String(attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]),
		Attributes: map[string]string{"RawMessageDelivery": "true"}}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if m != nil {
		m.Reset()
	}
	return c, aws.ToString(top.TopicArn), qc, aws.ToString(q.QueueUrl)
}

func drain(t *testing.T, c *awssqs.Client, url string, want int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(15 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		out, err := c.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		for _, m := range out.Messages {
			got = append(got, aws.ToString(m.Body))
			_, _ = c.DeleteMessage(t.Context(), &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
		}
	}
	slices.Sort(got)
	return got
}

// A published message reaches the raw-delivery queue as the payload itself,
// in one Publish call.
func TestPublishToRawQueue(t *testing.T) {
	m := &awsconfig.Meter{}
	c, arn, qc, url := newTopic(t, m)
	top, err := sns.New(t.Context(), sns.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	m.Reset()
	payload := `{"version":"0.1","system_context":{"correlation_id":"c1"}}`
	r, err := top.Send(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte(payload)})
	if err != nil || r == "" {
		t.Fatalf("Send = %q, %v", r, err)
	}
	if diff := cmp.Diff([]string{"SNS.Publish"}, m.Ops()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{payload}, drain(t, qc, url, 1)); diff != "" {
		t.Errorf("queue received (-want +got):\n%s", diff)
	}
}

func TestSendBatchAndRefusals(t *testing.T) {
	c, arn, qc, url := newTopic(t, nil)
	top, err := sns.New(t.Context(), sns.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	var ms []engine.OutMessage
	var want []string
	for i := range 23 {
		p := fmt.Sprintf("m%02d", i)
		ms = append(ms, engine.OutMessage{Key: p, Payload: []byte(p)})
		want = append(want, p)
	}
	if _, err := top.SendBatch(t.Context(), ms); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if diff := cmp.Diff(want, drain(t, qc, url, len(want))); diff != "" {
		t.Errorf("queue received (-want +got):\n%s", diff)
	}
	for name, m := range map[string]engine.OutMessage{
		"delay":     {Key: "c", Payload: []byte("x"), Delay: time.Second},
		"too large": {Key: "c", Payload: make([]byte, sns.MaxMessageBytes+1)},
	} {
		if _, err := top.Send(t.Context(), m); err == nil {
			t.Errorf("%s: Send succeeded", name)
		}
	}
	missing, err := sns.New(t.Context(), sns.Options{Client: c, ARN: arn + "-missing"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := missing.Send(t.Context(), engine.OutMessage{Key: "c", Payload: []byte("x")}); err == nil || !strings.Contains(err.Error(), arn+"-missing") {
		t.Errorf("Send to a missing topic = %v, want an error naming it", err)
	}
}

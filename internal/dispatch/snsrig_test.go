package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/sns"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/esm"
)

// topicWithQueue creates a topic and a queue subscribed to it on fauxqs,
// with raw message delivery or without (then the queue receives SNS's
// notification envelope), and returns the topic's ARN and the queue's URL
// and ARN.
func topicWithQueue(t testing.TB, nc *awssns.Client, qc *awssqs.Client, raw bool) (topicARN, url, queueARN string) {
	t.Helper()
	name := awstest.Name("lfsm-sns")
	top, err := nc.CreateTopic(t.Context(), &awssns.CreateTopicInput{Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	qu, err := qc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: &name, Attributes: map[string]string{"VisibilityTimeout": queueVisibility}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		_, _ = nc.DeleteTopic(ctx, &awssns.DeleteTopicInput{TopicArn: top.TopicArn})
		_, _ = qc.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
	})
	attrs, err := qc.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: qu.QueueUrl,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	queueARN = attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	sub := &awssns.SubscribeInput{TopicArn: top.TopicArn, Protocol: aws.String("sqs"), Endpoint: &queueARN}
	if raw {
		sub.Attributes = map[string]string{"RawMessageDelivery": "true"}
	}
	if _, err := nc.Subscribe(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	return aws.ToString(top.TopicArn), aws.ToString(qu.QueueUrl), queueARN
}

// snsRig is the sns dispatch: the function publishes each next message to
// a topic that invokes it directly (asynchronously), and retries wait in
// the retry table. fauxqs cannot invoke a function, so a queue subscribed
// without raw delivery receives the notifications (SNS's envelope) and the
// poll plays Lambda's asynchronous invocation: each notification becomes
// the SNS event of one invocation, invocations run at once (up to a
// receive's 10), and a failed one is tried again up to twice (the
// notification's receive count), then discarded, as Lambda does without
// an on-failure destination that anyone reads: the repair must recover it.
func snsRig(t testing.TB, m ...*awsconfig.Meter) rig {
	nc := awssns.NewFromConfig(awstest.Config(t, "SNS", meterOf(m)))
	qc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	topicARN, url, _ := topicWithQueue(t, nc, qc, false)
	topic, err := sns.New(t.Context(), sns.Options{Client: nc, ARN: topicARN})
	if err != nil {
		t.Fatal(err)
	}
	return rig{queue: topic, retries: retryTable(t, topic, m...), pollers: 5, tx: true, poll: func(ctx context.Context, inv interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}) (func(context.Context) error, error) {
		return func(ctx context.Context) error { return snsDeliver(ctx, qc, url, inv) }, nil
	}}
}

// snsAttempts is how often Lambda invokes a function with one asynchronous
// event: once and twice again.
const snsAttempts = 3

// snsDeliver receives up to 10 notifications and invokes the function with
// each as SNS does, at once; see snsRig.
func snsDeliver(ctx context.Context, qc *awssqs.Client, url string, inv interface {
	Invoke(context.Context, []byte) ([]byte, error)
}) error {
	out, err := qc.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(out.Messages))
	for _, msg := range out.Messages {
		wg.Go(func() {
			var n struct {
				Type, MessageId, TopicArn, Message string
			}
			if err := json.Unmarshal([]byte(aws.ToString(msg.Body)), &n); err != nil || n.Type != "Notification" {
				errs <- fmt.Errorf("not an SNS notification: %q (%v)", aws.ToString(msg.Body), err)
				return
			}
			ev, _ := json.Marshal(events.SNSEvent{Records: []events.SNSEventRecord{{
				EventSource: "aws:sns", EventVersion: "1.0", EventSubscriptionArn: n.TopicArn + ":sub",
				SNS: events.SNSEntity{Type: n.Type, MessageID: n.MessageId, TopicArn: n.TopicArn, Message: n.Message},
			}}})
			_, ierr := inv.Invoke(ctx, ev)
			count, _ := strconv.Atoi(msg.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)])
			if ierr != nil && count < snsAttempts {
				return // tried again once the visibility timeout is over
			}
			if _, err := qc.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: msg.ReceiptHandle}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

// snsSQSRig is the sns-sqs dispatch: a topic with a queue subscribed with
// raw delivery, which the function's event source mapping reads. As
// dispatch.Open has it, lfsm sends its own next messages and retries to the
// queue (SQS can delay them); the topic is for other publishers, and the
// executions here are started through it (the rig's start queue).
func snsSQSRig(t testing.TB, m ...*awsconfig.Meter) rig {
	nc := awssns.NewFromConfig(awstest.Config(t, "SNS", nil))
	c := awssqs.NewFromConfig(awstest.Config(t, "SQS", meterOf(m)))
	pc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	topicARN, _, arn := topicWithQueue(t, nc, pc, true)
	q, err := sqs.New(t.Context(), sqs.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	topic, err := sns.New(t.Context(), sns.Options{Client: nc, ARN: topicARN})
	if err != nil {
		t.Fatal(err)
	}
	return rig{queue: q, start: topic, visib: sqs.NewVisibility(c), pollers: 5, poll: func(ctx context.Context, inv interface {
		Invoke(context.Context, []byte) ([]byte, error)
	}) (func(context.Context) error, error) {
		m, err := esm.New(ctx, esm.Options{Client: pc, QueueARN: arn, Invoker: inv, Wait: 100 * time.Millisecond})
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { _, err := m.Poll(ctx); return err }, nil
	}}
}

package sqs

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// ReceiveAPI is the client's receive side, for a Queue used as an
// engine.Source (workers outside Lambda, and tests of SQS's delivery order).
type ReceiveAPI interface {
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *awssqs.DeleteMessageInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageOutput, error)
}

// Receive implements engine.Source with ReceiveMessage: at most 10
// messages, the visibility and the long-poll wait in whole seconds (wait at
// most 20 s). The client must also be a ReceiveAPI (*sqs.Client is). A
// message received before the due time of its chained delay (DueAttribute)
// is not returned: it is sent again with the rest of its delay and then
// deleted (if the send fails it stays, and comes back after the visibility
// timeout).
func (q *Queue) Receive(ctx context.Context, limit int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	rc, ok := q.c.(ReceiveAPI)
	if !ok {
		return nil, fmt.Errorf("sqs: the client of %s cannot receive", q.url)
	}
	out, err := rc.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
		QueueUrl:                    &q.url,
		MaxNumberOfMessages:         int32(min(max(limit, 1), 10)),
		VisibilityTimeout:           int32(math.Ceil(visibility.Seconds())),
		WaitTimeSeconds:             int32(min(wait.Seconds(), 20)),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		MessageAttributeNames:       []string{DueAttribute},
	})
	if err != nil {
		return nil, fmt.Errorf("receive from SQS queue %s: %w", q.url, err)
	}
	ds := make([]engine.Delivery, 0, len(out.Messages))
	now := q.now()
	for _, m := range out.Messages {
		if wait := Early(aws.ToString(m.MessageAttributes[DueAttribute].StringValue), now); wait > 0 {
			if err := q.Defer(ctx, aws.ToString(m.Body), wait); err != nil {
				continue // it comes back after the visibility timeout
			}
			_ = q.Ack(ctx, aws.ToString(m.ReceiptHandle)) // if not deleted, it comes back and is deferred again
			continue
		}
		n, _ := strconv.Atoi(m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
		ds = append(ds, engine.Delivery{Payload: []byte(aws.ToString(m.Body)), Receipt: aws.ToString(m.ReceiptHandle), Attempts: max(n, 1)})
	}
	return ds, nil
}

// Ack implements engine.Source with DeleteMessage.
func (q *Queue) Ack(ctx context.Context, receipt string) error {
	rc, ok := q.c.(ReceiveAPI)
	if !ok {
		return fmt.Errorf("sqs: the client of %s cannot delete", q.url)
	}
	if _, err := rc.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &q.url, ReceiptHandle: &receipt}); err != nil {
		return fmt.Errorf("delete from SQS queue %s: %w", q.url, err)
	}
	return nil
}

// Defer sends body again with the rest of its chained delay, wait (which
// is chained again when still longer than MaxDelay): what a receiver does
// with a message that came before its due time, before acknowledging it.
func (q *Queue) Defer(ctx context.Context, body string, wait time.Duration) error {
	in, err := q.input(engine.OutMessage{Payload: []byte(body), Delay: wait})
	if err != nil {
		return err
	}
	if _, err := q.c.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("send again to SQS queue %s (due in %s): %w", q.url, wait.Round(time.Second), err)
	}
	return nil
}

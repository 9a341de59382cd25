package sqs

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
)

// MaxVisibility is the longest visibility timeout SQS allows (12 hours).
const MaxVisibility = 12 * time.Hour

// VisibilityAPI is the part of the SQS client Visibility calls.
type VisibilityAPI interface {
	ChangeMessageVisibility(ctx context.Context, in *awssqs.ChangeMessageVisibilityInput, opts ...func(*awssqs.Options)) (*awssqs.ChangeMessageVisibilityOutput, error)
	GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error)
}

// Visibility changes the visibility timeout of messages that Lambda's event
// source mapping received (the Lambda handler's VisibilityChanger: a record
// put off for later comes back after the bounce delay instead of the queue's
// visibility timeout). Records name their queue by ARN; its URL is asked for
// once per queue and kept.
type Visibility struct {
	c    VisibilityAPI
	mu   sync.Mutex
	urls map[string]string
}

// NewVisibility returns a Visibility calling c.
func NewVisibility(c VisibilityAPI) *Visibility {
	return &Visibility{c: c, urls: map[string]string{}}
}

// ChangeVisibility makes the message with receiptHandle visible again after
// timeout (rounded up to whole seconds; 0 makes it visible at once).
func (v *Visibility) ChangeVisibility(ctx context.Context, queueARN, receiptHandle string, timeout time.Duration) error {
	if timeout < 0 || timeout > MaxVisibility {
		return fmt.Errorf("sqs: visibility timeout %s out of range [0, %s]", timeout, MaxVisibility)
	}
	u, err := v.url(ctx, queueARN)
	if err != nil {
		return err
	}
	secs := int32(math.Ceil(timeout.Seconds()))
	if _, err := v.c.ChangeMessageVisibility(ctx, &awssqs.ChangeMessageVisibilityInput{
		QueueUrl: &u, ReceiptHandle: &receiptHandle, VisibilityTimeout: secs}); err != nil {
		return fmt.Errorf("change visibility of a message of SQS queue %s: %w", queueARN, err)
	}
	return nil
}

func (v *Visibility) url(ctx context.Context, queueARN string) (string, error) {
	v.mu.Lock()
	u, ok := v.urls[queueARN]
	v.mu.Unlock()
	if ok {
		return u, nil
	}
	a, err := ParseARN(queueARN)
	if err != nil {
		return "", err
	}
	out, err := v.c.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: &a.Name, QueueOwnerAWSAccountId: &a.Account})
	if err != nil {
		return "", fmt.Errorf("find SQS queue %s: %w", queueARN, err)
	}
	u = aws.ToString(out.QueueUrl)
	v.mu.Lock()
	v.urls[queueARN] = u
	v.mu.Unlock()
	return u, nil
}

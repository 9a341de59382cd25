package sns

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"

	"github.com/lfsm/lfsm/internal/backend/sendbatch"
	"github.com/lfsm/lfsm/internal/engine"
)

// MaxMessageBytes is the largest message SNS publishes (256 KiB).
const MaxMessageBytes = 256 << 10

// MaxBatch is the most messages one PublishBatch call takes.
const MaxBatch = 10

// API is the part of the SNS client the Topic calls (*sns.Client has it).
type API interface {
	Publish(ctx context.Context, in *awssns.PublishInput, opts ...func(*awssns.Options)) (*awssns.PublishOutput, error)
	PublishBatch(ctx context.Context, in *awssns.PublishBatchInput, opts ...func(*awssns.Options)) (*awssns.PublishBatchOutput, error)
}

// Options configure a Topic.
type Options struct {
	// Client talks to SNS in the topic's region.
	Client API
	// ARN names the topic (arn:aws:sns:REGION:ACCOUNT:NAME).
	ARN string
	// BatchAttempts bounds the PublishBatch calls SendBatch makes for one
	// batch of up to 10; 0 means 5.
	BatchAttempts int
}

// Topic publishes messages to one SNS topic. It implements engine.Queue.
type Topic struct {
	c        API
	arn      string
	fifo     bool
	attempts int
}

var _ engine.Queue = (*Topic)(nil)

// ARNShape is the form ParseARN accepts, for error and help text.
const ARNShape = "arn:aws:sns:REGION:ACCOUNT:NAME"

// ARN is a parsed SNS topic ARN.
type ARN struct {
	Partition, Region, Account, Name string
}

// ParseARN parses arn:PARTITION:sns:REGION:ACCOUNT:NAME.
func ParseARN(s string) (ARN, error) {
	p := strings.Split(s, ":")
	if len(p) != 6 || p[0] != "arn" || p[2] != "sns" || p[1] == "" || p[3] == "" || p[4] == "" || p[5] == "" {
		return ARN{}, fmt.Errorf("invalid SNS topic ARN %q (want %s)", s, ARNShape)
	}
	return ARN{Partition: p[1], Region: p[3], Account: p[4], Name: p[5]}, nil
}

// New returns a Topic for o.ARN. It makes no call (the function's role may
// only publish): a topic that does not exist fails the first Send, naming it.
func New(ctx context.Context, o Options) (*Topic, error) {
	if o.Client == nil {
		return nil, errors.New("sns: no client")
	}
	a, err := ParseARN(o.ARN)
	if err != nil {
		return nil, err
	}
	n := o.BatchAttempts
	if n <= 0 {
		n = 5
	}
	return &Topic{c: o.Client, arn: o.ARN, fifo: strings.HasSuffix(a.Name, ".fifo"), attempts: n}, nil
}

// ARN returns the topic's ARN.
func (t *Topic) ARN() string { return t.arn }

// MaxMessageBytes is the largest payload Send takes.
func (t *Topic) MaxMessageBytes() int { return MaxMessageBytes }

func (t *Topic) check(m engine.OutMessage) error {
	if m.Delay > 0 {
		return fmt.Errorf("sns: topic %s cannot delay a message (%s): retries go to a retry table or SQS", t.arn, m.Delay)
	}
	if len(m.Payload) > MaxMessageBytes {
		return fmt.Errorf("sns: message of %d bytes is larger than SNS's %d", len(m.Payload), MaxMessageBytes)
	}
	return nil
}

// Send implements engine.Queue with Publish; the receipt is the message id.
// A FIFO topic gets the correlation id as message group (one execution's
// messages stay ordered) and the payload's hash deduplicates.
func (t *Topic) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if err := t.check(m); err != nil {
		return "", err
	}
	in := &awssns.PublishInput{TopicArn: &t.arn, Message: aws.String(string(m.Payload))}
	if t.fifo {
		in.MessageGroupId = aws.String(m.Key)
	}
	out, err := t.c.Publish(ctx, in)
	if err != nil {
		return "", fmt.Errorf("publish to SNS topic %s: %w", t.arn, err)
	}
	return aws.ToString(out.MessageId), nil
}

// BatchError names the messages of a SendBatch that stayed unsent.
type BatchError = sendbatch.Error

// SendBatch publishes ms in PublishBatch calls of up to 10, retrying the
// entries SNS reports failed that are not sender faults, up to the topic's
// BatchAttempts. It returns a receipt per message (empty where it failed)
// and a *BatchError naming the messages not sent, or the call's error.
func (t *Topic) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	receipts := make([]string, len(ms))
	failed := map[int]error{}
	for start := 0; start < len(ms); start += MaxBatch {
		var pending []int
		for i := start; i < min(start+MaxBatch, len(ms)); i++ {
			if err := t.check(ms[i]); err != nil {
				failed[i] = err
				continue
			}
			pending = append(pending, i)
		}
		for attempt := 0; len(pending) > 0 && attempt < t.attempts; attempt++ {
			if attempt > 0 {
				if err := sleep(ctx, time.Duration(attempt)*50*time.Millisecond); err != nil {
					return receipts, err
				}
			}
			entries := make([]types.PublishBatchRequestEntry, 0, len(pending))
			for _, i := range pending {
				e := types.PublishBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), Message: aws.String(string(ms[i].Payload))}
				if t.fifo {
					e.MessageGroupId = aws.String(ms[i].Key)
				}
				entries = append(entries, e)
			}
			out, err := t.c.PublishBatch(ctx, &awssns.PublishBatchInput{TopicArn: &t.arn, PublishBatchRequestEntries: entries})
			if err != nil {
				return receipts, fmt.Errorf("publish to SNS topic %s: %w", t.arn, err)
			}
			var next []int
			for _, ok := range out.Successful {
				if i, err := strconv.Atoi(aws.ToString(ok.Id)); err == nil && i >= start && i < len(ms) {
					receipts[i] = aws.ToString(ok.MessageId)
					delete(failed, i)
				}
			}
			for _, f := range out.Failed {
				i, err := strconv.Atoi(aws.ToString(f.Id))
				if err != nil || i < start || i >= len(ms) {
					continue
				}
				failed[i] = fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
				if !f.SenderFault {
					next = append(next, i)
				}
			}
			pending = next
		}
	}
	if len(failed) > 0 {
		return receipts, &BatchError{Op: "publish to SNS topic " + t.arn, Failed: failed}
	}
	return receipts, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

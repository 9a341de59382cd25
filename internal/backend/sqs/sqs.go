package sqs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/backend/sendbatch"
	"github.com/lfsm/lfsm/internal/engine"
)

// MaxDelay is the longest delay SQS can give one message (DelaySeconds 900).
// A longer one is chained: the message is sent with MaxDelay and its due
// time in DueAttribute, and whoever receives it before that time sends it
// again with the rest of the delay (Early, Resend) instead of running it.
const MaxDelay = 900 * time.Second

// DueAttribute is the message attribute (Number, Unix milliseconds) that
// carries the due time of a message delayed longer than MaxDelay. A
// message without it is due when SQS delivers it.
const DueAttribute = "lfsm_due"

// MaxBatch is the number of messages one SendMessageBatch call takes.
const MaxBatch = 10

// API is the part of the SQS client the queue calls (*sqs.Client has it).
type API interface {
	SendMessage(ctx context.Context, in *awssqs.SendMessageInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *awssqs.SendMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageBatchOutput, error)
	GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error)
}

// Options configure a Queue.
type Options struct {
	// Client talks to SQS in the queue's region.
	Client API
	// URL is the queue URL; ARN may be given instead (URL wins when both are).
	URL string
	ARN string
	// BatchAttempts bounds the SendMessageBatch calls SendBatch makes for one
	// batch of up to 10 (the first and the retries of its failed entries);
	// 0 means 5.
	BatchAttempts int
	// Now tells the time a chained delay's due time is counted from, and
	// Receive's check of it; nil means time.Now.
	Now func() time.Time
}

// Queue sends messages to one SQS queue. It implements engine.Queue and
// engine.Retrier.
type Queue struct {
	c        API
	url      string
	fifo     bool
	attempts int
	now      func() time.Time
}

var (
	_ engine.Queue   = (*Queue)(nil)
	_ engine.Retrier = (*Queue)(nil)
	_ engine.Source  = (*Queue)(nil)
)

// New returns a Queue for o.URL, or for o.ARN, whose URL it asks SQS for
// once (GetQueueUrl with the ARN's name and account: the URL's form differs
// between SQS and emulators, so it is not derived from the ARN).
func New(ctx context.Context, o Options) (*Queue, error) {
	if o.Client == nil {
		return nil, errors.New("sqs: no client")
	}
	u := o.URL
	if u == "" {
		if o.ARN == "" {
			return nil, errors.New("sqs: no queue URL or ARN")
		}
		a, err := ParseARN(o.ARN)
		if err != nil {
			return nil, err
		}
		out, err := o.Client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: &a.Name, QueueOwnerAWSAccountId: &a.Account})
		if err != nil {
			return nil, fmt.Errorf("find SQS queue %s: %w", o.ARN, err)
		}
		u = aws.ToString(out.QueueUrl)
	}
	n := o.BatchAttempts
	if n <= 0 {
		n = 5
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Queue{c: o.Client, url: u, fifo: strings.HasSuffix(u, ".fifo"), attempts: n, now: now}, nil
}

// URL returns the queue's URL.
func (q *Queue) URL() string { return q.url }

// ARN is a parsed SQS queue ARN.
type ARN struct {
	Partition, Region, Account, Name string
}

// ARNShape is the form ParseARN accepts, for error and help text.
const ARNShape = "arn:aws:sqs:REGION:ACCOUNT:NAME"

// ParseARN parses arn:PARTITION:sqs:REGION:ACCOUNT:NAME.
func ParseARN(s string) (ARN, error) {
	p := strings.Split(s, ":")
	if len(p) != 6 || p[0] != "arn" || p[2] != "sqs" || p[1] == "" || p[3] == "" || p[4] == "" || p[5] == "" {
		return ARN{}, fmt.Errorf("invalid SQS queue ARN %q (want %s)", s, ARNShape)
	}
	return ARN{Partition: p[1], Region: p[3], Account: p[4], Name: p[5]}, nil
}

// delay is how a message's delay is sent: DelaySeconds (d rounded up to
// whole seconds, at most 900) and, for a delay longer than MaxDelay, the
// due time to put in DueAttribute (zero otherwise).
func (q *Queue) delay(d time.Duration) (int32, time.Time, error) {
	if d <= 0 {
		return 0, time.Time{}, nil
	}
	if q.fifo {
		return 0, time.Time{}, fmt.Errorf("sqs: FIFO queue %s cannot delay one message (%s): use a standard queue for retries", q.url, d)
	}
	if d > MaxDelay {
		return int32(MaxDelay / time.Second), q.now().Add(d), nil
	}
	return int32(math.Ceil(d.Seconds())), time.Time{}, nil
}

// dueValue is a due time as DueAttribute carries it: Unix milliseconds,
// rounded up (never earlier than asked).
func dueValue(due time.Time) string {
	ms := due.UnixMilli()
	if due.After(time.UnixMilli(ms)) {
		ms++
	}
	return strconv.FormatInt(ms, 10)
}

func (q *Queue) input(m engine.OutMessage) (*awssqs.SendMessageInput, error) {
	ds, due, err := q.delay(m.Delay)
	if err != nil {
		return nil, err
	}
	in := &awssqs.SendMessageInput{QueueUrl: &q.url, MessageBody: aws.String(string(m.Payload))}
	if ds > 0 {
		in.DelaySeconds = ds
	}
	if !due.IsZero() {
		in.MessageAttributes = map[string]types.MessageAttributeValue{
			DueAttribute: {DataType: aws.String("Number"), StringValue: aws.String(dueValue(due))},
		}
	}
	if q.fifo {
		in.MessageGroupId = aws.String(m.Key)
	}
	return in, nil
}

// Due reads a received message's due time from the value of its
// DueAttribute (empty: none); ok is false without one, or when it is not a
// number (the message is then due: it is run rather than held for good).
func Due(value string) (time.Time, bool) {
	if value == "" {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// Early returns how long a message received at now still has to wait: the
// rest of a chained delay (due, from its DueAttribute, is later than now),
// else zero.
func Early(value string, now time.Time) time.Duration {
	due, ok := Due(value)
	if !ok || !due.After(now) {
		return 0
	}
	return due.Sub(now)
}

// Send implements engine.Queue; the receipt is the SQS message id.
func (q *Queue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	in, err := q.input(m)
	if err != nil {
		return "", err
	}
	out, err := q.c.SendMessage(ctx, in)
	if err != nil {
		return "", fmt.Errorf("send to SQS queue %s: %w", q.url, err)
	}
	return aws.ToString(out.MessageId), nil
}

// ScheduleRetry implements engine.Retrier with DelaySeconds (chained
// beyond MaxDelay).
func (q *Queue) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	_, err := q.Send(ctx, m)
	return err
}

// BatchError names the messages of a SendBatch that stayed unsent.
type BatchError = sendbatch.Error

// SendBatch sends ms in SendMessageBatch calls of up to 10, retrying the
// entries SQS reports as failed (a partial failure does not fail the call)
// up to the queue's BatchAttempts; sender faults (a bad message) are not
// retried. It returns a receipt per message (empty where it failed) and a
// *BatchError naming the messages not sent, or the call's error.
func (q *Queue) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	receipts := make([]string, len(ms))
	failed := map[int]error{}
	for start := 0; start < len(ms); start += MaxBatch {
		end := min(start+MaxBatch, len(ms))
		pending := make([]int, 0, end-start)
		for i := start; i < end; i++ {
			pending = append(pending, i)
		}
		for attempt := 0; len(pending) > 0 && attempt < q.attempts; attempt++ {
			entries := make([]types.SendMessageBatchRequestEntry, 0, len(pending))
			byID := map[string]int{}
			var next []int
			for _, i := range pending {
				in, err := q.input(ms[i])
				if err != nil {
					failed[i] = err
					continue
				}
				id := strconv.Itoa(i)
				byID[id] = i
				entries = append(entries, types.SendMessageBatchRequestEntry{
					Id: &id, MessageBody: in.MessageBody, DelaySeconds: in.DelaySeconds, MessageGroupId: in.MessageGroupId,
					MessageAttributes: in.MessageAttributes,
				})
			}
			if len(entries) == 0 {
				break
			}
			out, err := q.c.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &q.url, Entries: entries})
			if err != nil {
				return receipts, fmt.Errorf("send to SQS queue %s: %w", q.url, err)
			}
			for _, ok := range out.Successful {
				if i, found := byID[aws.ToString(ok.Id)]; found {
					receipts[i] = aws.ToString(ok.MessageId)
					delete(failed, i)
				}
			}
			for _, f := range out.Failed {
				i, found := byID[aws.ToString(f.Id)]
				if !found {
					continue
				}
				failed[i] = fmt.Errorf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
				if !f.SenderFault {
					next = append(next, i)
				}
			}
			pending = next
			if len(pending) > 0 {
				if err := sleep(ctx, time.Duration(attempt+1)*50*time.Millisecond); err != nil {
					return receipts, err
				}
			}
		}
	}
	if len(failed) > 0 {
		return receipts, &BatchError{Op: "send to SQS queue " + q.url, Failed: failed}
	}
	return receipts, nil
}

// sleep waits d between retries of a batch's failed entries, or until ctx ends.
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

// Package esm plays Lambda's event source mapping outside Lambda, for lfsm
// dev --target aws: it long-polls an SQS queue, hands each batch to a
// function as Lambda's SQS event, and deletes the messages the function did
// not report in batchItemFailures (all of them stay when the invocation
// fails), as the mapping does with ReportBatchItemFailures. The function is
// the real bootstrap under aws-lambda-rie (RIE) or the project binary's
// invoke command (Process); both are an Invoker.
package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/backend/sqs"
)

// Invoker invokes the function with one event and returns its response. A
// function error (the handler returned one, or the runtime died) is an
// *InvokeError.
type Invoker interface {
	Invoke(ctx context.Context, event []byte) ([]byte, error)
}

// InvokeError is a function error, as Lambda reports it.
type InvokeError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *InvokeError) Error() string { return e.Type + ": " + e.Message }

// SQSAPI is the part of the SQS client the mapping calls.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *awssqs.ReceiveMessageInput, opts ...func(*awssqs.Options)) (*awssqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *awssqs.DeleteMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.DeleteMessageBatchOutput, error)
	GetQueueUrl(ctx context.Context, in *awssqs.GetQueueUrlInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueUrlOutput, error)
	GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, opts ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error)
}

// Options configure an SQS mapping.
type Options struct {
	Client   SQSAPI
	QueueARN string
	Invoker  Invoker
	// BatchSize is the most messages per invocation (default and at most 10).
	BatchSize int
	// Wait is the long poll of each receive (default 20 s, SQS's maximum).
	Wait time.Duration
	// Visibility hides received messages for that long (0: the queue's).
	Visibility time.Duration
	// OnBatch, if set, is told each batch's records and which of them the
	// function reported (or all, when the invocation failed).
	OnBatch func(recs []events.SQSMessage, failed map[string]bool, err error)
	// Logger logs failed receives, invocations and deletes; nil discards.
	Logger *slog.Logger
}

// Mapping is an SQS event source mapping.
type Mapping struct {
	o      Options
	url    string
	region string
}

// New returns a Mapping; it looks the queue's URL up once.
func New(ctx context.Context, o Options) (*Mapping, error) {
	if o.Client == nil || o.Invoker == nil {
		return nil, errors.New("esm: no SQS client or invoker")
	}
	a, err := sqs.ParseARN(o.QueueARN)
	if err != nil {
		return nil, err
	}
	out, err := o.Client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: &a.Name, QueueOwnerAWSAccountId: &a.Account})
	if err != nil {
		return nil, fmt.Errorf("find SQS queue %s: %w", o.QueueARN, err)
	}
	if o.BatchSize <= 0 || o.BatchSize > 10 {
		o.BatchSize = 10
	}
	if o.Wait <= 0 || o.Wait > 20*time.Second {
		o.Wait = 20 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Mapping{o: o, url: aws.ToString(out.QueueUrl), region: a.Region}, nil
}

// Run polls until ctx is done; the batch in flight is finished first.
// Failures of SQS or of the function are logged and retried after a pause.
func (m *Mapping) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if _, err := m.Poll(ctx); err != nil && ctx.Err() == nil {
			m.o.Logger.Warn("event source mapping", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// Poll receives one batch (waiting up to Wait), invokes the function with it
// and deletes what the function did not report. It returns the number of
// messages received.
func (m *Mapping) Poll(ctx context.Context) (int, error) {
	in := &awssqs.ReceiveMessageInput{
		QueueUrl: &m.url, MaxNumberOfMessages: int32(m.o.BatchSize), WaitTimeSeconds: int32(m.o.Wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	}
	if m.o.Visibility > 0 {
		in.VisibilityTimeout = int32((m.o.Visibility + time.Second - 1) / time.Second)
	}
	out, err := m.o.Client.ReceiveMessage(ctx, in)
	if err != nil {
		return 0, fmt.Errorf("receive from SQS queue %s: %w", m.o.QueueARN, err)
	}
	if len(out.Messages) == 0 {
		return 0, nil
	}
	recs := make([]events.SQSMessage, len(out.Messages))
	for i, msg := range out.Messages {
		recs[i] = m.record(msg)
	}
	event, err := json.Marshal(events.SQSEvent{Records: recs})
	if err != nil {
		return len(recs), err
	}
	// The batch is finished even when ctx is canceled meanwhile (Ctrl-C):
	// its messages would come back after the visibility timeout otherwise.
	ictx := context.WithoutCancel(ctx)
	resp, ierr := m.o.Invoker.Invoke(ictx, event)
	failed := map[string]bool{}
	if ierr == nil {
		failed, ierr = batchFailures(resp, recs)
	}
	if ierr != nil {
		for _, r := range recs {
			failed[r.MessageId] = true
		}
	}
	if m.o.OnBatch != nil {
		m.o.OnBatch(recs, failed, ierr)
	}
	var del []types.DeleteMessageBatchRequestEntry
	for i, r := range recs {
		if !failed[r.MessageId] {
			del = append(del, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r.ReceiptHandle)})
		}
	}
	if len(del) > 0 {
		dout, err := m.o.Client.DeleteMessageBatch(ictx, &awssqs.DeleteMessageBatchInput{QueueUrl: &m.url, Entries: del})
		if err != nil {
			return len(recs), fmt.Errorf("delete from SQS queue %s: %w", m.o.QueueARN, err)
		}
		if len(dout.Failed) > 0 {
			// They come back and are dropped as duplicates.
			m.o.Logger.Warn("some processed messages were not deleted", "queue", m.o.QueueARN, "count", len(dout.Failed))
		}
	}
	if ierr != nil {
		return len(recs), fmt.Errorf("invoke: %w", ierr)
	}
	return len(recs), nil
}

// record is msg as Lambda's SQS event carries it.
func (m *Mapping) record(msg types.Message) events.SQSMessage {
	attrs := map[string]string{}
	for k, v := range msg.Attributes {
		attrs[k] = v
	}
	mattrs := map[string]events.SQSMessageAttribute{}
	for k, v := range msg.MessageAttributes {
		mattrs[k] = events.SQSMessageAttribute{StringValue: v.StringValue, BinaryValue: v.BinaryValue, DataType: aws.ToString(v.DataType)}
	}
	return events.SQSMessage{
		MessageId: aws.ToString(msg.MessageId), ReceiptHandle: aws.ToString(msg.ReceiptHandle), Body: aws.ToString(msg.Body),
		Md5OfBody: aws.ToString(msg.MD5OfBody), Md5OfMessageAttributes: aws.ToString(msg.MD5OfMessageAttributes),
		Attributes: attrs, MessageAttributes: mattrs,
		EventSourceARN: m.o.QueueARN, EventSource: "aws:sqs", AWSRegion: m.region,
	}
}

// batchFailures reads a partial batch response. Like Lambda, it treats a
// response it cannot read, or one naming a message not in the batch, as a
// failure of the whole batch.
func batchFailures(resp []byte, recs []events.SQSMessage) (map[string]bool, error) {
	failed := map[string]bool{}
	var r struct {
		BatchItemFailures []struct {
			ItemIdentifier string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(resp) == 0 || string(resp) == "null" {
		return failed, nil
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, fmt.Errorf("function response is not a partial batch response: %w", err)
	}
	in := map[string]bool{}
	for _, rec := range recs {
		in[rec.MessageId] = true
	}
	for _, f := range r.BatchItemFailures {
		if !in[f.ItemIdentifier] {
			return nil, fmt.Errorf("function reported message %q, which is not in the batch", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, nil
}

// Idle reports whether the queue holds no message at all: none visible,
// delayed or in flight (SQS's approximate counts, which settle within a
// second or so on SQS).
func (m *Mapping) Idle(ctx context.Context) (bool, error) {
	out, err := m.o.Client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &m.url, AttributeNames: []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed}})
	if err != nil {
		return false, fmt.Errorf("count the messages of SQS queue %s: %w", m.o.QueueARN, err)
	}
	for _, v := range out.Attributes {
		if v != "0" {
			return false, nil
		}
	}
	return true, nil
}

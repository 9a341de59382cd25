package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
)

// newQueue creates a fresh queue on the SQS emulator (fauxqs) and returns
// the client and its ARN.
func newQueue(t *testing.T, m *awsconfig.Meter) (*awssqs.Client, string, string) {
	t.Helper()
	c := awssqs.NewFromConfig(awstest.Config(t, "SQS", m))
	out, err := c.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-sqs-test"))})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	attrs, err := c.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{
		QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatalf("GetQueueAttributes: %v", err)
	}
	if m != nil {
		m.Reset()
	}
	return c, *out.QueueUrl, attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
}

// drain receives until want messages arrived or the deadline passed.
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
			if _, err := c.DeleteMessage(t.Context(), &awssqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("DeleteMessage: %v", err)
			}
		}
	}
	sort.Strings(got)
	return got
}

func TestSendByARN(t *testing.T) {
	m := &awsconfig.Meter{}
	c, url, arn := newQueue(t, m)
	q, err := sqs.New(t.Context(), sqs.Options{Client: awssqs.NewFromConfig(awstest.Config(t, "SQS", m)), ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	r, err := q.Send(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte(`{"version":"0.1"}`)})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if r == "" {
		t.Errorf("Send returned an empty receipt, want the message id")
	}
	if got := m.Usage()["SQS.SendMessage"].Calls; got != 1 {
		t.Errorf("SendMessage calls = %d, want 1 (usage %v)", got, m.Usage())
	}
	if diff := cmp.Diff([]string{`{"version":"0.1"}`}, drain(t, c, url, 1)); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestRetryDelay(t *testing.T) {
	c, url, arn := newQueue(t, nil)
	q, err := sqs.New(t.Context(), sqs.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.ScheduleRetry(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte("late"), Delay: 1500 * time.Millisecond}); err != nil {
		t.Fatalf("ScheduleRetry: %v", err)
	}
	out, err := c.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
	if err != nil {
		t.Fatalf("ReceiveMessage: %v", err)
	}
	if len(out.Messages) != 0 {
		t.Fatalf("a retry delayed by 1.5 s was received at once")
	}
	if diff := cmp.Diff([]string{"late"}, drain(t, c, url, 1)); diff != "" {
		t.Errorf("received after the delay (-want +got):\n%s", diff)
	}

	err = q.ScheduleRetry(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte("too late"), Delay: sqs.MaxDelay + time.Second})
	if err == nil {
		t.Fatalf("ScheduleRetry with a delay beyond 900 s succeeded")
	}
	out, err = c.ReceiveMessage(t.Context(), &awssqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10})
	if err != nil || len(out.Messages) != 0 {
		t.Errorf("after a refused delay, ReceiveMessage = %d messages, %v; want none", len(out.Messages), err)
	}
}

// flaky fails the entries with odd ids of its first calls without sending
// them, as SQS does when it reports entries in Failed; the rest go to
// the real emulator.
type flaky struct {
	sqs.API
	mu    sync.Mutex
	fails int
	calls int
}

func (f *flaky) SendMessageBatch(ctx context.Context, in *awssqs.SendMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageBatchOutput, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if !fail {
		return f.API.SendMessageBatch(ctx, in, opts...)
	}
	var keep []types.SendMessageBatchRequestEntry
	var failed []types.BatchResultErrorEntry
	for _, e := range in.Entries {
		if n, _ := strconv.Atoi(aws.ToString(e.Id)); n%2 == 1 {
			failed = append(failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), Message: aws.String("injected"), SenderFault: false})
			continue
		}
		keep = append(keep, e)
	}
	out := &awssqs.SendMessageBatchOutput{}
	if len(keep) > 0 {
		var err error
		if out, err = f.API.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: keep}, opts...); err != nil {
			return nil, err
		}
	}
	out.Failed = append(out.Failed, failed...)
	return out, nil
}

func TestSendBatchRetriesPartialFailures(t *testing.T) {
	c, url, arn := newQueue(t, nil)
	f := &flaky{API: c, fails: 3}
	q, err := sqs.New(t.Context(), sqs.Options{Client: f, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	var ms []engine.OutMessage
	var want []string
	for i := range 25 {
		p := fmt.Sprintf("m%02d", i)
		ms = append(ms, engine.OutMessage{Key: p, Payload: []byte(p)})
		want = append(want, p)
	}
	receipts, err := q.SendBatch(t.Context(), ms)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	seen := map[string]bool{}
	for i, r := range receipts {
		if r == "" || seen[r] {
			t.Errorf("receipt %d = %q: want non-empty and distinct", i, r)
		}
		seen[r] = true
	}
	if f.calls != 6 { // the first batch takes four calls (three fail its odd entries), the others one each
		t.Errorf("SendMessageBatch calls = %d, want 6", f.calls)
	}
	if diff := cmp.Diff(want, drain(t, c, url, len(want))); diff != "" {
		t.Errorf("received (-want +got), each exactly once:\n%s", diff)
	}
}

func TestSendBatchGivesUp(t *testing.T) {
	c, url, arn := newQueue(t, nil)
	f := &flaky{API: c, fails: 100}
	q, err := sqs.New(t.Context(), sqs.Options{Client: f, ARN: arn, BatchAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	ms := []engine.OutMessage{{Key: "a", Payload: []byte("a")}, {Key: "b", Payload: []byte("b")}, {Key: "c", Payload: []byte("c")}}
	receipts, err := q.SendBatch(t.Context(), ms)
	var be *sqs.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("SendBatch = %v, want a *BatchError", err)
	}
	// Entry 1 fails on every attempt; 0 and 2 are sent in the first call.
	if _, ok := be.Failed[1]; !ok || len(be.Failed) != 1 {
		t.Errorf("failed = %v, want only message 1", be.Failed)
	}
	if receipts[0] == "" || receipts[1] != "" || receipts[2] == "" {
		t.Errorf("receipts = %q, want 0 and 2 only", receipts)
	}
	if diff := cmp.Diff([]string{"a", "c"}, drain(t, c, url, 2)); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

func TestParseARN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want sqs.ARN
	}{
		{"arn:aws:sqs:eu-west-1:123456789012:orders", sqs.ARN{Partition: "aws", Region: "eu-west-1", Account: "123456789012", Name: "orders"}},
		{"arn:aws:sns:eu-west-1:123456789012:orders", sqs.ARN{}},
		{"orders", sqs.ARN{}},
		{"arn:aws:sqs:eu-west-1::orders", sqs.ARN{}},
	} {
		got, err := sqs.ParseARN(tc.in)
		if (err != nil) != (tc.want == sqs.ARN{}) || got != tc.want {
			t.Errorf("ParseARN(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestUnknownQueue(t *testing.T) {
	c, _, arn := newQueue(t, nil)
	_, err := sqs.New(t.Context(), sqs.Options{Client: c, ARN: arn + "-missing"})
	if err == nil {
		t.Fatalf("New of a queue that does not exist succeeded")
	}
}

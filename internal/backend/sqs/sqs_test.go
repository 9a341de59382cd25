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

}

// recorder keeps the SendMessage and SendMessageBatch inputs on their way to
// the emulator.
type recorder struct {
	*awssqs.Client
	mu    sync.Mutex
	sends []*awssqs.SendMessageInput
	batch []*awssqs.SendMessageBatchInput
}

func (r *recorder) SendMessage(ctx context.Context, in *awssqs.SendMessageInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageOutput, error) {
	r.mu.Lock()
	r.sends = append(r.sends, in)
	r.mu.Unlock()
	return r.Client.SendMessage(ctx, in, opts...)
}

func (r *recorder) SendMessageBatch(ctx context.Context, in *awssqs.SendMessageBatchInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageBatchOutput, error) {
	r.mu.Lock()
	r.batch = append(r.batch, in)
	r.mu.Unlock()
	return r.Client.SendMessageBatch(ctx, in, opts...)
}

func (r *recorder) last(t *testing.T) (delay int32, due string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sends) == 0 {
		t.Fatal("nothing sent")
	}
	in := r.sends[len(r.sends)-1]
	return in.DelaySeconds, aws.ToString(in.MessageAttributes[sqs.DueAttribute].StringValue)
}

// A delay longer than SQS's 900 s is chained: sent with DelaySeconds 900 and
// its due time in the lfsm_due attribute; a receipt before the due time is
// sent again with the rest of the delay (chained again while longer than
// 900 s, then a plain delay) and deleted, never returned; at the due time
// it is delivered. The clock is injected: the hops' 900 s are not waited
// for; each hop's message is put on the queue as it would arrive.
func TestChainedDelay(t *testing.T) {
	c, url, arn := newQueue(t, nil)
	rec := &recorder{Client: c}
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	q, err := sqs.New(t.Context(), sqs.Options{Client: rec, ARN: arn, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	due := t0.Add(time.Hour)
	wantDue := strconv.FormatInt(due.UnixMilli(), 10)
	if err := q.ScheduleRetry(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte("an hour"), Delay: time.Hour}); err != nil {
		t.Fatalf("ScheduleRetry of an hour: %v", err)
	}
	if d, at := rec.last(t); d != 900 || at != wantDue {
		t.Fatalf("first hop sent with DelaySeconds %d, %s %q; want 900 and the due time %q", d, sqs.DueAttribute, at, wantDue)
	}
	// A batch chains the same way.
	if _, err := q.SendBatch(t.Context(), []engine.OutMessage{{Key: "c2", Payload: []byte("batched"), Delay: 2 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if e := rec.batch[0].Entries[0]; e.DelaySeconds != 900 || aws.ToString(e.MessageAttributes[sqs.DueAttribute].StringValue) != strconv.FormatInt(t0.Add(2*time.Hour).UnixMilli(), 10) {
		t.Errorf("batched entry DelaySeconds %d, attributes %v; want 900 and the due time in two hours", e.DelaySeconds, e.MessageAttributes)
	}
	// A delay SQS takes itself carries no due time.
	if err := q.ScheduleRetry(t.Context(), engine.OutMessage{Key: "c3", Payload: []byte("short"), Delay: sqs.MaxDelay}); err != nil {
		t.Fatal(err)
	}
	if d, at := rec.last(t); d != 900 || at != "" {
		t.Errorf("a 900 s delay sent with DelaySeconds %d and due %q, want 900 and none", d, at)
	}
	sends := len(rec.sends)

	// arrive puts the hop's message on the queue as SQS delivers it when its
	// DelaySeconds are over, attribute and all.
	arrive := func(body, at string) {
		t.Helper()
		in := &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(body)}
		if at != "" {
			in.MessageAttributes = map[string]types.MessageAttributeValue{sqs.DueAttribute: {DataType: aws.String("Number"), StringValue: aws.String(at)}}
		}
		if _, err := c.SendMessage(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	receive := func() []engine.Delivery {
		t.Helper()
		ds, err := q.Receive(t.Context(), 10, time.Minute, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	// After the first hop (900 s): 45 minutes to go, more than SQS can
	// delay: chained again with the same due time.
	now = t0.Add(sqs.MaxDelay)
	arrive("an hour", wantDue)
	if ds := receive(); len(ds) != 0 {
		t.Fatalf("received %d messages 45 minutes before their due time, want none", len(ds))
	}
	if len(rec.sends) != sends+1 {
		t.Fatalf("%d sends after an early receipt, want one re-send", len(rec.sends)-sends)
	}
	if d, at := rec.last(t); d != 900 || at != wantDue {
		t.Errorf("re-sent with DelaySeconds %d, due %q; want 900 and the same due time %q", d, at, wantDue)
	}
	// 10 minutes to go: re-sent with a plain delay of 600 s.
	now = due.Add(-10 * time.Minute)
	arrive("an hour", wantDue)
	if ds := receive(); len(ds) != 0 {
		t.Fatalf("received %d messages 10 minutes early, want none", len(ds))
	}
	if d, at := rec.last(t); d != 600 || at != "" {
		t.Errorf("re-sent with DelaySeconds %d, due %q; want 600 and no due time", d, at)
	}
	// Each early receipt was deleted: nothing is left but the re-sends,
	// which fauxqs holds as delayed.
	attrs, err := c.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if v, nv := attrs.Attributes["ApproximateNumberOfMessages"], attrs.Attributes["ApproximateNumberOfMessagesNotVisible"]; v != "0" || nv != "0" {
		t.Errorf("queue holds %s visible and %s in-flight messages after the early receipts, want none (deleted)", v, nv)
	}
	// At the due time it is delivered.
	now = due
	arrive("an hour", wantDue)
	ds := receive()
	if len(ds) != 1 || string(ds[0].Payload) != "an hour" {
		t.Fatalf("at the due time received %v, want the message", ds)
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

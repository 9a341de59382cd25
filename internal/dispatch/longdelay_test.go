package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// sendRecorder keeps the SendMessage inputs of the function's SQS client on
// their way to fauxqs.
type sendRecorder struct {
	*awssqs.Client
	mu    sync.Mutex
	sends []*awssqs.SendMessageInput
}

func (r *sendRecorder) SendMessage(ctx context.Context, in *awssqs.SendMessageInput, opts ...func(*awssqs.Options)) (*awssqs.SendMessageOutput, error) {
	r.mu.Lock()
	r.sends = append(r.sends, in)
	r.mu.Unlock()
	return r.Client.SendMessage(ctx, in, opts...)
}

func (r *sendRecorder) take() []*awssqs.SendMessageInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sends
	r.sends = nil
	return s
}

// topRand is a random source at the top of its range: the full-jitter
// backoff then draws (just under) its bound.
type topRand struct{}

func (topRand) Uint64() uint64 { return ^uint64(0) }

// TestSQSLongBackoff runs a step whose retry backs off for an hour
// (retry_delay 1800 s, max_retry_delay 3600 s) through the function on the
// SQS dispatch (fauxqs, DynamoDB Local, the handler fed by the event source
// mapping), with one injected clock for the engine, the queue and the
// handler. The retry is sent with DelaySeconds 900 and its due time in
// lfsm_due; when that hop's message arrives (put on the queue as SQS would
// deliver it after 900 s: nothing here waits for it) the handler does not
// run it but sends it again with the same due time and acknowledges it;
// after the next hops (the rest of the delay, 900 s then a plain 900 s) it
// arrives at its due time and runs.
func TestSQSLongBackoff(t *testing.T) {
	qc := awssqs.NewFromConfig(awstest.Config(t, "SQS", nil))
	out, err := qc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-long-backoff"))})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(out.QueueUrl)
	t.Cleanup(func() {
		_, _ = qc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: &url})
	})
	attrs, err := qc.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	arn := attrs.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	clock := storetest.NewClock(time.Now().Truncate(time.Millisecond))
	rec := &sendRecorder{Client: qc}
	q, err := sqs.New(t.Context(), sqs.Options{Client: rec, ARN: arn, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c := ddbClient(t)
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: newTable(t, c, "lfsm-long-backoff", dynamodb.CreateTable), Queue: q, Retrier: q})
	if err != nil {
		t.Fatal(err)
	}
	one, base, ceiling := 1, 1800, 3600
	tried := false
	m, err := engine.Compile(&spec.Machine{Name: "partner", MaxRetries: &one, RetryDelay: &base, MaxRetryDelay: &ceiling, States: []*spec.State{
		{Name: "call", Initial: true, DoAction: &spec.ActionRef{Ref: "t.Call"}, Transitions: []*spec.Transition{{Target: "end", Event: "ok"}}},
		{Name: "end", Final: true},
	}}, func(string) (fsm.Action, error) {
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) {
			if !tried {
				tried = true
				return "", errors.New("partner down")
			}
			return "ok", nil
		}), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: store, Queue: store, Retrier: store,
		Clock: clock, Rand: rand.New(topRand{}), MaxMessageBytes: dynamodb.MaxCheckpointBytes})
	if err != nil {
		t.Fatal(err)
	}
	h, err := lambda.New(lambda.Options{Engine: eng, Store: store, Retrier: q, Visibility: sqs.NewVisibility(qc), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := esm.New(t.Context(), esm.Options{Client: qc, QueueARN: arn, Invoker: h, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	poll := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, err := mp.Poll(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("nothing received within 30 s")
			}
		}
	}
	var xid string
	history := func() string {
		t.Helper()
		hist, err := store.History(t.Context(), xid)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range hist {
			s = append(s, fmt.Sprintf("%d.%d %s", e.Step, e.Retries, e.Outcome))
		}
		return fmt.Sprint(s)
	}
	if xid, err = eng.Start(t.Context(), engine.StartRequest{Machine: "partner"}); err != nil {
		t.Fatal(err)
	}
	rec.take()
	poll() // the first attempt fails: its retry is backed off for (just under) an hour
	sent := rec.take()
	if len(sent) != 1 {
		t.Fatalf("%d sends for the failed attempt, want its retry", len(sent))
	}
	retry := sent[0]
	dueAttr := aws.ToString(retry.MessageAttributes[sqs.DueAttribute].StringValue)
	due, ok := sqs.Due(dueAttr)
	if retry.DelaySeconds != 900 || !ok || due.Sub(clock.Now()) < time.Hour-time.Second || due.Sub(clock.Now()) > time.Hour {
		t.Fatalf("retry sent with DelaySeconds %d, %s %q (in %v); want 900 and a due time just under an hour on", retry.DelaySeconds,
			sqs.DueAttribute, dueAttr, due.Sub(clock.Now()))
	}
	// arrive puts a hop's message on the queue as SQS delivers it once its
	// DelaySeconds are over.
	arrive := func(in *awssqs.SendMessageInput) {
		t.Helper()
		if _, err := qc.SendMessage(t.Context(), &awssqs.SendMessageInput{QueueUrl: &url, MessageBody: in.MessageBody, MessageAttributes: in.MessageAttributes}); err != nil {
			t.Fatal(err)
		}
	}
	// Each hop's message comes before the due time: it is not run, and is
	// sent again with the rest of the delay, with the same due time while
	// the rest is longer than 900 s, then as a plain delay.
	hops := 0
	for aws.ToString(retry.MessageAttributes[sqs.DueAttribute].StringValue) != "" {
		hops++
		clock.Advance(time.Duration(retry.DelaySeconds) * time.Second)
		arrive(retry)
		poll()
		if got := history(); got != "[0.0 retry]" {
			t.Fatalf("hop %d, %v before its due time: history %s, want the failed attempt only (never run early)", hops, due.Sub(clock.Now()), got)
		}
		sent = rec.take()
		if len(sent) != 1 {
			t.Fatalf("hop %d: %d sends, want the message sent again", hops, len(sent))
		}
		retry = sent[0]
		rest := due.Sub(clock.Now())
		at := aws.ToString(retry.MessageAttributes[sqs.DueAttribute].StringValue)
		switch {
		case rest > sqs.MaxDelay && (retry.DelaySeconds != 900 || at != dueAttr):
			t.Fatalf("hop %d (%v to go): sent again with DelaySeconds %d and %s %q, want 900 and the same due time %q", hops, rest, retry.DelaySeconds, sqs.DueAttribute, at, dueAttr)
		case rest <= sqs.MaxDelay && (retry.DelaySeconds != int32((rest+time.Second-1)/time.Second) || at != ""):
			t.Fatalf("hop %d (%v to go): sent again with DelaySeconds %d and %s %q, want the rest as a plain delay", hops, rest, retry.DelaySeconds, sqs.DueAttribute, at)
		}
	}
	if hops != 3 {
		t.Errorf("%d early receipts, want 3 (at 900, 1800 and 2700 s of the hour)", hops)
	}
	// The last hop: a plain delay, no due time; it arrives at the due time
	// and runs.
	clock.Advance(time.Duration(retry.DelaySeconds) * time.Second)
	if clock.Now().Before(due) {
		t.Fatalf("the last hop ends %v before the due time", due.Sub(clock.Now()))
	}
	arrive(retry)
	poll() // the retry
	poll() // the final state's step
	if got := history(); got != "[0.0 retry 0.1 next 1.0 done]" {
		t.Errorf("history %s, want the retry run once at its due time and the execution done", got)
	}
	// Every early receipt was acknowledged: nothing is left in the queue.
	a, err := qc.GetQueueAttributes(t.Context(), &awssqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	if v, nv := a.Attributes["ApproximateNumberOfMessages"], a.Attributes["ApproximateNumberOfMessagesNotVisible"]; v != "0" || nv != "0" {
		t.Errorf("queue holds %s visible and %s in-flight messages, want none", v, nv)
	}
}

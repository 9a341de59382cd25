package dynamodb_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
)

// sent records what a RetryTable sends to its dispatch (an engine.Queue:
// the dispatches have their own emulator tests).
type sent struct {
	mu sync.Mutex
	ms []string
}

func (s *sent) Send(_ context.Context, m engine.OutMessage) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ms = append(s.ms, m.Key+"="+string(m.Payload))
	return "r", nil
}

func (s *sent) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.ms
	s.ms = nil
	return ms
}

func newRetryTable(t *testing.T, m *awsconfig.Meter, q engine.Queue, now *time.Time, parts int) *dynamodb.RetryTable {
	t.Helper()
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", m), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	name := awstest.Name("lfsm-retry-test")
	if err := dynamodb.CreateRetryTable(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(name)})
	})
	r, err := dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: c, Table: name, Queue: q, Partitions: parts, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	m.Reset()
	return r
}

func msg(id string, step, retries int) engine.OutMessage {
	return engine.OutMessage{Key: id, Payload: fmt.Appendf(nil, `{"version":"0.1","system_context":{"correlation_id":%q,"steps":%d,"retries":%d}}`, id, step, retries)}
}

// A retry is sent once it is due and not before; an idle poll is one call;
// a retry scheduled twice is sent once; one with no delay goes at once.
func TestRetryTable(t *testing.T) {
	m := &awsconfig.Meter{}
	q := &sent{}
	now := time.Unix(1_800_000_000, 0)
	r := newRetryTable(t, m, q, &now, 1)

	if res, err := r.Poll(t.Context(), now); err != nil || res.Sent != 0 {
		t.Fatalf("idle Poll = %+v, %v", res, err)
	}
	if n := m.Calls(); n != 1 {
		t.Errorf("idle poll made %d calls, want 1 (%v)", n, m.Usage())
	}

	a := msg("a", 3, 1)
	a.Delay = 30 * time.Second
	b := msg("b", 1, 2)
	b.Delay = 90 * time.Second
	for _, x := range []engine.OutMessage{a, a, b} {
		if err := r.ScheduleRetry(t.Context(), x); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := r.Pending(t.Context()); err != nil || !p {
		t.Errorf("Pending with two retries waiting = %v, %v", p, err)
	}
	if res, err := r.Poll(t.Context(), now.Add(29*time.Second)); err != nil || res.Sent != 0 {
		t.Fatalf("Poll before due = %+v, %v", res, err)
	}
	res, err := r.Poll(t.Context(), now.Add(31*time.Second))
	if err != nil || res.Sent != 1 {
		t.Fatalf("Poll when a is due = %+v, %v", res, err)
	}
	if diff := cmp.Diff([]string{"a=" + string(a.Payload)}, q.take()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
	if res, _ := r.Poll(t.Context(), now.Add(60*time.Second)); res.Sent != 0 {
		t.Errorf("a was sent again: %+v", res)
	}
	if res, _ := r.Poll(t.Context(), now.Add(91*time.Second)); res.Sent != 1 {
		t.Errorf("b not sent when due: %+v", res)
	}
	if diff := cmp.Diff([]string{"b=" + string(b.Payload)}, q.take()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}

	if p, err := r.Pending(t.Context()); err != nil || p {
		t.Errorf("Pending with every retry sent = %v, %v", p, err)
	}
	m.Reset()
	if err := r.ScheduleRetry(t.Context(), msg("c", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if got := q.take(); len(got) != 1 || m.Calls() != 0 {
		t.Errorf("a retry with no delay: sent %q with %d table calls, want it sent at once with none", got, m.Calls())
	}
}

// With partitions, a poll queries each (the reason the default is one) and
// finds retries in every one.
func TestRetryTablePartitions(t *testing.T) {
	m := &awsconfig.Meter{}
	q := &sent{}
	now := time.Unix(1_800_000_000, 0)
	r := newRetryTable(t, m, q, &now, 4)
	for i := range 20 {
		x := msg(fmt.Sprintf("e%02d", i), 1, 1)
		x.Delay = time.Second
		if err := r.ScheduleRetry(t.Context(), x); err != nil {
			t.Fatal(err)
		}
	}
	m.Reset()
	res, err := r.Poll(t.Context(), now.Add(2*time.Second))
	if err != nil || res.Sent != 20 {
		t.Fatalf("Poll = %+v, %v; want 20 sent", res, err)
	}
	if n := m.Usage()["DynamoDB.Query"].Calls; n != 4 {
		t.Errorf("queries %d, want one per partition (4)", n)
	}
}

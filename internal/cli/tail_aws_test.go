package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
)

// advance acquires and commits step n of id on the DynamoDB store, as a
// worker does, with outcome out, started at at.
func advance(t *testing.T, s *dynamodb.Store, id string, n int, out engine.Outcome, at time.Time) {
	t.Helper()
	l, err := s.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: n, Now: at, Expires: at.Add(time.Minute)})
	if err != nil {
		t.Fatalf("Acquire %s step %d: %v", id, n, err)
	}
	from, to := fmt.Sprintf("S%d", n), fmt.Sprintf("S%d", n+1)
	if err := s.Commit(t.Context(), engine.Commit{CorrelationID: id, Machine: "M", Step: n, Fence: l.Fence,
		Outcome: out, State: to, Event: "go", Checkpoint: fmt.Appendf(nil, `{"step":%d}`, n+1),
		History: engine.HistoryEntry{Step: n, Fence: l.Fence, From: from, Event: "go", To: to, Outcome: out, Started: at},
		Now:     at}); err != nil {
		t.Fatalf("Commit %s step %d: %v", id, n, err)
	}
}

// TestTailFollowAWS follows every execution on the DynamoDB store (DynamoDB
// Local), which has no global history log: the first poll prints the
// newest executions' history, and later polls print, in time order, the
// new entries of an execution advanced meanwhile and of one that started
// and finished between two polls; a poll with nothing new prints nothing,
// and -m filters by machine.
func TestTailFollowAWS(t *testing.T) {
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	table := awstest.Name("lfsm-tail-test")
	if err := dynamodb.CreateTable(t.Context(), c, table); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(table)})
	})
	s, err := dynamodb.New(dynamodb.Options{Client: c, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	create := func(id, machine string, at time.Time) {
		t.Helper()
		if err := s.Create(ctx, engine.Execution{CorrelationID: id, Machine: machine, State: "S0", Checkpoint: []byte("start"), CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	create("a", "M", t0)
	create("other", "N", t0)
	advance(t, s, "a", 0, engine.OutcomeNext, t0.Add(time.Second))

	started := time.Now()
	next := pagerFeed(s, s, engine.HistoryFilter{Machine: "M"}, started)
	got := func() string {
		t.Helper()
		rows, err := next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, fmt.Sprintf("%s/%d:%s->%s", r.CorrelationID, r.Step, r.From, r.To))
		}
		return strings.Join(out, " ")
	}
	if g, want := got(), "a/0:S0->S1"; g != want {
		t.Fatalf("first poll: %q, want %q", g, want)
	}
	if g := got(); g != "" {
		t.Fatalf("a poll with nothing new: %q", g)
	}
	// While following: a advances (and finishes), b starts and finishes
	// between two polls, and other (machine N) advances.
	now := time.Now()
	advance(t, s, "a", 1, engine.OutcomeDone, now.Add(2*time.Second))
	create("b", "M", now)
	advance(t, s, "b", 0, engine.OutcomeNext, now.Add(time.Second))
	advance(t, s, "b", 1, engine.OutcomeDone, now.Add(3*time.Second))
	advance(t, s, "other", 0, engine.OutcomeNext, now)
	if g, want := got(), "b/0:S0->S1 a/1:S1->S2 b/1:S1->S2"; g != want {
		t.Fatalf("poll after the advances: %q, want %q", g, want)
	}
	if g := got(); g != "" {
		t.Fatalf("a poll with nothing new: %q", g)
	}
}

package ui

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestOnDynamoDB: the console on the DynamoDB store (DynamoDB Local), which
// cannot count: counts come from paging through List and say so; the
// table filters and pages; a send does what it does locally.
func TestOnDynamoDB(t *testing.T) {
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	name := awstest.Name("lfsm-ui-test")
	if err := dynamodb.CreateTable(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(name)})
	})
	f := newFixtureOn(t, func(q *memory.Backend) engine.Store {
		s, err := dynamodb.New(dynamodb.Options{Client: c, Table: name, Queue: q, Retrier: q})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	if _, ok := f.store.(engine.Counter); ok {
		t.Fatal("the DynamoDB store counts now: this test should check its Count instead")
	}
	f.known(t)
	s := newServer(t, f, nil)

	cnt := get[CountsResult](t, s, "/api/counts?machine=Orders")
	want := map[engine.Status]int{"running": 1, "waiting": 2, "failed": 1, "done": 1, "stopped": 1}
	if diff := cmp.Diff(want, cnt.ByStatus); diff != "" || !cnt.Scanned || cnt.Truncated || cnt.Total != 6 {
		t.Errorf("counts: total %d scanned %v truncated %v (-want +got):\n%s", cnt.Total, cnt.Scanned, cnt.Truncated, diff)
	}

	waiting := get[ExecutionsResult](t, s, "/api/executions?status=waiting&state=Approval")
	var got []string
	got = append(got, ids(waiting.Executions)...)
	for next := waiting.Next; next != ""; {
		p := get[ExecutionsResult](t, s, "/api/executions?status=waiting&state=Approval&cursor="+next)
		got, next = append(got, ids(p.Executions)...), p.Next
	}
	if diff := cmp.Diff([]string{f.ids["large"], f.ids["waiting"]}, got); diff != "" {
		t.Errorf("waiting in Approval (-want +got):\n%s", diff)
	}

	r := do(t, s, "POST", "/api/executions/"+f.ids["waiting"]+"/send", `{"event":"reject"}`, TokenHeader, "tok")
	if r.code != http.StatusOK {
		t.Fatalf("send: %d %s", r.code, r.body)
	}
	f.drain(t)
	if x := get[ExecutionResult](t, s, "/api/executions/"+f.ids["waiting"]); x.Execution.Status != engine.StatusDone || x.Execution.State != "Rejected" {
		t.Errorf("after send: %+v", x.Execution)
	}
}

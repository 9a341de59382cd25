package ddbstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/ddbstream"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

func clients(t *testing.T, m *awsconfig.Meter) (*ddb.Client, *streams.Client) {
	t.Helper()
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", m), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	sc := streams.NewFromConfig(awstest.Config(t, "DYNAMODB_STREAMS", nil))
	return c, sc
}

func table(t *testing.T, c *ddb.Client, prefix string, create func(context.Context, *ddb.Client, string) error) string {
	t.Helper()
	name := awstest.Name(prefix)
	if err := create(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}

func streamTable(t *testing.T, c *ddb.Client) (name, streamARN string) {
	t.Helper()
	name = table(t, c, "lfsm-dispatch-test", func(ctx context.Context, c *ddb.Client, n string) (err error) {
		streamARN, err = dynamodb.CreateStreamTable(ctx, c, n)
		return err
	})
	return name, streamARN
}

type recorder struct {
	mu      sync.Mutex
	batches [][]string
	fail    func(n int, recs []events.DynamoDBEventRecord) (string, error)
}

func (r *recorder) Invoke(_ context.Context, event []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, err
	}
	r.mu.Lock()
	n := len(r.batches)
	var b []string
	for _, rec := range ev.Records {
		b = append(b, rec.EventName+" "+rec.Change.NewImage["payload"].String())
	}
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	if r.fail != nil {
		seq, err := r.fail(n, ev.Records)
		if err != nil {
			return nil, err
		}
		if seq != "" {
			return json.Marshal(events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: seq}}})
		}
	}
	return nil, nil
}

// Only INSERTs reach the function: an overwrite (MODIFY) and a deletion (as
// TTL makes them) do not, and StreamQueue's sends are INSERTs, also a send
// repeated for the same step.
func TestReaderOnlyInserts(t *testing.T) {
	c, sc := clients(t, nil)
	name, arn := streamTable(t, c)
	q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	m := engine.OutMessage{Key: "c1", Payload: []byte(`{"system_context":{"steps":1,"retries":0}}`)}
	r1, err := q.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Send(t.Context(), m); err != nil { // a repair's re-send: a new item
		t.Fatal(err)
	}
	k := map[string]types.AttributeValue{"correlation_id": &types.AttributeValueMemberS{Value: "c1"},
		"step": &types.AttributeValueMemberS{Value: r1[len("c1/"):]}}
	if _, err := c.UpdateItem(t.Context(), &ddb.UpdateItemInput{TableName: &name, Key: k,
		UpdateExpression: aws.String("SET #x = :x"), ExpressionAttributeNames: map[string]string{"#x": "x"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":x": &types.AttributeValueMemberN{Value: "1"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteItem(t.Context(), &ddb.DeleteItemInput{TableName: &name, Key: k}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Send(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte("x"), Delay: time.Second}); err == nil {
		t.Error("a delayed send succeeded: the stream cannot delay")
	}
	rec := &recorder{}
	rd, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: rec})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := rd.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	p := `{"system_context":{"steps":1,"retries":0}}`
	want := [][]string{{"INSERT " + p, "INSERT " + p}}
	if diff := cmp.Diff(want, rec.batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestReaderResumesFromReportedFailure(t *testing.T) {
	c, sc := clients(t, nil)
	name, arn := streamTable(t, c)
	q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := q.Send(t.Context(), engine.OutMessage{Key: "c", Payload: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{fail: func(n int, recs []events.DynamoDBEventRecord) (string, error) {
		switch n {
		case 0:
			return recs[2].Change.SequenceNumber, nil
		case 1:
			return "", errors.New("crash")
		}
		return "", nil
	}}
	rd, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: rec, BatchSize: 4, Pause: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		if _, err := rd.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ins := func(is ...int) []string {
		var s []string
		for _, i := range is {
			s = append(s, fmt.Sprintf("INSERT %d", i))
		}
		return s
	}
	want := [][]string{ins(0, 1, 2, 3), ins(2, 3, 4, 5), ins(2, 3, 4, 5)}
	if diff := cmp.Diff(want, rec.batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

const specYAML = `machines:
- name: Example
  states:
  - name: FirstState
    initial: true
    entry_action: example.com/a.Action1
    do_action: example.com/a.Action2
    exit_action: example.com/a.Action3
    transitions:
    - target: SecondState
      event: done
    - target: ThirdState
      event: skip
  - name: SecondState
    entry_action: example.com/a.Action4
    do_action: example.com/a.Action5
    exit_action: example.com/a.Action6
    transitions:
    - target: ThirdState
      event: done
  - name: ThirdState
    final: true
    entry_action: example.com/a.Action7
    do_action: example.com/a.Action8
    exit_action: example.com/a.Action9
- name: Flaky
  states:
  - name: Try
    initial: true
    do_action: example.com/a.FailTwice
    transitions:
    - target: Done
      event: ok
  - name: Done
    final: true
`

func machines(t *testing.T) []*engine.Machine {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fsm.yaml")
	if err := os.WriteFile(p, []byte(specYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(p)
	if s == nil || diags.HasErrors() {
		t.Fatalf("load spec: %v", diags)
	}
	var mu sync.Mutex
	fails := map[string]int{}
	resolve := func(ref string) (fsm.Action, error) {
		switch ref {
		case "example.com/a.Action2", "example.com/a.Action5":
			return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "done", nil }), nil
		case "example.com/a.FailTwice":
			return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
				mu.Lock()
				defer mu.Unlock()
				if fails[c.CorrelationID()] < 2 {
					fails[c.CorrelationID()]++
					return "", errors.New("flaky: not yet")
				}
				return "ok", nil
			}), nil
		}
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "", nil }), nil
	}
	var ms []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, resolve)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, cm)
	}
	return ms
}

// TestEndToEnd runs the seed's Example and a machine that fails twice
// through the DynamoDB-stream dispatch on DynamoDB Local: the Lambda
// handler, fed by the Reader as the event source mapping feeds it, commits
// each step and writes its next message in one transaction, retries go to
// the retry table and its poll; every execution finishes with every step in
// its history once, and each transition is two calls (acquire, commit).
func TestEndToEnd(t *testing.T) {
	m := &awsconfig.Meter{}
	c, sc := clients(t, m)
	storeName := table(t, c, "lfsm-store-test", dynamodb.CreateTable)
	retryName := table(t, c, "lfsm-retry-test", dynamodb.CreateRetryTable)
	dispatchName, arn := streamTable(t, c)
	q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: dispatchName})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: c, Table: retryName, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: storeName, Queue: q, Retrier: rt})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: machines(t), Store: store, Queue: store, Retrier: store,
		MaxMessageBytes: min(q.MaxMessageBytes(), dynamodb.MaxCheckpointBytes)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := lambda.New(lambda.Options{Engine: eng, Store: store, Retrier: rt})
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: h})
	if err != nil {
		t.Fatal(err)
	}
	// Status checks read through a client of their own, not metered.
	plain, _ := clients(t, nil)
	watch, err := dynamodb.New(dynamodb.Options{Client: plain, Table: storeName})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, machine := range []string{"Example", "Example", "Flaky", "Flaky"} {
		id, err := eng.Start(t.Context(), engine.StartRequest{Machine: machine})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	m.Reset()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done := 0
		for _, id := range ids {
			e, err := watch.Get(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if e.Status == engine.StatusDone {
				done++
			} else if e.Status != engine.StatusRunning {
				t.Fatalf("%s is %s: %s", id, e.Status, e.LastError)
			}
		}
		if done == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d executions done after two minutes", done, len(ids))
		}
		if _, err := rd.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		// The scheduled poll, run as if a minute had passed: backoffs are
		// shorter than that.
		if _, err := rt.Poll(t.Context(), time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	u := m.Usage()
	if n := u["DynamoDB.TransactWriteItems"].Calls; n == 0 {
		t.Errorf("no commit was a transaction (usage %v)", u)
	}
	// 16 transitions (4 per execution), each an Acquire (UpdateItem) and a
	// commit (TransactWriteItems) with its next message or retry; the four
	// retries then cost the poll a Query, a PutItem to the stream table and
	// a DeleteItem each (the queries of idle polls aside).
	if n := u["DynamoDB.TransactWriteItems"].Calls; n != 16 {
		t.Errorf("%d transactions, want one per transition (16; usage %v)", n, u)
	}
	if n := u["DynamoDB.UpdateItem"].Calls; n != 16 {
		t.Errorf("%d UpdateItem calls, want one acquire per transition (16; usage %v)", n, u)
	}
	if n, d := u["DynamoDB.PutItem"].Calls, u["DynamoDB.DeleteItem"].Calls; n != 4 || d != 4 {
		t.Errorf("%d PutItem and %d DeleteItem calls, want the poll's 4 of each for the 4 retries (usage %v)", n, d, u)
	}
	for i, id := range ids {
		hist, err := store.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range hist {
			got = append(got, fmt.Sprintf("%d/%d %s", e.Step, e.Retries, e.Outcome))
		}
		want := []string{"0/0 next", "1/0 next", "2/0 next", "3/0 done"}
		if i >= 2 {
			want = []string{"0/0 retry", "0/1 retry", "0/2 next", "1/0 done"}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s history (-want +got), each step once:\n%s", id, diff)
		}
	}
}

// A message lost behind a shard blocked longer than the stream's 24 hours
// is repaired as any stranded execution: the due time its commit (here, the
// start) wrote passes, Engine.Repair sends the checkpoint again, and the
// re-send is a new INSERT (not an overwrite, which the INSERT filter would
// drop), so the function runs it.
func TestRepairResendIsAnInsert(t *testing.T) {
	c, sc := clients(t, nil)
	storeName := table(t, c, "lfsm-store-test", dynamodb.CreateTable)
	dispatchName, arn := streamTable(t, c)
	q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: dispatchName})
	if err != nil {
		t.Fatal(err)
	}
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: storeName, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: machines(t), Store: store, Queue: store, Retrier: store})
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.Start(t.Context(), engine.StartRequest{Machine: "Example"})
	if err != nil {
		t.Fatal(err)
	}
	// The start message's record is taken as lost (never read); past its
	// due time and the grace, the repair sends it again.
	n, err := eng.Repair(t.Context(), engine.RepairOptions{Grace: time.Nanosecond})
	if err != nil || n != 1 {
		t.Fatalf("Repair = %d, %v; want the execution re-sent", n, err)
	}
	rec := &recorder{}
	rd, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: rec})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := rd.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var inserts int
	for _, b := range rec.batches {
		for _, r := range b {
			if strings.HasPrefix(r, "INSERT ") && strings.Contains(r, id) {
				inserts++
			}
		}
	}
	if inserts != 2 {
		t.Errorf("%d INSERTs of %s's start message, want 2 (the start and the repair's re-send): %q", inserts, id, rec.batches)
	}
}

// TestReaderEmptyShardThenRecords: a reader that polled a table while it
// was empty reads the records that arrive later. DynamoDB Local answers the
// iterator it took on the empty shard with TrimmedDataAccessException once
// records are there (seen with a failover's secondary table, empty until the
// primary failed): the reader takes a new iterator instead of failing every
// poll.
func TestReaderEmptyShardThenRecords(t *testing.T) {
	c, sc := clients(t, nil)
	name, arn := streamTable(t, c)
	q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: name})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	rd, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: arn, Invoker: rec})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if n, err := rd.Poll(t.Context()); err != nil || n != 0 {
			t.Fatalf("poll of the empty table: %d records, %v", n, err)
		}
	}
	if _, err := q.Send(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := rd.Poll(t.Context())
		if err != nil {
			t.Fatalf("poll after the record arrived: %v", err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record sent after the empty polls was not read in 30 s")
		}
	}
	if diff := cmp.Diff([][]string{{"INSERT late"}}, rec.batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

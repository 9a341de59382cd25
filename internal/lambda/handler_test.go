package lambda_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
)

// The seed's Example runs to its end over SQS batches: the λ listing of the
// seed (done, done path: λ1, λ2, λ4, λ5), each step once in the history.
func TestSQSRunsExample(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.direct(`{"command":"start","machine":"Example","context":{"n":1},"correlation_id":"ex1"}`)
	if r.Error != nil || r.CorrelationID != "ex1" || r.Status != engine.StatusRunning {
		t.Fatalf("start = %+v", r)
	}
	h.drain()
	status, hist := h.history("ex1")
	if status != engine.StatusDone {
		t.Fatalf("status %s, want done", status)
	}
	var got [][]string
	for _, e := range hist {
		got = append(got, e.Actions)
	}
	want := [][]string{
		{"FirstState.entry_action", "FirstState.do_action"},
		{"FirstState.exit_action", "SecondState.entry_action", "SecondState.do_action"},
		{"SecondState.exit_action", "ThirdState.entry_action", "ThirdState.do_action"},
		{"ThirdState.exit_action"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("actions per step (-want +got):\n%s", diff)
	}
	if s := steps(hist); !slices.Equal(s, []int{0, 1, 2, 3}) {
		t.Errorf("steps %v, want each of 0..3 once", s)
	}
}

// A do action that fails twice is retried through the retrier and then
// succeeds; the history has both failed attempts and the success.
func TestSQSRetriesFlakyStep(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.direct(`{"command":"start","machine":"Flaky","correlation_id":"f1"}`)
	h.drain()
	status, hist := h.history("f1")
	if status != engine.StatusDone {
		t.Fatalf("status %s, want done", status)
	}
	var outcomes []string
	for _, e := range hist {
		outcomes = append(outcomes, string(e.Outcome)+"@"+string(rune('0'+e.Step))+"."+string(rune('0'+e.Retries)))
	}
	want := []string{"retry@0.0", "retry@0.1", "next@0.2", "done@1.0"}
	if !slices.Equal(outcomes, want) {
		t.Errorf("history %v, want %v", outcomes, want)
	}
}

// A record whose step's lease another invocation holds must come back: on
// SQS it is reported after its visibility was shortened to the bounce delay;
// without a VisibilityChanger it goes to the retrier and is acknowledged;
// with neither it is reported as it is.
func TestSQSLeaseHeld(t *testing.T) {
	for _, tc := range []struct {
		name                string
		visibility, retrier bool
		visFails            bool
		reported            bool
		retried             bool
	}{
		{name: "visibility", visibility: true, reported: true},
		{name: "retrier", retrier: true, retried: true},
		{name: "visibility fails, retrier", visibility: true, visFails: true, retrier: true, retried: true},
		{name: "neither", reported: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{visibility: tc.visibility, retrier: tc.retrier})
			if h.vis != nil {
				h.vis.fail = tc.visFails
			}
			h.holdLease("l1", "Example", 0)
			ok := message("Example", "ok1", "pseudo_init", "pseudo_init", 0)
			held := message("Example", "l1", "pseudo_init", "pseudo_init", 0)
			out, err := h.invoke(sqsEvent(t, testQueueARN, []sqsMsg{{"m1", "r1", string(ok)}, {"m2", "r2", string(held)}}))
			if err != nil {
				t.Fatal(err)
			}
			got := failures(t, out)
			if want := []string{"m2"}; tc.reported != slices.Equal(got, want) || (!tc.reported && len(got) != 0) {
				t.Errorf("batchItemFailures %v (reported: %v)", got, tc.reported)
			}
			if tc.visibility {
				if want := []string{testQueueARN + " r2 30s"}; !slices.Equal(h.vis.calls, want) {
					t.Errorf("visibility calls %v, want %v", h.vis.calls, want)
				}
			}
			if tc.retrier {
				if len(h.retrier.calls) != 1 || h.retrier.calls[0].Key != "l1" || !bytes.Equal(h.retrier.calls[0].Payload, held) ||
					h.retrier.calls[0].Delay != lambda.DefaultBounceDelay {
					t.Errorf("retrier calls %+v", h.retrier.calls)
				}
			}
			if status, _ := h.history("ok1"); status != engine.StatusRunning {
				t.Errorf("the other record of the batch: status %s, want running (its step ran)", status)
			}
		})
	}
}

// A standard queue's batch is committed together (one CommitSteps call for
// the records that ran), and each record's verdict is its own: a record
// whose commit failed and one whose lease is held are listed (after their
// visibility was shortened), the others are acknowledged and committed.
func TestSQSBatchCommit(t *testing.T) {
	h := newHarness(t, harnessOpts{visibility: true, batch: true})
	h.batch.fail["f1"] = true
	h.holdLease("l1", "Example", 0)
	var msgs []sqsMsg
	for i, id := range []string{"ok1", "f1", "l1", "ok2"} {
		msgs = append(msgs, sqsMsg{fmt.Sprintf("m%d", i+1), fmt.Sprintf("r%d", i+1), string(message("Example", id, "pseudo_init", "pseudo_init", 0))})
	}
	out, err := h.invoke(sqsEvent(t, testQueueARN, msgs))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"ok1", "f1", "ok2"}}, h.batch.calls); diff != "" {
		t.Errorf("CommitSteps calls (-want +got): one for the records that ran\n%s", diff)
	}
	got := failures(t, out)
	slices.Sort(got)
	if want := []string{"m2", "m3"}; !slices.Equal(got, want) {
		t.Errorf("batchItemFailures %v, want %v", got, want)
	}
	if want := []string{testQueueARN + " r2 30s", testQueueARN + " r3 30s"}; !slices.Equal(h.vis.calls, want) {
		t.Errorf("visibility calls %v, want %v", h.vis.calls, want)
	}
	for _, id := range []string{"ok1", "ok2"} {
		if _, hist := h.history(id); len(hist) != 1 {
			t.Errorf("%s: %d history entries, want its step committed once", id, len(hist))
		}
	}
	if _, hist := h.history("f1"); len(hist) != 0 {
		t.Errorf("f1: %d history entries, want none (its commit failed)", len(hist))
	}
}

// A store that is down is a transient failure: the record comes back, and
// the rest of the batch still runs.
func TestSQSTransientFailure(t *testing.T) {
	var fs *failingStore
	h := newHarness(t, harnessOpts{visibility: true, store: func(s engine.Store) engine.Store {
		fs = &failingStore{Store: s, fail: true}
		return fs
	}})
	out, err := h.invoke(sqsEvent(t, testQueueARN, []sqsMsg{{"m1", "r1", string(message("Example", "t1", "pseudo_init", "pseudo_init", 0))}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(t, out); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("batchItemFailures %v, want [m1]", got)
	}
	if len(h.vis.calls) != 1 {
		t.Errorf("visibility calls %v, want one", h.vis.calls)
	}
}

// Messages that can never run are acknowledged, counted and recorded as
// dropped, never redelivered; their payload is not logged.
func TestSQSDropsMalformed(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	body := `{"version":"0.1","system_context":{"secret":"hunter2"}}`
	out, err := h.invoke(sqsEvent(t, testQueueARN, []sqsMsg{{"m1", "r1", "Message Body"}, {"m2", "r2", body}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(t, out); len(got) != 0 {
		t.Errorf("batchItemFailures %v, want none", got)
	}
	if d := h.dropped(); len(d) != 2 || d[0].Reason != engine.DropNotJSON || d[1].Size != len(body) {
		t.Errorf("drops %+v", d)
	}
	if !strings.Contains(h.metrics.String(), `"dropped":2`) {
		t.Errorf("metrics %s: no dropped count of 2", h.metrics.String())
	}
	if strings.Contains(h.logs.String(), "hunter2") {
		t.Errorf("a payload was logged: %s", h.logs.String())
	}
}

// steppingClock moves on by step at every reading.
type steppingClock struct {
	c    *storetest.Clock
	step time.Duration
}

func (s steppingClock) Now() time.Time {
	s.c.Advance(s.step)
	return s.c.Now()
}

// Near the deadline the handler stops taking records and hands the rest
// back, visible again at once.
func TestSQSDeadline(t *testing.T) {
	start := time.Now()
	c := storetest.NewClock(start)
	h := newHarness(t, harnessOpts{visibility: true, clock: steppingClock{c, time.Second}, reserve: 5 * time.Second})
	// The deadline is real (the context enforces it) but far enough away
	// that only the stepping clock can bring it near.
	ctx, cancel := context.WithDeadline(withRequestID(t.Context(), "req"), start.Add(8*time.Second+time.Hour))
	c.Advance(time.Hour)
	defer cancel()
	var msgs []sqsMsg
	for i, id := range []string{"d1", "d2", "d3", "d4"} {
		msgs = append(msgs, sqsMsg{id: "m" + id, receipt: "r" + id, body: string(message("Flaky", id, "pseudo_init", "pseudo_init", i-i))})
	}
	out, err := h.h.Invoke(ctx, sqsEvent(t, testQueueARN, msgs))
	if err != nil {
		t.Fatal(err)
	}
	got := failures(t, out)
	if len(got) == 0 || len(got) == 4 || got[len(got)-1] != "md4" {
		t.Fatalf("batchItemFailures %v: want the tail of the batch handed back", got)
	}
	for _, c := range h.vis.calls {
		if !strings.HasSuffix(c, " 0s") {
			t.Errorf("handed-back record's visibility %q, want 0s", c)
		}
	}
}

// On a FIFO queue a record that must come back takes every later record of
// the batch with it, so that message groups stay in order.
func TestSQSFIFO(t *testing.T) {
	h := newHarness(t, harnessOpts{visibility: true})
	h.holdLease("l1", "Example", 0)
	arn := testQueueARN + ".fifo"
	out, err := h.invoke(sqsEvent(t, arn, []sqsMsg{
		{"m1", "r1", string(message("Example", "a", "pseudo_init", "pseudo_init", 0))},
		{"m2", "r2", string(message("Example", "l1", "pseudo_init", "pseudo_init", 0))},
		{"m3", "r3", string(message("Example", "b", "pseudo_init", "pseudo_init", 0))},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(t, out); !slices.Equal(got, []string{"m2", "m3"}) {
		t.Errorf("batchItemFailures %v, want [m2 m3]", got)
	}
	if _, err := h.mem.Get(t.Context(), "b"); err == nil {
		t.Error("the record after the failed one ran")
	}
}

// On a Kinesis shard, a record that must come back is put off through the
// retrier and acknowledged; when that fails, it and every record after it
// are reported (Lambda resumes from the lowest). The records after it ran
// in the same batch already: their redelivery finds their steps done.
func TestKinesis(t *testing.T) {
	for _, retrierFails := range []bool{false, true} {
		h := newHarness(t, harnessOpts{retrier: true})
		h.retrier.fail = retrierFails
		h.holdLease("l1", "Example", 0)
		ev := kinesisEvent(t, [][]byte{
			message("Example", "a", "pseudo_init", "pseudo_init", 0),
			[]byte("Hello World"),
			message("Example", "l1", "pseudo_init", "pseudo_init", 0),
			message("Example", "b", "pseudo_init", "pseudo_init", 0),
		})
		out, err := h.invoke(ev)
		if err != nil {
			t.Fatal(err)
		}
		got := failures(t, out)
		_, errB := h.mem.Get(t.Context(), "b")
		if retrierFails {
			// b ran in the batch before l1's verdict was read: it is
			// reported with l1 and its redelivery finds its step done.
			if !slices.Equal(got, []string{seq(2), seq(3)}) || errB != nil {
				t.Errorf("retrier down: batchItemFailures %v (want records 2 and 3), b: %v", got, errB)
			}
		} else if len(got) != 0 || errB != nil || len(h.retrier.calls) != 1 {
			t.Errorf("batchItemFailures %v (want none), b: %v, retrier calls %d", got, errB, len(h.retrier.calls))
		}
		if d := h.dropped(); len(d) != 1 || d[0].Reason != engine.DropNotJSON {
			t.Errorf("drops %+v, want record 1 (not a message)", d)
		}
	}
}

// A DynamoDB stream table's inserts carry the message in NewImage.payload;
// removals (TTL) are skipped; an item without payload is dropped.
func TestDynamoDBStream(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	out, err := h.invoke(dynamoEvent(t, []streamItem{
		{"INSERT", message("Example", "a", "pseudo_init", "pseudo_init", 0)},
		{"REMOVE", nil},
		{"MODIFY", nil},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(t, out); len(got) != 0 {
		t.Errorf("batchItemFailures %v", got)
	}
	if status, hist := h.history("a"); status != engine.StatusRunning || len(hist) != 1 {
		t.Errorf("a: %s, %d entries; want its first step run", status, len(hist))
	}
	if d := h.dropped(); len(d) != 1 || !strings.Contains(d[0].Detail, "aws:dynamodb record "+seq(2)) || d[0].Reason != engine.DropMalformed {
		t.Errorf("drops %+v, want the item without payload", d)
	}
	if !strings.Contains(h.metrics.String(), `"dropped":1`) {
		t.Errorf("metrics %s: the drop is not counted", h.metrics.String())
	}
}

// SNS records spell their source EventSource; the message runs. One that
// must come back and cannot be put off fails the invocation (Lambda's async
// retry).
func TestSNS(t *testing.T) {
	h := newHarness(t, harnessOpts{retrier: true})
	if _, err := h.invoke(snsEvent(t, message("Example", "a", "pseudo_init", "pseudo_init", 0))); err != nil {
		t.Fatal(err)
	}
	if status, hist := h.history("a"); status != engine.StatusRunning || len(hist) != 1 {
		t.Errorf("a: %s, %d entries; want its first step run", status, len(hist))
	}
	h.holdLease("l1", "Example", 0)
	if _, err := h.invoke(snsEvent(t, message("Example", "l1", "pseudo_init", "pseudo_init", 0))); err != nil || len(h.retrier.calls) != 1 {
		t.Errorf("lease held: err %v, retrier calls %d; want put off through the retrier", err, len(h.retrier.calls))
	}
	h.retrier.fail = true
	if _, err := h.invoke(snsEvent(t, message("Example", "l1", "pseudo_init", "pseudo_init", 0))); err == nil {
		t.Error("lease held, retrier down: no error, so Lambda would not retry")
	}
	// The fixture's own message is not one of ours: dropped, no error.
	if _, err := h.invoke(snsEvent(t, []byte("Hello from SNS!"))); err != nil || len(h.dropped()) != 1 {
		t.Errorf("not a message: err %v, drops %d", err, len(h.dropped()))
	}
}

type fakePoller struct {
	deadline time.Time
	now      time.Time
}

func (p *fakePoller) Poll(ctx context.Context, now time.Time) (lambda.PollResult, error) {
	p.deadline, _ = ctx.Deadline()
	p.now = now
	return lambda.PollResult{Retried: 2, Repaired: 1}, nil
}

// An EventBridge scheduled event runs the poller, which must finish before
// the invocation's deadline less the reserve.
func TestScheduled(t *testing.T) {
	p := &fakePoller{}
	h := newHarness(t, harnessOpts{})
	h2, err := lambda.New(lambda.Options{Engine: h.eng, Poller: p, Reserve: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ev := `{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events",
	"account":"123456789012","time":"2026-01-02T03:04:05Z","region":"us-east-1",
	"resources":["arn:aws:events:us-east-1:123456789012:rule/lfsm-poll"],"detail":{}}`
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	out, err := h2.Invoke(ctx, []byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"format_version":"1","retried":2,"repaired":1,"more":false}`; string(out) != want {
		t.Errorf("response %s, want %s", out, want)
	}
	if !p.deadline.Equal(deadline.Add(-time.Second)) {
		t.Errorf("poll deadline %v, want the invocation's less the reserve", p.deadline)
	}
	if _, err := h.invoke([]byte(ev)); err == nil {
		t.Error("scheduled event without a poller: no error")
	}
}

// Direct invocation: start, send, stop, resume and their refusals.
func TestDirect(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.direct(`{"command":"start","machine":"Parked","correlation_id":"p1"}`)
	if r.Error != nil || r.Status != engine.StatusRunning {
		t.Fatalf("start: %+v", r)
	}
	h.drain()
	for _, tc := range []struct {
		req    string
		status engine.Status
		code   string
	}{
		{`{"command":"send","correlation_id":"p1","event":"nope"}`, "", "unknown_event"},
		{`{"command":"stop","correlation_id":"p1"}`, engine.StatusStopped, ""},
		{`{"command":"send","correlation_id":"p1","event":"go"}`, "", "not_waiting"},
		{`{"command":"resume","correlation_id":"p1"}`, engine.StatusWaiting, ""},
		{`{"command":"send","correlation_id":"p1","event":"go"}`, engine.StatusRunning, ""},
		{`{"command":"resume","correlation_id":"p1"}`, "", "not_resumable"},
		{`{"command":"start","machine":"Parked","correlation_id":"p1"}`, "", "exists"},
		{`{"command":"start","machine":"Nope"}`, "", "unknown_machine"},
		{`{"command":"stop","correlation_id":"nobody"}`, "", "not_found"},
		{`{"command":"start"}`, "", "bad_request"},
		{`{"command":"send","correlation_id":"p1"}`, "", "bad_request"},
		{`{"command":"launch"}`, "", "bad_request"},
		{`{"command":"stop","correlation_id":"p1","extra":1}`, "", "bad_request"},
		{`{"command":"start","machine":"Parked","context":[1]}`, "", "bad_request"},
	} {
		r := h.direct(tc.req)
		code := ""
		if r.Error != nil {
			code = r.Error.Code
			if r.Error.Message == "" {
				t.Errorf("%s: error without a message", tc.req)
			}
		}
		if code != tc.code || r.Status != tc.status || r.FormatVersion != "1" {
			t.Errorf("%s = %+v, want status %q code %q", tc.req, r, tc.status, tc.code)
		}
	}
	h.drain()
	if status, _ := h.history("p1"); status != engine.StatusDone {
		t.Errorf("p1 %s after send go, want done", status)
	}
}

// A wire-format message invoked directly (API Gateway, the Python
// framework's direct post) is handled as one record.
func TestBareMessage(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	out, err := h.invoke(message("Example", "b1", "pseudo_init", "pseudo_init", 0))
	if err != nil {
		t.Fatal(err)
	}
	var r lambda.MessageResponse
	json.Unmarshal(out, &r)
	if r.CorrelationID != "b1" || r.Outcome != "next" || r.State != "FirstState" || r.Event != "done" {
		t.Errorf("response %s", out)
	}
}

func TestUnrecognisedEvents(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, ev := range []string{`[]`, `{}`, `{"Records":[{"eventSource":"aws:s3"}]}`, `{"mode":"batch"}`, `not json`} {
		if _, err := h.invoke([]byte(ev)); err == nil {
			t.Errorf("%s: no error", ev)
		}
	}
}

// Metrics are EMF lines, one per (machine, state, event), the request id in
// every log line, and no payload in any.
func TestMetricsAndLogs(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.direct(`{"command":"start","machine":"Example","correlation_id":"e1"}`)
	h.pump()
	lines := strings.Split(strings.TrimSpace(h.metrics.String()), "\n")
	want := `{"_aws":{"CloudWatchMetrics":[{"Dimensions":[["machine","state","event"]],"Metrics":[{"Name":"dispatch","Unit":"Count"}],"Namespace":"lfsm"}],"Timestamp":1767323045000},"machine":"Example","state":"pseudo_init","event":"pseudo_init","dispatch":1}`
	if len(lines) != 1 || lines[0] != want {
		t.Errorf("EMF lines:\n%s\nwant:\n%s", h.metrics.String(), want)
	}
	for _, l := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON", l)
		}
		if m["aws_request_id"] != "req-1" {
			t.Errorf("log line without the request id: %s", l)
		}
		if m["msg"] == "step" && (m["correlation_id"] != "e1" || m["machine"] != "Example" || m["state"] != "FirstState" || m["event"] != "done") {
			t.Errorf("step log line: %s", l)
		}
	}
}

// The scheduled poll of a function on SQS is the repair: an execution whose
// message was lost (here: received and deleted without being handled) is
// re-sent once it is overdue by the grace, and then finishes.
func TestScheduledRepair(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.direct(`{"command":"start","machine":"Example","correlation_id":"r1"}`)
	ds, err := h.mem.Receive(t.Context(), 10, time.Hour, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %d", err, len(ds))
	}
	if err := h.mem.Ack(t.Context(), ds[0].Receipt); err != nil { // lost
		t.Fatal(err)
	}
	p, err := lambda.New(lambda.Options{Engine: h.eng, Poller: lambda.RepairPoller{Engine: h.eng}})
	if err != nil {
		t.Fatal(err)
	}
	ev := []byte(`{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-01-02T03:04:05Z","region":"us-east-1","resources":[],"detail":{}}`)
	poll := func() string {
		out, err := p.Invoke(t.Context(), ev)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	if got := poll(); !strings.Contains(got, `"repaired":0`) {
		t.Errorf("within the grace: %s, want nothing repaired (the message may be on its way)", got)
	}
	h.clock.Advance(engine.DefaultRepairGrace + time.Second)
	if got := poll(); !strings.Contains(got, `"repaired":1`) {
		t.Fatalf("past the grace: %s, want the execution repaired", got)
	}
	h.drain()
	if status, hist := h.history("r1"); status != engine.StatusDone || len(hist) != 4 {
		t.Errorf("r1: %s with %d entries, want done with 4", status, len(hist))
	}
}

// A Kinesis batch is committed together (one CommitSteps call for the
// records that ran). A record whose commit failed and one whose lease is
// held go through the retrier and are acknowledged (the shard moves on);
// when the retrier is down too, the first of them is reported with every
// record after it, as Lambda resumes a shard from the lowest one reported.
func TestKinesisBatchCommit(t *testing.T) {
	for _, retrierFails := range []bool{false, true} {
		h := newHarness(t, harnessOpts{batch: true, retrier: true})
		h.retrier.fail = retrierFails
		h.batch.fail["f1"] = true
		h.holdLease("l1", "Example", 0)
		var ps [][]byte
		for _, id := range []string{"ok1", "f1", "l1", "ok2"} {
			ps = append(ps, message("Example", id, "pseudo_init", "pseudo_init", 0))
		}
		out, err := h.invoke(kinesisEvent(t, ps))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([][]string{{"ok1", "f1", "ok2"}}, h.batch.calls); diff != "" {
			t.Errorf("CommitSteps calls (-want +got): one for the records that ran\n%s", diff)
		}
		got := failures(t, out)
		if retrierFails {
			if want := []string{seq(1), seq(2), seq(3)}; !slices.Equal(got, want) {
				t.Errorf("retrier down: batchItemFailures %v, want %v (f1 and every record after it)", got, want)
			}
		} else if len(got) != 0 || len(h.retrier.calls) != 2 {
			t.Errorf("batchItemFailures %v (want none), retrier calls %d (want f1 and l1)", got, len(h.retrier.calls))
		}
		for _, id := range []string{"ok1", "ok2"} {
			if _, hist := h.history(id); len(hist) != 1 {
				t.Errorf("%s: %d history entries, want its step committed once", id, len(hist))
			}
		}
		if _, hist := h.history("f1"); len(hist) != 0 {
			t.Errorf("f1: %d history entries, want none (its commit failed)", len(hist))
		}
	}
}

// A Kinesis batch holding two messages of one execution (a copy the
// retrier or a repair sent while the original was in flight) is handled one
// record at a time: the copy finds its step done and is dropped, rather
// than bouncing off the original's lease in the same batch.
func TestKinesisBatchRepeatedExecution(t *testing.T) {
	h := newHarness(t, harnessOpts{batch: true, retrier: true})
	m := message("Example", "a", "pseudo_init", "pseudo_init", 0)
	out, err := h.invoke(kinesisEvent(t, [][]byte{m, message("Example", "b", "pseudo_init", "pseudo_init", 0), m}))
	if err != nil {
		t.Fatal(err)
	}
	if got := failures(t, out); len(got) != 0 {
		t.Errorf("batchItemFailures %v, want none", got)
	}
	if len(h.batch.calls) != 0 || len(h.retrier.calls) != 0 {
		t.Errorf("CommitSteps calls %v, retrier calls %d: want neither (one record at a time, the copy dropped)", h.batch.calls, len(h.retrier.calls))
	}
	for _, id := range []string{"a", "b"} {
		if _, hist := h.history(id); len(hist) != 1 {
			t.Errorf("%s: %d history entries, want its step committed once", id, len(hist))
		}
	}
}

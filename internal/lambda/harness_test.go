package lambda_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// specYAML holds the seed's Example, a machine whose do action fails twice
// before it succeeds, and one that waits for an outside event.
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
- name: Parked
  states:
  - name: Wait
    initial: true
    transitions:
    - target: End
      event: go
  - name: End
    final: true
`

// loadSpec writes specYAML to a temp file and loads it.
func loadSpec(t *testing.T) *spec.Spec {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fsm.yaml")
	if err := os.WriteFile(p, []byte(specYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(p)
	if s == nil || diags.HasErrors() {
		t.Fatalf("load spec: %v", diags)
	}
	return s
}

// actions of specYAML. Example's do actions return done (Action2, Action5)
// and nothing (Action8, final); FailTwice fails on its first two attempts of
// every execution.
type actions struct {
	mu    sync.Mutex
	fails map[string]int
}

func (a *actions) resolve(ref string) (fsm.Action, error) {
	switch ref {
	case "example.com/a.Action2", "example.com/a.Action5":
		return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "done", nil }), nil
	case "example.com/a.FailTwice":
		return fsm.ActionFunc(func(_ context.Context, c *fsm.Context) (string, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			id := c.Facts().CorrelationID
			if a.fails[id] < 2 {
				a.fails[id]++
				return "", errors.New("flaky: not yet")
			}
			return "ok", nil
		}), nil
	}
	return fsm.ActionFunc(func(context.Context, *fsm.Context) (string, error) { return "", nil }), nil
}

// queueOnly is the memory backend seen as a queue only, so that the engine
// takes the general path (Acquire, Send, Commit) that it takes on AWS.
type queueOnly struct{ b *memory.Backend }

func (q queueOnly) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return q.b.Send(ctx, m)
}

// batchStore is the memory backend as a BatchCommitter: each CommitSteps
// call is recorded, and the commits of the ids in fail fail (a store that
// is down for them).
type batchStore struct {
	*memory.Backend
	fail  map[string]bool
	calls [][]string
}

func (b *batchStore) CommitSteps(ctx context.Context, steps []engine.StepCommit) []error {
	errs := make([]error, len(steps))
	var ids []string
	for i, st := range steps {
		ids = append(ids, st.Commit.CorrelationID)
		if b.fail[st.Commit.CorrelationID] {
			errs[i] = errors.New("store down")
			continue
		}
		steps[i].Receipt, errs[i] = b.CommitStep(ctx, st.Commit, st.Out, st.Ack)
	}
	b.calls = append(b.calls, ids)
	return errs
}

// harness runs a Handler on the memory backend with a fake clock, and feeds
// it SQS events built from aws-lambda-go's fixture the way Lambda's event
// source mapping does (receive, invoke, delete what was not reported).
type harness struct {
	t       *testing.T
	clock   *storetest.Clock
	mem     *memory.Backend
	store   engine.Store
	eng     *engine.Engine
	h       *lambda.Handler
	vis     *fakeVisibility
	retrier *fakeRetrier
	emf     *lambda.EMF
	batch   *batchStore
	metrics bytes.Buffer
	logs    bytes.Buffer
}

type harnessOpts struct {
	store      func(engine.Store) engine.Store
	visibility bool
	retrier    bool
	clock      engine.Clock
	reserve    time.Duration
	// batch makes the store a BatchCommitter (batchStore), the engine's
	// queue and retrier, as the DynamoDB store is on AWS.
	batch bool
	// publisher, when set, is the handler's Publisher (and counts for the
	// engine too, beside the EMF lines).
	publisher lambda.Publisher
	// counters, when set, also receive every counter.
	counters *engine.Counters
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, clock: storetest.NewClock(epoch)}
	h.mem = memory.New(memory.Options{Clock: h.clock.Now})
	h.store = h.mem
	if o.store != nil {
		h.store = o.store(h.mem)
	}
	h.emf = lambda.NewEMF(&h.metrics, h.clock.Now)
	logger := slogJSON(&h.logs)
	s := loadSpec(t)
	a := &actions{fails: map[string]int{}}
	var machines []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, a.resolve)
		if err != nil {
			t.Fatal(err)
		}
		machines = append(machines, cm)
	}
	var queue engine.Queue = queueOnly{h.mem}
	var retrier engine.Retrier = h.mem
	if o.batch {
		h.batch = &batchStore{Backend: h.mem, fail: map[string]bool{}}
		h.store, queue, retrier = h.batch, h.batch, h.batch
	}
	var pub, counters engine.Metrics
	if o.publisher != nil {
		pub = o.publisher
	}
	if o.counters != nil {
		counters = o.counters
	}
	eng, err := engine.New(engine.Options{Machines: machines, Store: h.store, Queue: queue, Retrier: retrier,
		Metrics: engine.Tee(h.emf, pub, counters), Clock: h.clock, Logger: logger, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	opts := lambda.Options{Engine: eng, Store: h.store, Machines: machines, Metrics: h.emf, Publisher: o.publisher,
		Logger: logger, Clock: o.clock, Reserve: o.reserve}
	if o.visibility {
		h.vis = &fakeVisibility{}
		opts.Visibility = h.vis
	}
	if o.retrier {
		h.retrier = &fakeRetrier{mem: h.mem}
		opts.Retrier = h.retrier
	}
	h.h, err = lambda.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func slogJSON(w *bytes.Buffer) *slog.Logger {
	return slog.New(lambda.NewLogHandler(w, slog.LevelInfo))
}

func withRequestID(ctx context.Context, id string) context.Context {
	return lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: id})
}

// invoke calls the handler with a context carrying a Lambda request id.
func (h *harness) invoke(event []byte) ([]byte, error) {
	h.t.Helper()
	return h.h.Invoke(withRequestID(h.t.Context(), "req-1"), event)
}

// direct sends a direct request and decodes the response.
func (h *harness) direct(req string) lambda.Response {
	h.t.Helper()
	out, err := h.invoke([]byte(req))
	if err != nil {
		h.t.Fatalf("direct %s: %v", req, err)
	}
	var r lambda.Response
	if err := json.Unmarshal(out, &r); err != nil {
		h.t.Fatalf("direct %s: response %s: %v", req, out, err)
	}
	return r
}

// pump receives up to 10 visible messages, invokes the handler with them as
// one SQS batch and deletes the ones not reported, as Lambda does. It
// returns the response, or false when nothing was visible.
func (h *harness) pump() (lambda.BatchResponse, bool) {
	h.t.Helper()
	ds, err := h.mem.Receive(h.t.Context(), 10, time.Hour, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(ds) == 0 {
		return lambda.BatchResponse{}, false
	}
	msgs := make([]sqsMsg, len(ds))
	for i, d := range ds {
		msgs[i] = sqsMsg{id: d.Receipt, receipt: d.Receipt, body: string(d.Payload)}
	}
	out, err := h.invoke(sqsEvent(h.t, testQueueARN, msgs))
	if err != nil {
		h.t.Fatalf("invoke: %v", err)
	}
	var resp lambda.BatchResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		h.t.Fatalf("response %s: %v", out, err)
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	for _, d := range ds {
		if !failed[d.Receipt] {
			if err := h.mem.Ack(h.t.Context(), d.Receipt); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	return resp, true
}

// drain pumps until the queue is empty, moving the clock on past delays.
func (h *harness) drain() {
	h.t.Helper()
	for range 1000 {
		if _, ok := h.pump(); ok {
			continue
		}
		if h.mem.Len() == 0 {
			return
		}
		h.clock.Advance(time.Minute)
	}
	h.t.Fatal("queue never drained")
}

// history returns an execution's status and history.
func (h *harness) history(id string) (engine.Status, []engine.HistoryEntry) {
	h.t.Helper()
	x, err := h.mem.Get(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	hist, err := h.mem.History(h.t.Context(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return x.Status, hist
}

// message is a wire-format message of machine at state/event, steps.
func message(machine, id, state, event string, steps int) []byte {
	return fmt.Appendf(nil, `{"version":"0.1","system_context":{"machine_name":%q,"current_state":%q,"current_event":%q,"correlation_id":%q,"steps":%d,"retries":0},"user_context":{"secret":"hunter2"}}`,
		machine, state, event, id, steps)
}

const testQueueARN = "arn:aws:sqs:us-east-1:123456789012:lfsm-dispatch"

type sqsMsg struct{ id, receipt, body string }

// fixture reads one of aws-lambda-go's event fixtures (testdata/, copied
// from github.com/aws/aws-lambda-go/events/testdata, Apache-2.0).
func fixture(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// records rebuilds a fixture's Records from its first record, one per
// item, with set filling in each copy.
func records(t *testing.T, name string, n int, set func(i int, r map[string]any)) []byte {
	t.Helper()
	ev := fixture(t, name)
	tmpl, _ := json.Marshal(ev["Records"].([]any)[0])
	recs := make([]any, n)
	for i := range n {
		var r map[string]any
		json.Unmarshal(tmpl, &r)
		set(i, r)
		recs[i] = r
	}
	ev["Records"] = recs
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sqsEvent(t *testing.T, arn string, msgs []sqsMsg) []byte {
	return records(t, "sqs-event.json", len(msgs), func(i int, r map[string]any) {
		r["messageId"], r["receiptHandle"], r["body"], r["eventSourceARN"] = msgs[i].id, msgs[i].receipt, msgs[i].body, arn
	})
}

func kinesisEvent(t *testing.T, payloads [][]byte) []byte {
	return records(t, "kinesis-event.json", len(payloads), func(i int, r map[string]any) {
		k := r["kinesis"].(map[string]any)
		k["data"] = base64.StdEncoding.EncodeToString(payloads[i])
		k["sequenceNumber"] = seq(i)
	})
}

// streamItem is a DynamoDB stream table change: eventName and the payload
// attribute of its new image (nil: none).
type streamItem struct {
	eventName string
	payload   []byte
}

func dynamoEvent(t *testing.T, items []streamItem) []byte {
	return records(t, "dynamodb-event.json", len(items), func(i int, r map[string]any) {
		r["eventName"] = items[i].eventName
		d := r["dynamodb"].(map[string]any)
		d["SequenceNumber"] = seq(i)
		img := map[string]any{"correlation_id": map[string]any{"S": "x"}, "timestamp": map[string]any{"N": "1480642020"}}
		if items[i].payload != nil {
			img["payload"] = map[string]any{"S": string(items[i].payload)}
		}
		d["NewImage"] = img
		if items[i].eventName == "REMOVE" {
			delete(d, "NewImage")
		}
	})
}

func snsEvent(t *testing.T, msg []byte) []byte {
	return records(t, "sns-event.json", 1, func(_ int, r map[string]any) {
		r["Sns"].(map[string]any)["Message"] = string(msg)
	})
}

func seq(i int) string { return "4956816737333333333333333333" + strconv.Itoa(100+i) }

func failures(t *testing.T, out []byte) []string {
	t.Helper()
	var resp lambda.BatchResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	if resp.BatchItemFailures == nil {
		t.Fatalf("response %s: batchItemFailures is not a list", out)
	}
	ids := []string{}
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

// fakeVisibility records ChangeMessageVisibility calls (a fake, because the
// handler's seam is an interface; the SQS implementation is tested against
// fauxqs in internal/backend/sqs).
type fakeVisibility struct {
	calls []string
	fail  bool
}

func (f *fakeVisibility) ChangeVisibility(_ context.Context, arn, receipt string, d time.Duration) error {
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s", arn, receipt, d))
	if f.fail {
		return errors.New("sqs down")
	}
	return nil
}

// fakeRetrier sends retries to the memory queue, or fails.
type fakeRetrier struct {
	mem   *memory.Backend
	fail  bool
	calls []engine.OutMessage
}

func (f *fakeRetrier) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	f.calls = append(f.calls, m)
	if f.fail {
		return errors.New("retry table down")
	}
	return f.mem.ScheduleRetry(ctx, m)
}

// dropped lists the drops recorded in the store, oldest first.
func (h *harness) dropped() []engine.DroppedMessage {
	h.t.Helper()
	ds, err := h.mem.ListDropped(h.t.Context(), engine.DropFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Reverse(ds)
	return ds
}

// failingStore fails Acquire while fail is set (a store that is down).
type failingStore struct {
	engine.Store
	fail bool
}

func (s *failingStore) Acquire(ctx context.Context, r engine.AcquireRequest) (engine.Lease, error) {
	if s.fail {
		return engine.Lease{}, errors.New("store down")
	}
	return s.Store.Acquire(ctx, r)
}

// holdLease takes the lease of (id, step) for another invocation.
func (h *harness) holdLease(id, machine string, step int) {
	h.t.Helper()
	now := h.clock.Now()
	if _, err := h.mem.Acquire(h.t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: machine, Step: step,
		Now: now, Expires: now.Add(time.Hour)}); err != nil {
		h.t.Fatal(err)
	}
}

func steps(hist []engine.HistoryEntry) []int {
	var s []int
	for _, e := range hist {
		s = append(s, e.Step)
	}
	return s
}

func sortedUnique(s []int) bool {
	return slices.IsSorted(s) && len(slices.Compact(slices.Clone(s))) == len(s)
}

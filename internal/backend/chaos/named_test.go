package chaos_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// batchBackend is a memory backend with the batched calls of the DynamoDB
// store, counting them.
type batchBackend struct {
	*memory.Backend
	commitSteps, startBatch int
}

func (b *batchBackend) CommitSteps(ctx context.Context, steps []engine.StepCommit) []error {
	b.commitSteps++
	return make([]error, len(steps))
}

func (b *batchBackend) StartBatch(ctx context.Context, xs []engine.Execution, outs []engine.OutMessage) []error {
	b.startBatch++
	return make([]error, len(xs))
}

// sendBatcher is a queue with a batched send, as SQS, SNS and Kinesis are.
type sendBatcher struct {
	engine.Queue
	batches int
}

func (q *sendBatcher) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	q.batches++
	return make([]string, len(ms)), nil
}

// TestBatchStoreKeepsSeams: the wrapper of a batched store is still one
// backend to the engine (store, queue, retrier, step and batch committer,
// batch starter), its batched calls fail as a whole before the store is
// called, and Send and ScheduleRetry pass through uncounted (the store's
// queue and retrier are wrapped under their own names).
func TestBatchStoreKeepsSeams(t *testing.T) {
	b := &batchBackend{Backend: memory.New(memory.Options{})}
	inj := chaos.New(chaos.Config{Ops: map[string]float64{"dynamodb.CommitSteps": 1, "dynamodb.StartBatch": 1}})
	w := inj.For("dynamodb").BatchStore(b)
	if _, err := engine.New(engine.Options{Store: w, Queue: w, Retrier: w}); err != nil {
		t.Fatal(err)
	}
	var _ engine.BatchCommitter = w
	errs := w.CommitSteps(t.Context(), make([]engine.StepCommit, 3))
	if len(errs) != 3 || !errors.Is(errs[0], chaos.ErrInjected) || !errors.Is(errs[2], chaos.ErrInjected) || b.commitSteps != 0 {
		t.Errorf("CommitSteps = %v (store called %d times), want 3 injected failures and no call", errs, b.commitSteps)
	}
	if errs := w.StartBatch(t.Context(), make([]engine.Execution, 2), make([]engine.OutMessage, 2)); len(errs) != 2 || !errors.Is(errs[1], chaos.ErrInjected) || b.startBatch != 0 {
		t.Errorf("StartBatch = %v, want 2 injected failures and no call", errs)
	}
	if _, err := w.Send(t.Context(), engine.OutMessage{Key: "k", Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	calls, _ := inj.Stats()
	if d := cmp.Diff(map[string]int{"dynamodb.CommitSteps": 1, "dynamodb.StartBatch": 1}, calls); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
}

// TestDispatchKeepsSeams: a dispatch queue's wrapper keeps its batched send
// and, for a queue that delays messages itself (SQS), its ScheduleRetry,
// each failing as its own operation of the view's backend.
func TestDispatchKeepsSeams(t *testing.T) {
	inj := chaos.New(chaos.Config{Ops: map[string]float64{"sqs.SendBatch": 1, "sqs.ScheduleRetry": 1}})
	mem := memory.New(memory.Options{})
	q := &sendBatcher{Queue: mem}
	w := inj.For("sqs").Dispatch(q)
	bs, ok := w.(interface {
		SendBatch(context.Context, []engine.OutMessage) ([]string, error)
	})
	if !ok {
		t.Fatal("the wrapper of a batched queue has no SendBatch")
	}
	if _, err := bs.SendBatch(t.Context(), make([]engine.OutMessage, 2)); !errors.Is(err, chaos.ErrInjected) || q.batches != 0 {
		t.Errorf("SendBatch = %v after %d batches, want an injected failure and no call", err, q.batches)
	}
	if _, ok := w.(engine.Retrier); ok {
		t.Error("a queue that is no Retrier became one")
	}
	r, ok := inj.For("sqs").Dispatch(mem).(engine.Retrier)
	if !ok {
		t.Fatal("the wrapper of a queue that is a Retrier is not one")
	}
	if err := r.ScheduleRetry(t.Context(), engine.OutMessage{Key: "k", Payload: []byte("{}")}); !errors.Is(err, chaos.ErrInjected) {
		t.Errorf("ScheduleRetry = %v, want an injected failure", err)
	}
}

func TestCheckKeys(t *testing.T) {
	aws := chaos.AWSBackends()
	for _, tc := range []struct {
		ops  map[string]float64
		want string
	}{
		{map[string]float64{"dynamodb.Acquire": 0.2, "kinesis.Send": 0.1, "Receive": 1}, ""},
		{map[string]float64{"sqlite.Acquire": 0.2}, "backend sqlite is not used here; the backends are cloudwatch, dynamodb"},
		{map[string]float64{"kinesis.Acquire": 0.2}, "kinesis has no operation Acquire; its operations are Receive, Send, SendBatch"},
		{map[string]float64{"Nope": 0.2}, "Nope: no backend here has that operation"},
	} {
		err := chaos.CheckKeys(tc.ops, aws)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckKeys(%v) = %v, want %q", tc.ops, err, tc.want)
		}
	}
}

// TestReport: counts per operation, merged across processes through a
// file, and the table lfsm dev prints.
func TestReport(t *testing.T) {
	inj := chaos.New(chaos.Config{Ops: map[string]float64{"dynamodb.Acquire": 1}})
	d := inj.For("dynamodb")
	for range 2 {
		_ = d.Fail(chaos.OpAcquire)
	}
	_ = inj.For("sqs").Fail(chaos.OpReceive)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := inj.Report().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := chaos.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if missing, err := chaos.ReadFile(filepath.Join(t.TempDir(), "none.json")); err != nil || len(missing.Ops) != 0 {
		t.Errorf("missing file = %+v, %v; want an empty report", missing, err)
	}
	got := back.Merge(inj.Report())
	want := chaos.Report{Calls: 6, Failures: 4, Ops: []chaos.OpStats{{Op: "dynamodb.Acquire", Calls: 4, Failures: 4}, {Op: "sqs.Receive", Calls: 2}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("merged report (-want +got):\n%s", d)
	}
	var buf bytes.Buffer
	got.WriteText(&buf)
	wantText := "chaos: 4 of 6 calls failed\n" +
		"  OPERATION           CALLS   FAILED\n" +
		"  dynamodb.Acquire        4        4\n" +
		"  sqs.Receive             2        0\n"
	if d := cmp.Diff(wantText, buf.String()); d != "" {
		t.Errorf("text (-want +got):\n%s", d)
	}
}

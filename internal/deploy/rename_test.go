package deploy

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// shopV1 and shopV2: v2 renames the state Packing to Boxing and the event
// go to proceed.
const (
	shopV1 = `machines:
- name: Order
  max_retries: 2
  states:
  - name: New
    initial: true
    do_action: x.New
    transitions:
    - {target: Packing, event: go}
  - name: Packing
    do_action: x.Pack
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`
	shopV2 = `machines:
- name: Order
  max_retries: 2
  states:
  - name: New
    initial: true
    do_action: x.New
    transitions:
    - {target: Boxing, event: proceed}
  - name: Boxing
    do_action: x.Pack
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`
	shopRenames = `from: fsm.v1.yaml
machines:
  Order:
    states:
      Packing: Boxing
    events:
      go: proceed
`
)

// shopActions: New's do returns next; Pack's do follows the context's
// mode on v1 ("wait" parks until packed is sent, "fail" fails: a retry),
// and packs everything on v2.
func shopActions(next string, v2 bool) engine.Resolver {
	acts := map[string]fsm.ActionFunc{
		"x.New": func(context.Context, *fsm.Context) (string, error) { return next, nil },
		"x.Pack": func(_ context.Context, c *fsm.Context) (string, error) {
			mode, _ := c.String("mode")
			switch {
			case mode == "wait" && c.Event() != "packed":
				return "", nil
			case !v2 && mode == "fail":
				return "", errors.New("scanner offline")
			}
			return "packed", nil
		},
	}
	return func(ref string) (fsm.Action, error) { return acts[ref], nil }
}

// shopFiles writes both specs and the rename map into a directory and
// loads them.
func shopFiles(t *testing.T, renames string) (v1, v2 *spec.Spec, renamesPath string) {
	t.Helper()
	dir := t.TempDir()
	for name, src := range map[string]string{"fsm.v1.yaml": shopV1, "fsm.yaml": shopV2, "renames.yaml": renames} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func(name string) *spec.Spec {
		s, d := spec.Load(filepath.Join(dir, name))
		if d.HasErrors() {
			t.Fatal(d.Err())
		}
		return s
	}
	return load("fsm.v1.yaml"), load("fsm.yaml"), filepath.Join(dir, "renames.yaml")
}

func loadShopRenames(t *testing.T, v2 *spec.Spec, path string) []engine.Rename {
	t.Helper()
	r, d := spec.LoadRenames(path, v2)
	if d.HasErrors() {
		t.Fatal(d.Err())
	}
	return EngineRenames(r, v2)
}

// tapQueue is the dispatch of the test: every message goes to a
// DynamoDB-stream dispatch table (as the deployed dispatch would hold it,
// for the check to read) and to a list the test takes messages from in the
// order it chooses (standing in for the function's event source).
type tapQueue struct {
	table engine.Queue
	mu    sync.Mutex
	msgs  []engine.OutMessage
}

func (q *tapQueue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if q.table != nil {
		if _, err := q.table.Send(ctx, engine.OutMessage{Key: m.Key, Payload: m.Payload}); err != nil {
			return "", err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	return "", nil
}

// take removes the first message of id (any when id is empty).
func (q *tapQueue) take(id string) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, m := range q.msgs {
		if id == "" || m.Key == id {
			q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
			return m.Payload, true
		}
	}
	return nil, false
}

// TestRenameAcrossDeploy is the whole story on DynamoDB Local: executions
// of v1 run on the DynamoDB store (a queued message naming the renamed
// event, one naming the renamed state, one parked in it, a retry in the
// retry table); the check of v2 refuses them, naming the store's and the
// queued ones (a message of another producer in the dispatch table, whose
// execution the store does not have); with the rename map it lets them
// through; and v2's engine with the map's renames (what the deployed
// function reads from LFSM_RENAMES) runs every one to the end, each step
// once.
func TestRenameAcrossDeploy(t *testing.T) {
	ctx := t.Context()
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	names := map[string]string{"store": awstest.Name("rename-store"), "retry": awstest.Name("rename-retry"), "dispatch": awstest.Name("rename-dispatch")}
	t.Cleanup(func() {
		for _, n := range names {
			_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(n)})
		}
	})
	if err := dynamodb.CreateTable(ctx, c, names["store"]); err != nil {
		t.Fatal(err)
	}
	if err := dynamodb.CreateRetryTable(ctx, c, names["retry"]); err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.CreateStreamTable(ctx, c, names["dispatch"]); err != nil {
		t.Fatal(err)
	}
	table, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: names["dispatch"]})
	if err != nil {
		t.Fatal(err)
	}
	q := &tapQueue{table: table}
	retries, err := dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: c, Table: names["retry"], Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	store, err := dynamodb.New(dynamodb.Options{Client: c, Table: names["store"], Queue: q, Retrier: retries})
	if err != nil {
		t.Fatal(err)
	}
	v1, v2, renamesPath := shopFiles(t, shopRenames)
	newEngine := func(s *spec.Spec, resolve engine.Resolver, rs []engine.Rename) *engine.Engine {
		t.Helper()
		m, err := engine.Compile(s.Machines[0], resolve)
		if err != nil {
			t.Fatal(err)
		}
		e, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: store, Queue: store, Retrier: store,
			Renames: rs, Rand: rand.New(rand.NewPCG(1, 2))})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	handle := func(e *engine.Engine, id string) engine.Result {
		t.Helper()
		p, ok := q.take(id)
		if !ok {
			t.Fatalf("no message of %s", id)
		}
		res, err := e.Handle(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	e1 := newEngine(v1, shopActions("go", false), nil)
	ids := map[string]string{}
	for _, mode := range []string{"parked", "packing", "new", "retry", "done"} {
		ctxMode := map[string]string{"parked": "wait", "retry": "fail"}[mode]
		id, err := e1.Start(ctx, engine.StartRequest{Machine: "Order", Context: map[string]any{"mode": ctxMode}})
		if err != nil {
			t.Fatal(err)
		}
		ids[mode] = id
		handle(e1, id) // start: New's do returns go
		switch mode {
		case "parked", "packing", "retry":
			handle(e1, id) // into Packing: parks / queues packed / fails, a retry in the table
		case "done":
			handle(e1, id)
			handle(e1, id) // Shipped: done; its messages stay in the dispatch table
		}
	}
	if x, _ := store.Get(ctx, ids["retry"]); x.Status != engine.StatusRunning || !strings.Contains(x.LastError, "scanner offline") {
		t.Fatalf("retry on v1: %+v", x)
	}
	// A message of another producer, for an execution the store has not
	// seen, sits in the dispatch table in Packing.
	other := `{"version":"0.1","system_context":{"machine_name":"Order","current_state":"Packing","current_event":"packed","correlation_id":"from-python","steps":2,"retries":0},"user_context":{}}`
	if _, err := table.Send(ctx, engine.OutMessage{Key: "from-python", Payload: []byte(other)}); err != nil {
		t.Fatal(err)
	}
	queued := []Messages{
		dynamodb.TableMessages{Client: c, Table: names["retry"], Kind: "retry table"},
		dynamodb.TableMessages{Client: c, Table: names["dispatch"], Kind: "dispatch table"},
	}

	// Without a map: refused, with each group named.
	rep, err := Check(ctx, CheckInput{Store: store, Spec: v2, Queued: queued})
	if err != nil {
		t.Fatal(err)
	}
	type group struct{ State, Event, Where, Reason string }
	var got []group
	count := 0
	for _, g := range rep.Stranded {
		got = append(got, group{g.State, g.Event, strings.Fields(g.Where)[0], g.Reason})
		count += g.Count
	}
	want := []group{
		{"New", "go", "store", "event has no transition from this state in the new spec"},
		{"Packing", "", "dispatch", "state is not in the new spec"},
		{"Packing", "", "store", "state is not in the new spec"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stranded without a map (-want +got):\n%s", d)
	}
	if count != 5 { // new, retry (its retry item is its checkpoint), packing, parked, from-python
		t.Errorf("%d stranded, want 5: %+v", count, rep.Stranded)
	}
	if rep.Executions != 4 || rep.Messages < 8 {
		t.Errorf("read %d executions and %d messages", rep.Executions, rep.Messages)
	}

	// With the map: the store's executions go through; the other
	// producer's message carries no spec hash, so the map (which renames
	// v1's) does not apply to it, and the check says so.
	rs := loadShopRenames(t, v2, renamesPath)
	rep, err = Check(ctx, CheckInput{Store: store, Spec: v2, Renames: rs, Queued: queued})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Stranded) != 1 || rep.Stranded[0].IDs[0] != "from-python" || !strings.Contains(rep.Stranded[0].Reason, "rename map does not apply") {
		t.Errorf("stranded with the map: %+v", rep.Stranded)
	}
	renamed := map[string]int{}
	for _, g := range rep.Renamed {
		renamed[g.State+"/"+g.Event+" -> "+g.To+"/"+g.ToEvent] += g.Count
	}
	if d := cmp.Diff(map[string]int{"New/go -> New/proceed": 2, "Packing/ -> Boxing/": 1, "Packing/packed -> Boxing/packed": 1}, renamed); d != "" {
		t.Errorf("renamed (-want +got):\n%s", d)
	}
	if _, ok := q.take("from-python"); ok {
		t.Fatal("the other producer's message went through the tap")
	}
	// Executions in the dispatch table of an execution that finished are
	// not counted: "done" is in neither list.
	for _, g := range append(rep.Stranded, Stranded{}) {
		for _, id := range g.IDs {
			if id == ids["done"] {
				t.Errorf("the finished execution was counted: %+v", g)
			}
		}
	}

	// The deploy: v2's engine with the renames takes every message that
	// is left, the retries once due, and the parked one's event.
	e2 := newEngine(v2, shopActions("proceed", true), rs)
	if err := e2.Send(ctx, ids["parked"], "packed"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if p, ok := q.take(""); ok {
			if _, err := e2.Handle(ctx, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if pending, err := retries.Pending(ctx); err != nil {
			t.Fatal(err)
		} else if !pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retries still pending")
		}
		if _, err := retries.Poll(ctx, time.Now().Add(engine.MaxRetryDelay)); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{"parked", "packing", "new", "retry", "done"} {
		id := ids[mode]
		x, err := store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Status != engine.StatusDone || x.State != "Shipped" {
			t.Errorf("%s: %s in %s (%s), want done in Shipped", mode, x.Status, x.State, x.LastError)
		}
		hist, err := store.History(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var steps []int
		var path []string
		for _, h := range hist {
			if h.Outcome != engine.OutcomeRetry {
				steps = append(steps, h.Step)
			}
			path = append(path, h.From+"/"+h.Event)
		}
		if d := cmp.Diff([]int{0, 1, 2}, steps); d != "" {
			t.Errorf("%s: steps committed (-want +got):\n%s\npath %v", mode, d, path)
		}
		if mode != "done" && !strings.Contains(strings.Join(path, " "), "Boxing/packed") && mode != "parked" {
			t.Errorf("%s: path %v never ran from Boxing", mode, path)
		}
	}
}

// TestCheckRenames on the memory store: a map that renames the state but
// not the event leaves the execution about to dispatch go stranded, and
// the refusal says it was renamed; an execution of another version of the
// machine is not covered, and the refusal names its hash.
func TestCheckRenames(t *testing.T) {
	ctx := t.Context()
	v1, v2, path := shopFiles(t, `from: fsm.v1.yaml
machines:
  Order:
    states: {Packing: Boxing}
`)
	b := memory.New(memory.Options{})
	m1, err := engine.Compile(v1.Machines[0], shopActions("go", false))
	if err != nil {
		t.Fatal(err)
	}
	e1, err := engine.New(engine.Options{Machines: []*engine.Machine{m1}, Store: b, Queue: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := e1.Start(ctx, engine.StartRequest{Machine: "Order", CorrelationID: id, Context: map[string]any{"mode": "wait"}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // a: start, go (parks in Packing); b: start
		ds, err := b.Receive(ctx, 1, time.Minute, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("receive: %v %v", ds, err)
		}
		if _, err := e1.HandleDelivery(ctx, b, ds[0]); err != nil {
			t.Fatal(err)
		}
	}
	// c started on a version of Order with another hash.
	c := `{"version":"0.1","system_context":{"machine_name":"Order","current_state":"Packing","current_event":"","correlation_id":"c","steps":2,"retries":0,"spec_hash":"00000000000000aa"},"user_context":{}}`
	if err := b.Create(ctx, engine.Execution{CorrelationID: "c", Machine: "Order", Status: engine.StatusWaiting, State: "Packing", DoneStep: 1, Checkpoint: []byte(c)}); err != nil {
		t.Fatal(err)
	}
	rs := loadShopRenames(t, v2, path)
	rep, err := Check(ctx, CheckInput{Store: b, Spec: v2, Renames: rs})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range rep.Stranded {
		got = append(got, g.State+"/"+g.Event+": "+g.Reason+": "+strings.Join(g.IDs, ","))
	}
	want := []string{
		"New/go: event has no transition from this state in the new spec (after the rename map: state New, event go): b",
		"Packing/: state is not in the new spec; the rename map does not apply: it renames spec " + v1.Machines[0].Hash() + ", this one started on 00000000000000aa: c",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("stranded (-want +got):\n%s", d)
	}
	if len(rep.Renamed) != 1 || rep.Renamed[0].IDs[0] != "a" || rep.Renamed[0].To != "Boxing" {
		t.Errorf("renamed: %+v", rep.Renamed)
	}
	msg := (&InFlightError{Stack: "shop", Stranded: rep.Stranded, WithRenames: true}).Error()
	for _, w := range []string{"2 live execution(s) would be stranded by the new spec even with the rename map", "--rename FILE", "--force"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
}

// The rename map in docs/deploy.md is the one this package's tests use, and
// it loads against the specs shown beside it.
func TestDocsRenameExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{}
	for _, part := range strings.Split(string(doc), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(part, "```")
		first, rest, _ := strings.Cut(body, "\n")
		if name, ok := strings.CutPrefix(first, "# "); ok {
			blocks[name] = rest
		}
	}
	for name, want := range map[string]string{"fsm.v1.yaml": shopV1, "fsm.yaml": shopV2, "renames.yaml": shopRenames} {
		if got := blocks[name]; got != want {
			t.Errorf("docs/deploy.md's %s block differs from the tested one:\n%s", name, cmp.Diff(want, got))
		}
	}
}

func TestSetRenames(t *testing.T) {
	_, v2, path := shopFiles(t, shopRenames)
	rs := loadShopRenames(t, v2, path)
	m, err := Build(v2, Settings{Project: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetRenames(rs); err != nil {
		t.Fatal(err)
	}
	env := m.Template().Resources[IDFunction].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
	got, _ := env[EnvRenames].(string)
	back, err := engine.DecodeRenames([]byte(got))
	if err != nil || len(back) != 1 || back[0].States["Packing"] != "Boxing" || back[0].From[0] != rs[0].From[0] {
		t.Fatalf("the function's %s = %q (%v)", EnvRenames, got, err)
	}
	big := []engine.Rename{{Machine: "Order", From: []string{"x"}, States: map[string]string{}}}
	for i := range 300 {
		big[0].States[strings.Repeat("s", 10)+string(rune('a'+i%26))+strings.Repeat("t", i%7)+string(rune('A'+i/26))] = "Boxing"
	}
	if err := m.SetRenames(big); err == nil || !strings.Contains(err.Error(), "4 KB") {
		t.Errorf("a map too large for the environment: %v", err)
	}
}

package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

func loadExample(t *testing.T) *spec.Spec {
	t.Helper()
	s, diags := spec.Load("testdata/example.yaml")
	for _, d := range diags {
		if d.Severity == spec.SeverityError {
			t.Fatalf("load: %+v", d)
		}
	}
	return s
}

// seedActions are the seed's actions: Action2 stores mff (and returns the
// event given in context["first"], default done; it fails when there is
// "noarg"), Action5 needs it.
func seedActions(ref string) (fsm.Action, error) {
	name := ref[strings.LastIndexByte(ref, '.')+1:]
	switch name {
	case "Action2":
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			if c.Values()["noarg"] != nil {
				return "", fsm.Permanent(errors.New("arg1 missing"))
			}
			if c.Values()["nomff"] == nil {
				c.Set("mff", "fancy")
			}
			if ev, ok := c.String("first"); ok {
				return ev, nil
			}
			return "done", nil
		}), nil
	case "Action5":
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			if _, ok := c.String("mff"); !ok {
				return "", fsm.Permanent(errors.New("mff missing"))
			}
			return "done", nil
		}), nil
	case "Action8":
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) { return "done", nil }), nil
	}
	return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) { return "", nil }), nil
}

var update = flag.Bool("update", false, "rewrite golden files")

var durations = regexp.MustCompile(`\d+\.\d+m?s`)

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		context map[string]any
		status  engine.Status
	}{
		{"done-done", map[string]any{"arg1": 1.0}, engine.StatusDone},
		{"skip", map[string]any{"first": "skip"}, engine.StatusDone},
		{"fail", map[string]any{"nomff": true}, engine.StatusFailed},
		// λ1 fails: the summary names the λ and its target, not pseudo_init.
		{"fail-start", map[string]any{"noarg": true}, engine.StatusFailed},
		{"wait", map[string]any{"first": ""}, engine.StatusWaiting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			res, err := Run(t.Context(), RunOptions{
				Spec: loadExample(t), Resolve: seedActions, Backend: memory.New(memory.Options{}),
				Machine: "Example", Context: tt.context, CorrelationID: "c0ffee", Out: &out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.status {
				t.Errorf("status = %s, want %s", res.Status, tt.status)
			}
			got := durations.ReplaceAllString(out.String(), "Xms")
			got = strings.ReplaceAll(got, "c0ffee", "ID")
			golden := filepath.Join("testdata", "run-"+tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), got); d != "" {
				t.Errorf("trace (-want +got):\n%s", d)
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	var out bytes.Buffer
	res, err := Run(t.Context(), RunOptions{
		Spec: loadExample(t), Resolve: seedActions, Backend: memory.New(memory.Options{}),
		Machine: "Example", Context: map[string]any{"arg1": 1}, Out: &out, JSON: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		FormatVersion string         `json:"format_version"`
		Status        string         `json:"status"`
		CorrelationID string         `json:"correlation_id"`
		Context       map[string]any `json:"context"`
		Lambdas       []struct {
			Number  int      `json:"number"`
			Actions []string `json:"actions"`
		} `json:"lambdas"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("output is not one JSON document: %v\n%s", err, out.String())
	}
	var nums []int
	for _, l := range doc.Lambdas {
		nums = append(nums, l.Number)
	}
	if doc.FormatVersion != "1" || doc.Status != "done" || doc.CorrelationID != res.CorrelationID ||
		fmt.Sprint(nums) != "[1 2 4 5]" || doc.Context["mff"] != "fancy" {
		t.Errorf("unexpected document:\n%s", out.String())
	}
}

func TestRunSimulate(t *testing.T) {
	res, err := Run(t.Context(), RunOptions{
		Spec: loadExample(t), Simulate: &engine.SimulateOptions{Events: []string{"skip"}},
		Backend: memory.New(memory.Options{}), Machine: "Example",
	})
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, l := range res.Lambdas {
		nums = append(nums, l.Number)
	}
	if res.Status != engine.StatusDone || fmt.Sprint(nums) != "[1 3 5]" {
		t.Errorf("status %s, λs %v; want done, [1 3 5]", res.Status, nums)
	}
}

func TestRunUnknownMachine(t *testing.T) {
	_, err := Run(t.Context(), RunOptions{Spec: loadExample(t), Resolve: seedActions, Backend: memory.New(memory.Options{}), Machine: "Nope"})
	var u *spec.UnknownMachineError
	if !errors.As(err, &u) || u.Name != "Nope" {
		t.Errorf("err = %v, want a *spec.UnknownMachineError for Nope", err)
	}
}

func TestRunOnSQLite(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sub", "lfsm.db")
	res, err := Run(t.Context(), RunOptions{
		Spec: loadExample(t), Resolve: seedActions, DBPath: db,
		Machine: "Example", Context: map[string]any{"arg1": 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, l := range res.Lambdas {
		nums = append(nums, l.Number)
	}
	if res.Status != engine.StatusDone || fmt.Sprint(nums) != "[1 2 4 5]" {
		t.Errorf("status %s, λs %v; want done, [1 2 4 5]", res.Status, nums)
	}
}

func TestWorker(t *testing.T) {
	b := memory.New(memory.Options{})
	s := loadExample(t)
	finalExit := make(chan struct{}, 1)
	resolve := func(ref string) (fsm.Action, error) {
		if strings.HasSuffix(ref, ".Action9") {
			return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
				finalExit <- struct{}{}
				return "", nil
			}), nil
		}
		return seedActions(ref)
	}
	e, err := newEngine(s, resolve, nil, b, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.Start(t.Context(), engine.StartRequest{Machine: "Example", Context: map[string]any{"arg1": 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Worker(ctx, WorkerOptions{Spec: s, Resolve: resolve, Backend: b, Workers: 2}) }()
	<-finalExit
	cancel() // the step in flight (λ5) still commits
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ex, err := b.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Status != engine.StatusDone {
		t.Errorf("status %s, want done", ex.Status)
	}
}

// TestRunEndWithoutInvocation runs a machine whose final state has no exit
// action: the run shows the end λ the diagram and listing number, marked as
// running no invocation, and names the transition action as they do.
func TestRunEndWithoutInvocation(t *testing.T) {
	ref := func(r string) *spec.ActionRef { return &spec.ActionRef{Ref: r} }
	s := &spec.Spec{Machines: []*spec.Machine{{Name: "M", States: []*spec.State{
		{Name: "A", Initial: true, DoAction: ref("x.Go"), Transitions: []*spec.Transition{
			{Target: "B", Event: "go", Action: ref("x.Move")},
		}},
		{Name: "B", Final: true, EntryAction: ref("x.Arrive")},
	}}}}
	resolve := func(ref string) (fsm.Action, error) {
		return fsm.ActionFunc(func(ctx context.Context, c *fsm.Context) (string, error) {
			if ref == "x.Go" {
				return "go", nil
			}
			return "", nil
		}), nil
	}
	var out bytes.Buffer
	res, err := Run(t.Context(), RunOptions{
		Spec: s, Resolve: resolve, Backend: memory.New(memory.Options{}), Machine: "M", CorrelationID: "id", Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != engine.StatusDone || len(res.Lambdas) != 2 {
		t.Fatalf("status %s after %d λ, want done after 2:\n%s", res.Status, len(res.Lambdas), &out)
	}
	got := durations.ReplaceAllString(out.String(), "Xms")
	want := `λ1   pseudo_init -> A    A.do_action                   Xms
λ2   A -(go)-> B         A.go.action, B.entry_action   Xms
λ3   B -> pseudo_final   (no invocation)
M id: done in Xms (2 λ)
`
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("run output (-want +got):\n%s", d)
	}
}

// TestRunOwnExecutionFirst: lfsm run on a store with a backlog runs its own
// execution promptly: it takes its own messages before anyone else's. Before,
// it ran the queue in order (1M queued: 101,910 foreign steps in 20 s, none
// of its own).
func TestRunOwnExecutionFirst(t *testing.T) {
	s := loadExample(t)
	db := filepath.Join(t.TempDir(), "lfsm.db")
	b, closeB, err := openSQLite(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer closeB()
	e, err := newEngine(s, seedActions, nil, b, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	const backlog = 500
	for range backlog {
		if _, err := e.Start(t.Context(), engine.StartRequest{Machine: "Example", Context: map[string]any{"arg1": 1.0}}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Run(t.Context(), RunOptions{Spec: s, Resolve: seedActions, Backend: b, Machine: "Example", Context: map[string]any{"arg1": 1.0}})
	if err != nil || res.Status != engine.StatusDone {
		t.Fatalf("Run = %s, %v; want done", res.Status, err)
	}
	rows, err := b.(engine.Tailer).HistorySince(t.Context(), 0, engine.HistoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := 0
	for _, r := range rows {
		if r.CorrelationID != res.CorrelationID {
			foreign++
		}
	}
	// Between two of its own steps Run takes at most one batch (10) of the
	// others' messages; in order, it would have run the whole backlog first.
	if limit := 10 * len(res.Lambdas); foreign > limit {
		t.Errorf("%d foreign steps ran before Run's own %d finished, want at most %d", foreign, len(res.Lambdas), limit)
	}
}

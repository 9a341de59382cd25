package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTailFollow runs an execution while tail --follow --output json watches
// the store: every λ arrives as one JSON object per line, and Ctrl-C (the
// context's cancellation) ends it with context.Canceled.
func TestTailFollow(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lfsm.db")
	seed := filepath.Join("..", "..", "examples", "seed", "fsm.yaml")
	s, diags := spec.Load(seed)
	if s == nil || diags.HasErrors() {
		t.Fatalf("load seed: %v", diags)
	}
	// The store must exist before tail opens it.
	if _, err := local.Run(t.Context(), local.RunOptions{Spec: s, DBPath: db, Machine: "Example",
		Simulate: &engine.SimulateOptions{Events: []string{"skip"}}}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	ios := &IOStreams{In: strings.NewReader(""), Out: out, ErrOut: &syncBuffer{}}
	done := make(chan error, 1)
	go func() {
		done <- runTail(ctx, &TailOptions{IO: ios, File: seed, DB: db, Machine: "Example", Follow: true,
			Output: outputJSON, Poll: 10 * time.Millisecond})
	}()
	res, err := local.Run(t.Context(), local.RunOptions{Spec: s, DBPath: db, Machine: "Example",
		Simulate: &engine.SimulateOptions{Events: []string{"done", "done"}}})
	if err != nil {
		t.Fatal(err)
	}
	// 3 λ of the first run, 4 of the second.
	waitFor(t, 30*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 7 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("tail --follow ended with %v, want context.Canceled", err)
	}
	var last int64
	var mine []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var row engine.HistoryRow
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		if row.ID <= last {
			t.Errorf("ids not increasing: %d after %d", row.ID, last)
		}
		last = row.ID
		if row.CorrelationID == res.CorrelationID {
			mine = append(mine, row.From+"-"+row.Event+"->"+row.To)
		}
	}
	// The end λ leaves ThirdState for pseudo_final; it does not re-enter it.
	want := "pseudo_init-pseudo_init->FirstState FirstState-done->SecondState SecondState-done->ThirdState ThirdState-pseudo_final->pseudo_final"
	if got := strings.Join(mine, " "); got != want {
		t.Errorf("followed entries %s, want %s", got, want)
	}
}

// TestTailFollowWaitsForStore: in a project with no runs yet, tail --follow
// says so and waits; the first execution's λ then arrive as they are written.
func TestTailFollowWaitsForStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), ".lfsm", "lfsm.db")
	seed := filepath.Join("..", "..", "examples", "seed", "fsm.yaml")
	s, diags := spec.Load(seed)
	if s == nil || diags.HasErrors() {
		t.Fatalf("load seed: %v", diags)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	ios := &IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut}
	done := make(chan error, 1)
	go func() {
		done <- runTail(ctx, &TailOptions{IO: ios, File: seed, DB: db, Follow: true, Poll: 10 * time.Millisecond})
	}()
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(errOut.String(), "no executions yet") })
	select {
	case err := <-done:
		t.Fatalf("tail --follow without a store returned %v; want it to wait", err)
	default:
	}
	if _, err := local.Run(t.Context(), local.RunOptions{Spec: s, DBPath: db, Machine: "Example",
		Simulate: &engine.SimulateOptions{Events: []string{"skip"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("tail --follow ended with %v, want context.Canceled", err)
	}
	if !strings.Contains(out.String(), "λ3") {
		t.Errorf("followed lines lack λ3 of the skip path:\n%s", out.String())
	}
}

package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/engine"
)

// These tests interleave two consumers of one execution call by call, at
// the points a crash or a slow consumer can split a step on SQS or SNS,
// where the next message can be delivered at once: the store's hook stops a
// commit between its writes while the other consumer acts. The queue is the
// memory backend (a real queue of this project), so what was sent is known
// exactly.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const lease = time.Minute

func acq(id string, step, retries int, now time.Time) engine.AcquireRequest {
	return engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: step, Retries: retries, Now: now, Expires: now.Add(lease)}
}

// step builds the commit of step with outcome next and its outgoing message.
func step(id string, step, retries int, fence int64, now time.Time) (engine.Commit, *engine.OutMessage) {
	next := fmt.Appendf(nil, `{"step":%d}`, step+1)
	return engine.Commit{
		CorrelationID: id, Machine: "M", Step: step, Retries: retries, Fence: fence,
		Outcome: engine.OutcomeNext, State: fmt.Sprintf("S%d", step+1), Event: "go", Checkpoint: next,
		History: engine.HistoryEntry{Step: step, Retries: retries, Fence: fence, From: fmt.Sprintf("S%d", step), Event: "go",
			To: fmt.Sprintf("S%d", step+1), Outcome: engine.OutcomeNext, Started: now},
		Now: now,
	}, &engine.OutMessage{Key: id, Payload: next}
}

// queued drains the memory queue and returns the payloads sent so far.
func queued(t *testing.T, q *memory.Backend) []string {
	t.Helper()
	ds, err := q.Receive(t.Context(), 100, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, d := range ds {
		out = append(out, string(d.Payload))
		if err := q.Ack(t.Context(), d.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func steps(t *testing.T, s *dynamodb.Store, id string) []string {
	t.Helper()
	h, err := s.History(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range h {
		out = append(out, fmt.Sprintf("%d/%d@%d", e.Step, e.Retries, e.Fence))
	}
	return out
}

// pausing returns a hook that, at point, signals paused and waits for resume.
type pausing struct {
	point          string
	paused, resume chan struct{}
}

func newPausing(point string) *pausing {
	return &pausing{point: point, paused: make(chan struct{}), resume: make(chan struct{})}
}

func (p *pausing) hook(point string, c engine.Commit) {
	if point == p.point && c.Fence == 1 {
		close(p.paused)
		<-p.resume
	}
}

// dying is the memory queue seen from a process that is dying: once its
// context is cancelled (the crash), nothing it sends arrives.
type dying struct{ *memory.Backend }

func (d dying) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return d.Backend.Send(ctx, m)
}

func setup(t *testing.T, hook func(string, engine.Commit)) (*dynamodb.Store, *memory.Backend) {
	return setupCached(t, hook, nil)
}

// setupCached is setup on the composite store when lc is not nil.
func setupCached(t *testing.T, hook func(string, engine.Commit), lc leasecache.Cache) (*dynamodb.Store, *memory.Backend) {
	t.Helper()
	q := memory.New(memory.Options{})
	c, table := newTable(t, nil)
	s := newStore(t, dynamodb.WithHook(dynamodb.Options{Client: c, Table: table, Queue: dying{q}, Cache: lc}, hook))
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	return s, q
}

// A consumer still committing step 0 has sent nothing yet, so no consumer
// can receive step 1 and take step 0's lease over (the general path's
// hazard: send, then commit). A duplicate of step 0 is refused meanwhile.
func TestSuccessorOnlyAfterCommit(t *testing.T) {
	p := newPausing("after-step-item")
	s, q := setup(t, p.hook)
	l, err := s.Acquire(t.Context(), acq("x", 0, 0, t0))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		c, out := step("x", 0, 0, l.Fence, t0)
		_, err := s.CommitStep(context.WithoutCancel(t.Context()), c, out, "")
		done <- err
	}()
	<-p.paused
	if got := queued(t, q); len(got) != 0 {
		t.Errorf("while step 0 commits, the queue holds %q: its successor is visible before the commit", got)
	}
	if _, err := s.Acquire(t.Context(), acq("x", 0, 0, t0.Add(time.Second))); !errors.Is(err, engine.ErrLeaseHeld) {
		t.Errorf("duplicate of step 0 during its commit: Acquire = %v, want ErrLeaseHeld", err)
	}
	close(p.resume)
	if err := <-done; err != nil {
		t.Fatalf("CommitStep: %v", err)
	}
	if diff := cmp.Diff([]string{`{"step":1}`}, queued(t, q)); diff != "" {
		t.Errorf("sent after the commit (-want +got):\n%s", diff)
	}
	l, err = s.Acquire(t.Context(), acq("x", 1, 0, t0.Add(2*time.Second)))
	if err != nil {
		t.Fatalf("Acquire of step 1: %v", err)
	}
	c, out := step("x", 1, 0, l.Fence, t0.Add(2*time.Second))
	if _, err := s.CommitStep(t.Context(), c, out, ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"0/0@1", "1/0@2"}, steps(t, s, "x")); diff != "" {
		t.Errorf("history (-want +got): every step exactly once\n%s", diff)
	}
}

// A consumer whose lease expires while it commits loses to the one that
// took the step over: the loser's step item is written but on no chain,
// its execution update is refused, and it sends nothing.
func TestLeaseLostMidCommit(t *testing.T) {
	p := newPausing("after-step-item")
	s, q := setup(t, p.hook)
	l, err := s.Acquire(t.Context(), acq("x", 0, 0, t0))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		c, out := step("x", 0, 0, l.Fence, t0)
		_, err := s.CommitStep(context.WithoutCancel(t.Context()), c, out, "")
		done <- err
	}()
	<-p.paused
	later := t0.Add(lease)
	l2, err := s.Acquire(t.Context(), acq("x", 0, 0, later))
	if err != nil {
		t.Fatalf("takeover of the expired lease: %v", err)
	}
	c, out := step("x", 0, 0, l2.Fence, later)
	if _, err := s.CommitStep(t.Context(), c, out, ""); err != nil {
		t.Fatalf("winner's CommitStep: %v", err)
	}
	close(p.resume)
	if err := <-done; !errors.Is(err, engine.ErrFenceLost) {
		t.Fatalf("loser's CommitStep = %v, want ErrFenceLost", err)
	}
	if diff := cmp.Diff([]string{`{"step":1}`}, queued(t, q)); diff != "" {
		t.Errorf("sent (-want +got): only the winner's successor\n%s", diff)
	}
	if diff := cmp.Diff([]string{"0/0@2"}, steps(t, s, "x")); diff != "" {
		t.Errorf("history (-want +got): the winner's entry only\n%s", diff)
	}
}

// A crash between any two calls of a step: before the commit (after the
// step item), the step runs again once the lease expires; after the commit
// but before the send, the redelivered message finds the step done and the
// store sends the outbox. Either way every step is in the history once.
func TestCrashBetweenCalls(t *testing.T) {
	crashBetweenCalls(t, func(*testing.T) leasecache.Cache { return nil })
}

// TestCrashBetweenCallsCached is TestCrashBetweenCalls on the composite
// store: the redelivery after a crash between commit and send is refused by
// the cache, which sends the outbox again as the table would.
func TestCrashBetweenCallsCached(t *testing.T) {
	for _, c := range caches {
		t.Run(c.name, func(t *testing.T) { crashBetweenCalls(t, c.new) })
	}
}

func crashBetweenCalls(t *testing.T, newCache func(*testing.T) leasecache.Cache) {
	for _, point := range []string{"after-step-item", "after-commit"} {
		t.Run(point, func(t *testing.T) {
			ctx, crash := context.WithCancel(t.Context())
			s, q := setupCached(t, func(p string, c engine.Commit) {
				if p == point && c.Fence == 1 {
					crash()
				}
			}, newCache(t))
			l, err := s.Acquire(t.Context(), acq("x", 0, 0, t0))
			if err != nil {
				t.Fatal(err)
			}
			c, out := step("x", 0, 0, l.Fence, t0)
			if _, err := s.CommitStep(ctx, c, out, ""); err == nil {
				t.Fatalf("CommitStep with a crash %s succeeded", point)
			}
			if got := queued(t, q); len(got) != 0 {
				t.Fatalf("after a crash %s the queue holds %q", point, got)
			}
			// The delivery of step 0 comes back after its visibility timeout.
			later := t0.Add(lease)
			l2, err := s.Acquire(t.Context(), acq("x", 0, 0, later))
			switch point {
			case "after-step-item":
				if err != nil {
					t.Fatalf("redelivery after a crash before the commit: %v", err)
				}
				c, out := step("x", 0, 0, l2.Fence, later)
				if _, err := s.CommitStep(t.Context(), c, out, ""); err != nil {
					t.Fatal(err)
				}
			case "after-commit":
				if !errors.Is(err, engine.ErrDuplicate) {
					t.Fatalf("redelivery after a crash after the commit: %v, want ErrDuplicate", err)
				}
			}
			if diff := cmp.Diff([]string{`{"step":1}`}, queued(t, q)); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
			l3, err := s.Acquire(t.Context(), acq("x", 1, 0, later))
			if err != nil {
				t.Fatalf("Acquire of step 1: %v", err)
			}
			c, out = step("x", 1, 0, l3.Fence, later)
			if _, err := s.CommitStep(t.Context(), c, out, ""); err != nil {
				t.Fatal(err)
			}
			h := steps(t, s, "x")
			if len(h) != 2 || h[0][:4] != "0/0@" || h[1][:4] != "1/0@" {
				t.Errorf("history %q: want steps 0 and 1 once each", h)
			}
			// A late duplicate of step 0 now sends nothing: step 1 was leased.
			if _, err := s.Acquire(t.Context(), acq("x", 0, 0, later)); !errors.Is(err, engine.ErrDuplicate) {
				t.Errorf("late duplicate of step 0: %v, want ErrDuplicate", err)
			}
			if got := queued(t, q); len(got) != 1 || got[0] != `{"step":2}` {
				t.Errorf("after step 1 and a late duplicate of step 0, sent %q, want step 2's message only", got)
			}
		})
	}
}

// With TransactCommit, the step item and the execution's update are one
// transaction (a transition is Acquire, the transaction and the send), and
// a crash between the commit and the send is repaired as without it: the
// redelivery finds the step done and sends the outbox again.
func TestTransactCommit(t *testing.T) {
	m := &awsconfig.Meter{}
	q := memory.New(memory.Options{})
	c, table := newTable(t, m)
	ctx, crash := context.WithCancel(t.Context())
	s := newStore(t, dynamodb.WithHook(dynamodb.Options{Client: c, Table: table, Queue: dying{q}, TransactCommit: true}, func(p string, c engine.Commit) {
		if p == "after-commit" && c.Step == 0 {
			crash()
		}
	}))
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(t.Context(), acq("x", 0, 0, t0))
	if err != nil {
		t.Fatal(err)
	}
	m.Reset()
	cm, out := step("x", 0, 0, l.Fence, t0)
	if _, err := s.CommitStep(ctx, cm, out, ""); err == nil {
		t.Fatal("CommitStep with a crash before the send succeeded")
	}
	if diff := cmp.Diff([]string{"DynamoDB.TransactWriteItems"}, m.Ops()); diff != "" {
		t.Errorf("the commit's calls (-want +got):\n%s", diff)
	}
	if _, err := s.Acquire(t.Context(), acq("x", 0, 0, t0.Add(lease))); !errors.Is(err, engine.ErrDuplicate) {
		t.Fatalf("redelivery after the commit: %v, want ErrDuplicate", err)
	}
	if diff := cmp.Diff([]string{`{"step":1}`}, queued(t, q)); diff != "" {
		t.Errorf("sent (-want +got): the outbox, once:\n%s", diff)
	}
	l1, err := s.Acquire(t.Context(), acq("x", 1, 0, t0.Add(lease)))
	if err != nil {
		t.Fatal(err)
	}
	cm, out = step("x", 1, 0, l1.Fence, t0.Add(lease))
	if _, err := s.CommitStep(t.Context(), cm, out, ""); err != nil {
		t.Fatal(err)
	}
	if h := steps(t, s, "x"); len(h) != 2 {
		t.Errorf("history %q: want steps 0 and 1 once each", h)
	}
}

// failingSettle is a lease cache whose Settle fails without applying (a
// fault injected on the call) while faulty, and whose Forget fails too
// then when forgetFails: faults are transient, as the soak injects them.
type failingSettle struct {
	leasecache.Cache
	forgetFails bool
	faulty      *atomic.Bool
}

var errInjected = errors.New("injected lease cache fault")

func (f failingSettle) Settle(ctx context.Context, st leasecache.Settlement) error {
	if f.faulty.Load() {
		return errInjected
	}
	return f.Cache.Settle(ctx, st)
}

func (f failingSettle) Forget(ctx context.Context, id string) error {
	if f.forgetFails && f.faulty.Load() {
		return errInjected
	}
	return f.Cache.Forget(ctx, id)
}

// TestRedeliveryAfterFailedSettle: a step committed on DynamoDB whose cache
// settle failed (its record forgotten, or left granting the committed
// lease when the forget failed too) and whose send failed is repaired by
// its redelivery as on the plain store: the acquire is refused as a
// duplicate and the commit's outbox is sent again, without a takeover
// running the step again and without waiting for the scheduled repair.
func TestRedeliveryAfterFailedSettle(t *testing.T) {
	for _, c := range caches {
		for _, forgetFails := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/forget-fails=%v", c.name, forgetFails), func(t *testing.T) {
				ctx, crash := context.WithCancel(t.Context())
				faulty := &atomic.Bool{}
				s, q := setupCached(t, func(p string, c engine.Commit) {
					if p == "after-commit" && c.Step == 0 {
						crash() // the send fails
						faulty.Store(false)
					}
				}, failingSettle{c.new(t), forgetFails, faulty})
				l, err := s.Acquire(t.Context(), acq("x", 0, 0, t0))
				if err != nil {
					t.Fatal(err)
				}
				faulty.Store(true)
				cm, out := step("x", 0, 0, l.Fence, t0)
				if _, err := s.CommitStep(ctx, cm, out, ""); err == nil {
					t.Fatal("CommitStep with a failed send succeeded")
				}
				if got := queued(t, q); len(got) != 0 {
					t.Fatalf("after a failed send the queue holds %q", got)
				}
				// The delivery of step 0 comes back after its visibility timeout.
				later := t0.Add(lease)
				if l2, err := s.Acquire(t.Context(), acq("x", 0, 0, later)); !errors.Is(err, engine.ErrDuplicate) {
					t.Fatalf("redelivery of committed step 0: lease %+v, err %v; want ErrDuplicate", l2, err)
				}
				if diff := cmp.Diff([]string{`{"step":1}`}, queued(t, q)); diff != "" {
					t.Fatalf("redelivery of committed step 0 sent (-want +got):\n%s", diff)
				}
				l3, err := s.Acquire(t.Context(), acq("x", 1, 0, later))
				if err != nil {
					t.Fatalf("Acquire of step 1: %v", err)
				}
				cm, out = step("x", 1, 0, l3.Fence, later)
				if _, err := s.CommitStep(t.Context(), cm, out, ""); err != nil {
					t.Fatal(err)
				}
				if h := steps(t, s, "x"); len(h) != 2 || h[0][:4] != "0/0@" || h[1][:4] != "1/0@" {
					t.Errorf("history %q: want steps 0 and 1 once each", h)
				}
			})
		}
	}
}

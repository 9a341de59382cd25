package dynamodb_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
)

const retention = 30 * 24 * time.Hour

// The conformance suites hold with a retention set (ttl attributes on
// every item, tombstones at every finish, checkpoints of waiting
// executions in the execution item).
func TestStoreWithRetention(t *testing.T) {
	o := dynamodb.Options{Retention: retention}
	t.Run("Store", func(t *testing.T) {
		storetest.RunStore(t, func(t *testing.T) engine.Store { return newStore(t, o) })
	})
	t.Run("Protocol", func(t *testing.T) {
		storetest.RunProtocol(t, func(t *testing.T) engine.Store { return newStore(t, o) })
	})
	t.Run("Pruner", func(t *testing.T) {
		storetest.RunPruner(t, func(t *testing.T) engine.Store { return newStore(t, o) })
	})
	t.Run("DropRecorder", func(t *testing.T) {
		storetest.RunDropRecorder(t, func(t *testing.T) engine.DropRecorder { return newStore(t, o) })
	})
}

// items returns every item under pk id by sort key, read raw.
func items(t *testing.T, c *ddb.Client, table, id string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out, err := c.Query(t.Context(), &ddb.QueryInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: id}},
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]map[string]types.AttributeValue{}
	for _, it := range out.Items {
		m[it["sk"].(*types.AttributeValueMemberS).Value] = it
	}
	return m
}

// ttls maps each item's sort key to its ttl attribute ("" when it has none).
func ttls(its map[string]map[string]types.AttributeValue) map[string]string {
	m := map[string]string{}
	for sk, it := range its {
		m[sk] = ""
		if n, ok := it["ttl"].(*types.AttributeValueMemberN); ok {
			m[sk] = n.Value
		}
	}
	return m
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// expire deletes id's items whose ttl is at or before now, as DynamoDB's
// TTL does once their time has passed. DynamoDB Local's TTL sweep runs on
// its own schedule (seconds here, up to days on AWS) and cannot be told to
// run, so the tests delete the items themselves, exactly those TTL would.
func expire(t *testing.T, c *ddb.Client, table, id string, now time.Time) []string {
	t.Helper()
	var gone []string
	for sk, it := range items(t, c, table, id) {
		n, ok := it["ttl"].(*types.AttributeValueMemberN)
		if !ok {
			continue
		}
		if at, _ := strconv.ParseInt(n.Value, 10, 64); at > now.Unix() {
			continue
		}
		if _, err := c.DeleteItem(t.Context(), &ddb.DeleteItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: id}, "sk": &types.AttributeValueMemberS{Value: sk}}}); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, sk)
	}
	return gone
}

// TestRetentionTTL follows executions with a retention, committed each way
// the store commits (CommitStep; TransactCommit, one transaction; the
// batched CommitSteps): the ttl each write sets (from the commits' times,
// the engine's clock), what TTL deletes once they pass, and that the ids
// then never run again.
func TestRetentionTTL(t *testing.T) {
	for _, mode := range []string{"CommitStep", "TransactCommit", "CommitSteps"} {
		t.Run(mode, func(t *testing.T) { retentionTTL(t, mode) })
	}
}

func retentionTTL(t *testing.T, mode string) {
	q := memory.New(memory.Options{})
	c, table := newTable(t, nil)
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retention: retention, TransactCommit: mode == "TransactCommit"})
	ids := []string{"x", "y"}
	commit := func(cs []engine.StepCommit) {
		t.Helper()
		if mode == "CommitSteps" {
			for i, err := range s.CommitSteps(t.Context(), cs) {
				if err != nil {
					t.Fatalf("commit %d: %v", i, err)
				}
			}
			return
		}
		for _, st := range cs {
			if _, err := s.CommitStep(t.Context(), st.Commit, st.Out, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(k int, at time.Time, outcome engine.Outcome) {
		t.Helper()
		var cs []engine.StepCommit
		for _, id := range ids {
			l, err := s.Acquire(t.Context(), acq(id, k, 0, at))
			if err != nil {
				t.Fatal(err)
			}
			cm, out := step(id, k, 0, l.Fence, at)
			if outcome != engine.OutcomeNext {
				cm.Outcome, cm.History.Outcome, out = outcome, outcome, nil
			}
			cs = append(cs, engine.StepCommit{Commit: cm, Out: out})
		}
		commit(cs)
	}
	for _, id := range ids {
		if err := s.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	run(0, t0, engine.OutcomeNext)
	sk0 := "h#0000000000#00000#0000000000000000001"
	// Running: only the step item has a ttl, twice the retention after its commit.
	for _, id := range ids {
		if diff := cmp.Diff(map[string]string{"e": "", sk0: unix(t0.Add(2 * retention))}, ttls(items(t, c, table, id))); diff != "" {
			t.Errorf("%s: ttls while running (-want +got):\n%s", id, diff)
		}
	}
	t1 := t0.Add(time.Hour)
	run(1, t1, engine.OutcomeDone)
	sk1 := "h#0000000001#00000#0000000000000000002"
	for _, id := range ids {
		its := items(t, c, table, id)
		want := map[string]string{
			"e": unix(t1.Add(retention)), // retention after the finish
			sk0: unix(t0.Add(2 * retention)),
			sk1: unix(t1.Add(retention)),
			"t": "", // the tombstone outlives them all
		}
		if diff := cmp.Diff(want, ttls(its)); diff != "" {
			t.Errorf("%s: ttls after the finish (-want +got):\n%s", id, diff)
		}
		if tb, ok := its["t"]; !ok || tb["st"].(*types.AttributeValueMemberS).Value != "done" {
			t.Errorf("%s: tombstone %v, want status done", id, tb)
		}
		// Within the retention nothing is gone.
		if gone := expire(t, c, table, id, t1.Add(retention-time.Second)); len(gone) != 0 {
			t.Errorf("%s: expired before the retention: %v", id, gone)
		}
		if h := steps(t, s, id); len(h) != 2 {
			t.Errorf("%s: history within the retention = %v, want both steps", id, h)
		}
	}
	// Past the retention TTL deletes the executions and their history (the
	// earlier step item at its own ttl, which is past by then too, as for
	// every execution shorter than the retention).
	now := t0.Add(2 * retention)
	for _, id := range ids {
		if gone := expire(t, c, table, id, now); len(gone) != 3 {
			t.Fatalf("%s: expired %v, want the execution item and both step items", id, gone)
		}
		if diff := cmp.Diff(map[string]string{"t": ""}, ttls(items(t, c, table, id))); diff != "" {
			t.Errorf("%s: left after TTL (-want +got):\n%s", id, diff)
		}
	}

	// A redelivered message of any step is refused as retired, with no
	// execution made up for it.
	for st := range 3 {
		_, err := s.Acquire(t.Context(), acq("x", st, 0, now))
		if !errors.Is(err, engine.ErrPruned) || !errors.Is(err, engine.ErrDuplicate) {
			t.Errorf("Acquire(step %d) after TTL = %v, want ErrPruned and ErrDuplicate", st, err)
		}
	}
	if _, ok := items(t, c, table, "x")["e"]; ok {
		t.Error("Acquire after TTL created an execution item")
	}
	// A start with the same id is refused and says why.
	err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", CreatedAt: now})
	if !errors.Is(err, engine.ErrExists) || !errors.Is(err, engine.ErrPruned) {
		t.Errorf("Create after TTL = %v, want ErrExists and ErrPruned", err)
	}
	if _, err := s.Get(t.Context(), "x"); !errors.Is(err, engine.ErrPruned) || !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Get after TTL = %v, want ErrPruned and ErrNotFound", err)
	}
}

// TestRetentionEngine runs an execution to its end through the engine with
// a retention, lets TTL delete it (simulated as in TestRetentionTTL), and
// redelivers its start message and starts its id again: the message is
// dropped and recorded as a pruned execution's, the start refused.
func TestRetentionEngine(t *testing.T) {
	q := memory.New(memory.Options{})
	c, table := newTable(t, nil)
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retention: retention})
	clock := storetest.NewClock(t0)
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{chain(t, 3)}, Store: s, Queue: s, Retrier: s, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.Start(t.Context(), engine.StartRequest{Machine: "chain", CorrelationID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	var first []byte
	for n := 0; ; n++ {
		ds, err := q.Receive(t.Context(), 10, time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 0 {
			break
		}
		if n > 20 {
			t.Fatal("the execution does not end")
		}
		for _, d := range ds {
			if first == nil {
				first = d.Payload
			}
			if _, err := eng.Handle(t.Context(), d.Payload); err != nil {
				t.Fatal(err)
			}
			if err := q.Ack(t.Context(), d.Receipt); err != nil {
				t.Fatal(err)
			}
		}
		clock.Advance(time.Minute)
	}
	x, err := s.Get(t.Context(), id)
	if err != nil || x.Status != engine.StatusDone {
		t.Fatalf("Get = %+v, %v; want done", x, err)
	}
	clock.Advance(2 * retention)
	if gone := expire(t, c, table, id, clock.Now()); len(gone) < 2 {
		t.Fatalf("expired %v", gone)
	}
	res, err := eng.Handle(t.Context(), first)
	if err != nil || res.Dropped != engine.DropDuplicate {
		t.Errorf("redelivered start message: %+v, %v; want dropped as a duplicate", res, err)
	}
	drops, err := s.ListDropped(t.Context(), engine.DropFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(drops) != 1 || drops[0].Reason != engine.DropPruned || drops[0].CorrelationID != id {
		t.Errorf("dropped records = %+v, want one of reason pruned for %s", drops, id)
	}
	if got := ttls(items(t, c, table, "d")); len(got) != 1 {
		t.Errorf("drop records %v", got)
	} else {
		for _, v := range got {
			if v != unix(clock.Now().Add(retention)) {
				t.Errorf("drop record ttl %s, want %s (its time + the retention)", v, unix(clock.Now().Add(retention)))
			}
		}
	}
	if _, err := eng.Start(t.Context(), engine.StartRequest{Machine: "chain", CorrelationID: id}); !errors.Is(err, engine.ErrExists) || !errors.Is(err, engine.ErrPruned) {
		t.Errorf("start of the retired id = %v, want ErrExists and ErrPruned", err)
	}
	if n := len(items(t, c, table, id)); n != 1 {
		t.Errorf("%d items under the retired id, want the tombstone only", n)
	}
}

// TestRetentionOperator: a stop sets the ttl and writes the tombstone; a
// resume takes the ttl away again, and so does an Acquire of a failed
// execution by a late message: nothing running expires. A waiting
// execution keeps its checkpoint in the execution item, so TTL of its step
// items (a wait longer than twice the retention) takes only history.
func TestRetentionOperator(t *testing.T) {
	c, table := newTable(t, nil)
	s := newStore(t, dynamodb.Options{Client: c, Table: table, Retention: retention})
	ctx := t.Context()
	if err := s.Create(ctx, engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	ttlOf := func(id string) string { return ttls(items(t, c, table, id))["e"] }
	if err := s.SetStatus(ctx, "x", engine.StatusStopped, "by hand", t0); err != nil {
		t.Fatal(err)
	}
	if got := ttlOf("x"); got != unix(t0.Add(retention)) {
		t.Errorf("ttl after stop = %q, want %s", got, unix(t0.Add(retention)))
	}
	if _, ok := items(t, c, table, "x")["t"]; !ok {
		t.Error("stop wrote no tombstone")
	}
	if err := s.Reopen(ctx, engine.Reopen{CorrelationID: "x", From: engine.StatusStopped, To: engine.StatusRunning, Now: t0}); err != nil {
		t.Fatal(err)
	}
	if got := ttlOf("x"); got != "" {
		t.Errorf("ttl after resume = %q, want none", got)
	}
	// Failed at step 0, then a late message takes it.
	resumed := func(step int) engine.AcquireRequest { a := acq("x", step, 0, t0); a.Restarted = t0; return a }
	l, err := s.Acquire(ctx, resumed(0))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := step("x", 0, 0, l.Fence, t0)
	cf.Outcome, cf.History.Outcome = engine.OutcomeFailed, engine.OutcomeFailed
	if err := s.Commit(ctx, cf); err != nil {
		t.Fatal(err)
	}
	if got := ttlOf("x"); got != unix(t0.Add(retention)) {
		t.Errorf("ttl after failing = %q, want %s", got, unix(t0.Add(retention)))
	}
	if _, err := s.Acquire(ctx, resumed(1)); err != nil {
		t.Fatal(err)
	}
	if got := ttlOf("x"); got != "" {
		t.Errorf("ttl after a late message took the failed execution = %q, want none", got)
	}

	// Past its retention (ttl passed, not yet deleted) a stopped execution
	// is not resumed: TTL may delete it and its history any time.
	if err := s.Create(ctx, engine.Execution{CorrelationID: "z", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, "z", engine.StatusStopped, "", t0); err != nil {
		t.Fatal(err)
	}
	err = s.Reopen(ctx, engine.Reopen{CorrelationID: "z", From: engine.StatusStopped, To: engine.StatusRunning, Now: t0.Add(retention)})
	if !errors.Is(err, engine.ErrPruned) {
		t.Errorf("resume past the retention = %v, want ErrPruned", err)
	}

	// Waiting: the checkpoint stays readable when its step item is gone.
	if err := s.Create(ctx, engine.Execution{CorrelationID: "w", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	l, err = s.Acquire(ctx, acq("w", 0, 0, t0))
	if err != nil {
		t.Fatal(err)
	}
	cw, _ := step("w", 0, 0, l.Fence, t0)
	cw.Outcome, cw.History.Outcome = engine.OutcomeWait, engine.OutcomeWait
	if err := s.Commit(ctx, cw); err != nil {
		t.Fatal(err)
	}
	if gone := expire(t, c, table, "w", t0.Add(3*retention)); len(gone) != 1 {
		t.Fatalf("expired %v, want the step item", gone)
	}
	x, err := s.Get(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if x.Status != engine.StatusWaiting || string(x.Checkpoint) != `{"step":1}` {
		t.Errorf("waiting execution after its step item expired: status %s, checkpoint %q", x.Status, x.Checkpoint)
	}
	if h, err := s.History(ctx, "w"); err != nil || len(h) != 0 {
		t.Errorf("History = %v, %v; want the expired entries gone, no error", h, err)
	}
}

// TestRetentionCached: the composite store (a lease cache beside the
// table) with a retention passes the suites, and once TTL has taken a
// failed execution, a late retry is refused by the tombstone rather than
// granted by a cached record that outlived the table's items (the
// finishing commit forgets the record, so the next message reseeds from
// the table).
func TestRetentionCached(t *testing.T) {
	for _, cc := range caches {
		t.Run(cc.name, func(t *testing.T) {
			newCached := func(t *testing.T) *dynamodb.Store {
				return newStore(t, dynamodb.Options{Cache: cc.new(t), Retention: retention})
			}
			// The protocol and prune suites (RunStore with a cache is
			// TestCachedStore's, and its retention paths TestStoreWithRetention's).
			t.Run("Protocol", func(t *testing.T) {
				storetest.RunProtocol(t, func(t *testing.T) engine.Store { return newCached(t) })
			})
			t.Run("Pruner", func(t *testing.T) {
				storetest.RunPruner(t, func(t *testing.T) engine.Store { return newCached(t) })
			})
			t.Run("LateRetry", func(t *testing.T) {
				c, table := newTable(t, nil)
				s := newStore(t, dynamodb.Options{Client: c, Table: table, Cache: cc.new(t), Retention: retention})
				ctx := t.Context()
				if err := s.Create(ctx, engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
					t.Fatal(err)
				}
				l, err := s.Acquire(ctx, acq("x", 0, 0, t0))
				if err != nil {
					t.Fatal(err)
				}
				cf, _ := step("x", 0, 0, l.Fence, t0)
				cf.Outcome, cf.History.Outcome = engine.OutcomeFailed, engine.OutcomeFailed
				if err := s.Commit(ctx, cf); err != nil {
					t.Fatal(err)
				}
				if got := ttls(items(t, c, table, "x")); got["e"] != unix(t0.Add(retention)) || got["t"] != "" {
					t.Errorf("ttls after failing: %v", got)
				}
				now := t0.Add(2 * retention)
				expire(t, c, table, "x", now)
				// The retry of the failed step, and a message of the step after
				// it (which a failed execution still takes while it exists).
				for _, q := range []engine.AcquireRequest{acq("x", 0, 1, now), acq("x", 1, 0, now)} {
					_, err = s.Acquire(ctx, q)
					if !errors.Is(err, engine.ErrPruned) || !errors.Is(err, engine.ErrDuplicate) {
						t.Errorf("late message (step %d attempt %d) after TTL = %v, want ErrPruned and ErrDuplicate", q.Step, q.Retries, err)
					}
				}
				if _, ok := items(t, c, table, "x")["e"]; ok {
					t.Error("the late retry made the execution again")
				}
			})
		})
	}
}

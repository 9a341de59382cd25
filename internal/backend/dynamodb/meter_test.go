package dynamodb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestTransitionCost counts the calls and the capacity units of one
// happy-path transition (Acquire, then CommitStep: step item, execution
// update, send) against DynamoDB Local and the SQS emulator, through the
// SDK middleware the benchmarks use (awsconfig.Meter). The unit figures are
// logged for docs/benchmarks.md. A retention (TTL and tombstones) changes
// neither the calls nor the units:
//
//	go test -v -run TestTransitionCost ./internal/backend/dynamodb
func TestTransitionCost(t *testing.T) {
	units := map[string]float64{}
	for _, ret := range []time.Duration{0, retention} {
		for _, size := range []int{1 << 10, 10 << 10} {
			name := fmt.Sprintf("context %d KB", size>>10)
			if ret > 0 {
				name += " retention"
			}
			t.Run(name, func(t *testing.T) {
				m := &awsconfig.Meter{}
				sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", m))
				qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-cost"))})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_, _ = sc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
				})
				q, err := sqs.New(t.Context(), sqs.Options{Client: sc, URL: *qu.QueueUrl})
				if err != nil {
					t.Fatal(err)
				}
				c, table := newTable(t, m)
				s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q, Retention: ret})
				msg := []byte(`{"version":"0.1","user_context":{"pad":"` + strings.Repeat("x", size) + `"}}`)
				if err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: msg, CreatedAt: t0}); err != nil {
					t.Fatal(err)
				}
				// Step 0 makes the execution item its steady size; step 1 is measured.
				for i := range 2 {
					m.Reset()
					l, err := s.Acquire(t.Context(), acq("x", i, 0, t0))
					if err != nil {
						t.Fatal(err)
					}
					cm, out := step("x", i, 0, l.Fence, t0)
					cm.Checkpoint, out.Payload = msg, msg
					if _, err := s.CommitStep(t.Context(), cm, out, ""); err != nil {
						t.Fatal(err)
					}
				}
				calls := map[string]int64{}
				var wcu float64
				for op, u := range m.Usage() {
					calls[op] = u.Calls
					wcu += u.WriteUnits + u.CapacityUnits
					t.Logf("%s: %d call(s), %.1f write units, %.1f read units, %.1f units", op, u.Calls, u.WriteUnits, u.ReadUnits, u.CapacityUnits)
				}
				want := map[string]int64{"DynamoDB.UpdateItem": 2, "DynamoDB.PutItem": 1, "SQS.SendMessage": 1}
				if diff := cmp.Diff(want, calls); diff != "" {
					t.Errorf("calls of one transition (-want +got):\n%s", diff)
				}
				t.Logf("one transition at %d KB: %d calls, %.1f capacity units", size>>10, m.Calls(), wcu)
				units[name] = wcu
			})
		}
	}
	for _, size := range []string{"context 1 KB", "context 10 KB"} {
		if units[size] != units[size+" retention"] {
			t.Errorf("%s: %.1f units with a retention, %.1f without", size, units[size+" retention"], units[size])
		}
	}
}

// TestFinishCost measures the commit that finishes an execution (done, no
// next message), without and with a retention: the retention's ttl rides
// in the update, its tombstone in the call that writes the step item
// (BatchWriteItem instead of PutItem), so the same two calls and one more
// write unit, once per execution.
//
//	go test -v -run TestFinishCost ./internal/backend/dynamodb
func TestFinishCost(t *testing.T) {
	units := map[time.Duration]float64{}
	for _, ret := range []time.Duration{0, retention} {
		t.Run(fmt.Sprintf("retention %s", ret), func(t *testing.T) {
			m := &awsconfig.Meter{}
			c, table := newTable(t, m)
			s := newStore(t, dynamodb.Options{Client: c, Table: table, Retention: ret})
			msg := []byte(`{"version":"0.1","user_context":{"pad":"` + strings.Repeat("x", 1<<10) + `"}}`)
			if err := s.Create(t.Context(), engine.Execution{CorrelationID: "x", Machine: "M", State: "S0", Checkpoint: msg, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
			l, err := s.Acquire(t.Context(), acq("x", 0, 0, t0))
			if err != nil {
				t.Fatal(err)
			}
			m.Reset()
			cm, _ := step("x", 0, 0, l.Fence, t0)
			cm.Checkpoint, cm.Outcome = msg, engine.OutcomeDone
			if err := s.Commit(t.Context(), cm); err != nil {
				t.Fatal(err)
			}
			calls := map[string]int64{}
			for op, u := range m.Usage() {
				calls[op] = u.Calls
				units[ret] += u.WriteUnits + u.CapacityUnits
				t.Logf("%s: %d call(s), %.1f write units, %.1f units", op, u.Calls, u.WriteUnits, u.CapacityUnits)
			}
			want := map[string]int64{"DynamoDB.UpdateItem": 1, "DynamoDB.PutItem": 1}
			if ret > 0 {
				want = map[string]int64{"DynamoDB.UpdateItem": 1, "DynamoDB.BatchWriteItem": 1}
			}
			if diff := cmp.Diff(want, calls); diff != "" {
				t.Errorf("calls of the finishing commit (-want +got):\n%s", diff)
			}
		})
	}
	t.Logf("finishing commit at 1 KB: %.1f units, %.1f with a retention", units[0], units[retention])
	if units[retention] != units[0]+1 {
		t.Errorf("finishing commit: %.1f units with a retention, want %.1f (one for the tombstone)", units[retention], units[0]+1)
	}
}

// TestTransitionCostBatched is TestTransitionCost for a batch of 10
// transitions of 10 executions committed together (CommitSteps, the
// Lambda handler's SQS batch): 10 acquires, one BatchWriteItem of the
// step items, 10 fenced updates and one SendMessageBatch.
//
//	go test -v -run TestTransitionCost ./internal/backend/dynamodb
func TestTransitionCostBatched(t *testing.T) {
	const batch = 10
	units := map[string]float64{}
	for _, ret := range []time.Duration{0, retention} {
		for _, size := range []int{1 << 10, 10 << 10} {
			name := fmt.Sprintf("context %d KB", size>>10)
			if ret > 0 {
				name += " retention"
			}
			t.Run(name, func(t *testing.T) {
				m := &awsconfig.Meter{}
				sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", m))
				qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-cost"))})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_, _ = sc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
				})
				q, err := sqs.New(t.Context(), sqs.Options{Client: sc, URL: *qu.QueueUrl})
				if err != nil {
					t.Fatal(err)
				}
				c, table := newTable(t, m)
				s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q, Retention: ret})
				msg := []byte(`{"version":"0.1","user_context":{"pad":"` + strings.Repeat("x", size) + `"}}`)
				ids := make([]string, batch)
				for i := range ids {
					ids[i] = fmt.Sprintf("x%d", i)
					if err := s.Create(t.Context(), engine.Execution{CorrelationID: ids[i], Machine: "M", State: "S0", Checkpoint: msg, CreatedAt: t0}); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 2 {
					m.Reset()
					var steps []engine.StepCommit
					for _, id := range ids {
						l, err := s.Acquire(t.Context(), acq(id, i, 0, t0))
						if err != nil {
							t.Fatal(err)
						}
						cm, out := step(id, i, 0, l.Fence, t0)
						cm.Checkpoint, out.Payload = msg, msg
						steps = append(steps, engine.StepCommit{Commit: cm, Out: out})
					}
					for j, err := range s.CommitSteps(t.Context(), steps) {
						if err != nil {
							t.Fatalf("commit %d: %v", j, err)
						}
					}
				}
				calls := map[string]int64{}
				var wcu float64
				for op, u := range m.Usage() {
					calls[op] = u.Calls
					wcu += u.WriteUnits + u.CapacityUnits
					t.Logf("%s: %d call(s), %.1f write units, %.1f read units, %.1f units", op, u.Calls, u.WriteUnits, u.ReadUnits, u.CapacityUnits)
				}
				want := map[string]int64{"DynamoDB.UpdateItem": 2 * batch, "DynamoDB.BatchWriteItem": 1, "SQS.SendMessageBatch": 1}
				if diff := cmp.Diff(want, calls); diff != "" {
					t.Errorf("calls of %d transitions (-want +got):\n%s", batch, diff)
				}
				t.Logf("%d transitions at %d KB: %.1f calls, %.1f capacity units per transition", batch, size>>10,
					float64(m.Calls())/batch, wcu/batch)
				units[name] = wcu
			})
		}
	}
	for _, size := range []string{"context 1 KB", "context 10 KB"} {
		if units[size] != units[size+" retention"] {
			t.Errorf("%s: %.1f units with a retention, %.1f without", size, units[size+" retention"], units[size])
		}
	}
}

// TestTransitionCostCached is TestTransitionCost and TestTransitionCostBatched
// on the composite store (a lease cache in front of the table): the Acquire
// is a cache call, so a transition is one DynamoDB write fewer, one write
// unit fewer. The figures are logged for docs/benchmarks.md:
//
//	go test -v -run TestTransitionCost ./internal/backend/dynamodb
func TestTransitionCostCached(t *testing.T) {
	for _, lc := range caches {
		for _, batch := range []int{1, 10} {
			t.Run(fmt.Sprintf("%s batch %d", lc.name, batch), func(t *testing.T) {
				const size = 1 << 10
				m := &awsconfig.Meter{}
				sc := awssqs.NewFromConfig(awstest.Config(t, "SQS", m))
				qu, err := sc.CreateQueue(t.Context(), &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-cost"))})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					_, _ = sc.DeleteQueue(context.WithoutCancel(t.Context()), &awssqs.DeleteQueueInput{QueueUrl: qu.QueueUrl})
				})
				q, err := sqs.New(t.Context(), sqs.Options{Client: sc, URL: *qu.QueueUrl})
				if err != nil {
					t.Fatal(err)
				}
				c, table := newTable(t, m)
				s := newStore(t, dynamodb.Options{Client: c, Table: table, Queue: q, Retrier: q, Cache: lc.new(t)})
				msg := []byte(`{"version":"0.1","user_context":{"pad":"` + strings.Repeat("x", size) + `"}}`)
				ids := make([]string, batch)
				for i := range ids {
					ids[i] = fmt.Sprintf("x%d", i)
					if err := s.Create(t.Context(), engine.Execution{CorrelationID: ids[i], Machine: "M", State: "S0", Checkpoint: msg, CreatedAt: t0}); err != nil {
						t.Fatal(err)
					}
				}
				for i := range 2 {
					m.Reset()
					var steps []engine.StepCommit
					for _, id := range ids {
						l, err := s.Acquire(t.Context(), acq(id, i, 0, t0))
						if err != nil {
							t.Fatal(err)
						}
						cm, out := step(id, i, 0, l.Fence, t0)
						cm.Checkpoint, out.Payload = msg, msg
						steps = append(steps, engine.StepCommit{Commit: cm, Out: out})
					}
					for j, err := range s.CommitSteps(t.Context(), steps) {
						if err != nil {
							t.Fatalf("commit %d: %v", j, err)
						}
					}
				}
				calls := map[string]int64{}
				var wcu float64
				for op, u := range m.Usage() {
					calls[op] = u.Calls
					wcu += u.WriteUnits + u.CapacityUnits
					t.Logf("%s: %d call(s), %.1f write units, %.1f read units, %.1f units", op, u.Calls, u.WriteUnits, u.ReadUnits, u.CapacityUnits)
				}
				want := map[string]int64{"DynamoDB.UpdateItem": 1, "DynamoDB.PutItem": 1, "SQS.SendMessage": 1}
				if batch > 1 {
					want = map[string]int64{"DynamoDB.UpdateItem": int64(batch), "DynamoDB.BatchWriteItem": 1, "SQS.SendMessageBatch": 1}
				}
				if diff := cmp.Diff(want, calls); diff != "" {
					t.Errorf("AWS calls of %d transition(s) with the lease cache (-want +got):\n%s", batch, diff)
				}
				if got := s.CacheStats(); got.Reseeds != 0 {
					t.Errorf("%d reseeds on the happy path, want 0", got.Reseeds)
				}
				t.Logf("%s, batch %d, 1 KB: %.1f AWS calls, %.1f capacity units per transition", lc.name, batch,
					float64(m.Calls())/float64(batch), wcu/float64(batch))
			})
		}
	}
}

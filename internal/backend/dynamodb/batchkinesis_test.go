package dynamodb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/engine"
)

// throttled is kinesalite's client with every PutRecords entry keyed key
// failed as Kinesis reports a throttled shard (the call succeeds, the entry
// has an ErrorCode); it counts PutRecords calls.
type throttled struct {
	kinesis.API
	key   string
	calls int
}

func (c *throttled) PutRecords(ctx context.Context, in *awskinesis.PutRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.PutRecordsOutput, error) {
	c.calls++
	var keep []types.PutRecordsRequestEntry
	var at []int
	for i, e := range in.Records {
		if aws.ToString(e.PartitionKey) != c.key {
			keep = append(keep, e)
			at = append(at, i)
		}
	}
	res := make([]types.PutRecordsResultEntry, len(in.Records))
	for i := range res {
		res[i] = types.PutRecordsResultEntry{ErrorCode: aws.String("ProvisionedThroughputExceededException"), ErrorMessage: aws.String("Rate exceeded for shard")}
	}
	if len(keep) > 0 {
		cp := *in
		cp.Records = keep
		out, err := c.API.PutRecords(ctx, &cp, opts...)
		if err != nil {
			return nil, err
		}
		for j, r := range out.Records {
			res[at[j]] = r
		}
	}
	return &awskinesis.PutRecordsOutput{Records: res}, nil
}

// The batched commit of a Kinesis batch sends the batch's next messages
// with the stream's SendBatch (PutRecords, its failed entries retried), and
// an entry that stays failed fails only its own step (committed, next
// message not sent: its redelivery sends the outbox); a crash before the
// send sends nothing and every step is still committed.
func TestCommitStepsKinesis(t *testing.T) {
	kc := awskinesis.NewFromConfig(awstest.Config(t, "KINESIS", nil))
	name := awstest.Name("lfsm-batch-kinesis")
	if _, err := kc.CreateStream(t.Context(), &awskinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(1)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	t.Cleanup(func() {
		_, _ = kc.DeleteStream(context.WithoutCancel(t.Context()), &awskinesis.DeleteStreamInput{StreamName: &name})
	})
	w := awskinesis.NewStreamExistsWaiter(kc, func(o *awskinesis.StreamExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond })
	desc, err := w.WaitForOutput(t.Context(), &awskinesis.DescribeStreamInput{StreamName: &name}, 30*time.Second)
	if err != nil {
		t.Fatalf("stream %s not active: %v", name, err)
	}
	f := &throttled{API: kc, key: "y"}
	q, err := kinesis.New(t.Context(), kinesis.Options{Client: f, ARN: aws.ToString(desc.StreamDescription.StreamARN), BatchAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, crash := range []bool{false, true} {
		ctx, stop := context.WithCancel(t.Context())
		c, table := newTable(t, nil)
		s := newStore(t, dynamodb.WithHook(dynamodb.Options{Client: c, Table: table, Queue: q}, func(p string, c engine.Commit) {
			if crash && p == "before-send" {
				stop()
			}
		}))
		for _, id := range []string{"x", "y", "z"} {
			if err := s.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "M", State: "S0", Checkpoint: []byte("start"), CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		f.calls = 0
		batch := batchOf(t, s, 0, t0, "x", "y", "z")
		errs := s.CommitSteps(ctx, batch)
		stop()
		for i, id := range []string{"x", "y", "z"} {
			if h := steps(t, s, id); len(h) != 1 {
				t.Errorf("crash %v: %s: history %q, want its step committed once", crash, id, h)
			}
			switch {
			case !crash && id == "y" && (errs[i] == nil || !strings.Contains(errs[i].Error(), "ProvisionedThroughputExceededException") ||
				strings.Contains(errs[i].Error(), "message(s) not sent")):
				t.Errorf("y: %v, want its own entry's failure (throttled), not the batch's summary", errs[i])
			case crash || id == "y":
				if errs[i] == nil || !strings.Contains(errs[i].Error(), "committed, next message not sent") || errors.Is(errs[i], engine.ErrFenceLost) {
					t.Errorf("crash %v: %s: %v, want committed, next message not sent", crash, id, errs[i])
				}
			case errs[i] != nil || !strings.HasPrefix(batch[i].Receipt, "shardId-"):
				t.Errorf("%s: %v, receipt %q: want sent, with its shard and sequence number", id, errs[i], batch[i].Receipt)
			}
		}
		// One PutRecords for the batch and one retry of y's entry; after
		// the crash, the one call made fails on the dead context.
		if want := map[bool]int{false: 2, true: 1}[crash]; f.calls != want {
			t.Errorf("crash %v: PutRecords calls = %d, want %d", crash, f.calls, want)
		}
	}
}

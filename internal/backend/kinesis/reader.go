package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/lfsm/lfsm/internal/backend/shardread"
)

// Invoker invokes the function with one event and returns its response (the
// local poller's function: the project binary, or the bootstrap under
// aws-lambda-rie). An error is a function error: the whole batch comes back.
type Invoker = shardread.Invoker

// ReadAPI is the part of the Kinesis client the Reader calls.
type ReadAPI interface {
	ListShards(ctx context.Context, in *awskinesis.ListShardsInput, opts ...func(*awskinesis.Options)) (*awskinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *awskinesis.GetShardIteratorInput, opts ...func(*awskinesis.Options)) (*awskinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *awskinesis.GetRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.GetRecordsOutput, error)
}

// ReaderOptions configure a Reader.
type ReaderOptions struct {
	Client ReadAPI
	// ARN is the stream's ARN (the records' eventSourceARN and awsRegion).
	ARN     string
	Invoker Invoker
	// BatchSize is the most records per invocation (default 100, as
	// Lambda's mapping; at most 10,000).
	BatchSize int
	// MaxRetries is how often one batch is retried after a function error
	// or a reported failure before its records are skipped, as the
	// deployment's mapping does (default 10; negative: forever).
	MaxRetries int
	// Pause is the wait of Run between rounds that read nothing, and before
	// a failed batch is read again (default 1 s, as Lambda polls a shard).
	Pause time.Duration
	// OnBatch, if set, is told each invocation: the shard, its records,
	// the sequence number it resumes from when the batch failed (empty
	// when it succeeded), and the function's error.
	OnBatch func(shard string, recs []events.KinesisEventRecord, retryFrom string, err error)
	// Logger logs failures; nil discards.
	Logger *slog.Logger
}

// Reader plays Lambda's Kinesis event source mapping (TRIM_HORIZON, partial
// batch responses): it reads every shard from its oldest record, hands one
// batch at a time per shard to the function as Lambda's Kinesis event, and
// reads the shard's next batch only after the function returned. When the
// function reports batchItemFailures, the shard resumes from the lowest
// sequence number reported (the records before it are done); when the
// invocation fails, the whole batch is read again. A child shard (after a
// reshard) is read once its parent is finished. Shards are read in turn,
// not in parallel: order per shard is what the engine relies on.
type Reader struct {
	o ReaderOptions
	a ARN
	w *shardread.Walker[types.Record]
}

// NewReader returns a Reader of o.ARN's stream.
func NewReader(o ReaderOptions) (*Reader, error) {
	if o.Client == nil || o.Invoker == nil {
		return nil, errors.New("kinesis reader: no client or invoker")
	}
	a, err := ParseARN(o.ARN)
	if err != nil {
		return nil, err
	}
	r := &Reader{o: o, a: a}
	r.w = shardread.New(shardread.Config[types.Record]{
		Name: "kinesis", Source: source{r}, Seq: func(rec types.Record) string { return aws.ToString(rec.SequenceNumber) },
		Handle: r.handle, BatchSize: o.BatchSize, MaxBatch: 10_000, MaxRetries: o.MaxRetries, Pause: o.Pause, Logger: o.Logger,
	})
	return r, nil
}

// Run reads until ctx is done; the batch in flight is finished first.
func (r *Reader) Run(ctx context.Context) error { return r.w.Run(ctx) }

// Poll reads one batch of every shard that can be read (its parent done,
// its pause over), invoking the function for each batch that has records.
// It returns the number of records handed to the function.
func (r *Reader) Poll(ctx context.Context) (int, error) { return r.w.Poll(ctx) }

// source is the stream's shards for the walker, over the Kinesis client.
type source struct{ r *Reader }

func (s source) Shards(ctx context.Context) ([]shardread.Shard, error) {
	name := s.r.a.Name
	var shards []shardread.Shard
	in := &awskinesis.ListShardsInput{StreamName: &name}
	for {
		out, err := s.r.o.Client.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards of Kinesis stream %s: %w", name, err)
		}
		for _, sh := range out.Shards {
			shards = append(shards, shardread.Shard{ID: aws.ToString(sh.ShardId), Parent: aws.ToString(sh.ParentShardId)})
		}
		if out.NextToken == nil {
			return shards, nil
		}
		in = &awskinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// Iterator returns an iterator after the shard's last done record, or at
// its oldest.
func (s source) Iterator(ctx context.Context, id, after string) (*string, error) {
	in := &awskinesis.GetShardIteratorInput{StreamName: &s.r.a.Name, ShardId: &id, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if after != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	}
	out, err := s.r.o.Client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("shard iterator of %s/%s: %w", s.r.a.Name, id, err)
	}
	return out.ShardIterator, nil
}

func (s source) Records(ctx context.Context, id string, it *string, limit int) ([]types.Record, *string, error) {
	out, err := s.r.o.Client.GetRecords(ctx, &awskinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(int32(limit))})
	var expired *types.ExpiredIteratorException
	if errors.As(err, &expired) {
		return nil, nil, shardread.ErrExpired
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read shard %s/%s: %w", s.r.a.Name, id, err)
	}
	return out.Records, out.NextShardIterator, nil
}

// handle hands one shard's batch to the function as Lambda's Kinesis event.
func (r *Reader) handle(ctx context.Context, shardID string, raw []types.Record) (int, string, error) {
	recs := make([]events.KinesisEventRecord, len(raw))
	seqs := make([]string, len(raw))
	for i, rec := range raw {
		recs[i] = r.event(shardID, rec)
		seqs[i] = recs[i].Kinesis.SequenceNumber
	}
	from, err := r.w.Invoke(ctx, r.o.Invoker, events.KinesisEvent{Records: recs}, seqs)
	if r.o.OnBatch != nil {
		r.o.OnBatch(shardID, recs, from, err)
	}
	return len(recs), from, err
}

func (r *Reader) event(shardID string, rec types.Record) events.KinesisEventRecord {
	seq := aws.ToString(rec.SequenceNumber)
	e := events.KinesisEventRecord{
		AwsRegion: r.a.Region, EventID: shardID + ":" + seq, EventName: "aws:kinesis:record",
		EventSource: "aws:kinesis", EventSourceArn: r.o.ARN, EventVersion: "1.0",
		Kinesis: events.KinesisRecord{
			Data: rec.Data, PartitionKey: aws.ToString(rec.PartitionKey), SequenceNumber: seq,
			KinesisSchemaVersion: "1.0", EncryptionType: string(rec.EncryptionType),
		},
	}
	if rec.ApproximateArrivalTimestamp != nil {
		e.Kinesis.ApproximateArrivalTimestamp = events.SecondsEpochTime{Time: *rec.ApproximateArrivalTimestamp}
	}
	return e
}

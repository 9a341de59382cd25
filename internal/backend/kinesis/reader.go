package kinesis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Invoker invokes the function with one event and returns its response (the
// local poller's function: the project binary, or the bootstrap under
// aws-lambda-rie). An error is a function error: the whole batch comes back.
type Invoker interface {
	Invoke(ctx context.Context, event []byte) ([]byte, error)
}

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
	o      ReaderOptions
	a      ARN
	shards map[string]*shard
	order  []string
	listed time.Time
}

type shard struct {
	id, parent string
	iter       *string
	// after is the last sequence number done ("" before the first).
	after    string
	closed   bool
	failures int
	wakeAt   time.Time
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
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	o.BatchSize = min(o.BatchSize, 10_000)
	if o.MaxRetries == 0 {
		o.MaxRetries = 10
	}
	if o.Pause <= 0 {
		o.Pause = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{o: o, a: a, shards: map[string]*shard{}}, nil
}

// Run reads until ctx is done; the batch in flight is finished first.
func (r *Reader) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := r.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("kinesis event source mapping", "err", err)
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(r.o.Pause):
			}
		}
	}
	return nil
}

// Poll reads one batch of every shard that can be read (its parent done,
// its pause over), invoking the function for each batch that has records.
// It returns the number of records handed to the function.
func (r *Reader) Poll(ctx context.Context) (int, error) {
	if len(r.shards) == 0 || time.Since(r.listed) > 30*time.Second {
		if err := r.list(ctx); err != nil {
			return 0, err
		}
	}
	total := 0
	for _, id := range r.order {
		s := r.shards[id]
		if s.closed || time.Now().Before(s.wakeAt) {
			continue
		}
		if p, ok := r.shards[s.parent]; ok && !p.closed {
			continue
		}
		n, err := r.read(ctx, s)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (r *Reader) list(ctx context.Context) error {
	in := &awskinesis.ListShardsInput{StreamName: &r.a.Name}
	for {
		out, err := r.o.Client.ListShards(ctx, in)
		if err != nil {
			return fmt.Errorf("list shards of Kinesis stream %s: %w", r.a.Name, err)
		}
		for _, sh := range out.Shards {
			id := aws.ToString(sh.ShardId)
			if _, ok := r.shards[id]; !ok {
				r.shards[id] = &shard{id: id, parent: aws.ToString(sh.ParentShardId)}
				r.order = append(r.order, id)
			}
		}
		if out.NextToken == nil {
			break
		}
		in = &awskinesis.ListShardsInput{NextToken: out.NextToken}
	}
	r.listed = time.Now()
	return nil
}

// iterator returns s's iterator: after its last done record, or at its
// oldest.
func (r *Reader) iterator(ctx context.Context, s *shard) (*string, error) {
	if s.iter != nil {
		return s.iter, nil
	}
	in := &awskinesis.GetShardIteratorInput{StreamName: &r.a.Name, ShardId: &s.id, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if s.after != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(s.after)
	}
	out, err := r.o.Client.GetShardIterator(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("shard iterator of %s/%s: %w", r.a.Name, s.id, err)
	}
	s.iter = out.ShardIterator
	return s.iter, nil
}

func (r *Reader) read(ctx context.Context, s *shard) (int, error) {
	it, err := r.iterator(ctx, s)
	if err != nil {
		return 0, err
	}
	out, err := r.o.Client.GetRecords(ctx, &awskinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(int32(r.o.BatchSize))})
	var expired *types.ExpiredIteratorException
	if errors.As(err, &expired) {
		s.iter = nil
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read shard %s/%s: %w", r.a.Name, s.id, err)
	}
	if len(out.Records) == 0 {
		s.iter = out.NextShardIterator
		if s.iter == nil {
			s.closed = true
		}
		return 0, nil
	}
	recs := make([]events.KinesisEventRecord, len(out.Records))
	for i, rec := range out.Records {
		recs[i] = r.event(s.id, rec)
	}
	from, ierr := r.invoke(ctx, recs)
	if r.o.OnBatch != nil {
		r.o.OnBatch(s.id, recs, from, ierr)
	}
	if from == "" {
		s.after, s.iter, s.failures = recs[len(recs)-1].Kinesis.SequenceNumber, out.NextShardIterator, 0
		if s.iter == nil {
			s.closed = true
		}
		return len(recs), nil
	}
	// Resume from the failed record: the ones before it are done.
	for _, rec := range recs {
		if rec.Kinesis.SequenceNumber == from {
			break
		}
		s.after = rec.Kinesis.SequenceNumber
	}
	s.iter = nil
	s.failures++
	if r.o.MaxRetries >= 0 && s.failures > r.o.MaxRetries {
		r.o.Logger.Error("kinesis batch failed too often: its records are skipped, as the mapping does after its retries",
			"shard", s.id, "records", len(recs), "err", ierr)
		s.after, s.failures = recs[len(recs)-1].Kinesis.SequenceNumber, 0
		return len(recs), nil
	}
	s.wakeAt = time.Now().Add(r.o.Pause)
	return len(recs), nil
}

// invoke hands recs to the function and returns the sequence number the
// shard resumes from ("" when all are done).
func (r *Reader) invoke(ctx context.Context, recs []events.KinesisEventRecord) (string, error) {
	event, err := json.Marshal(events.KinesisEvent{Records: recs})
	if err != nil {
		return recs[0].Kinesis.SequenceNumber, err
	}
	// A batch is finished even when ctx ends meanwhile (Ctrl-C).
	resp, err := r.o.Invoker.Invoke(context.WithoutCancel(ctx), event)
	if err != nil {
		r.o.Logger.Warn("kinesis batch: function error; the batch is read again", "records", len(recs), "err", err)
		return recs[0].Kinesis.SequenceNumber, err
	}
	var br events.KinesisEventResponse
	if len(resp) > 0 && string(resp) != "null" {
		if err := json.Unmarshal(resp, &br); err != nil {
			return recs[0].Kinesis.SequenceNumber, fmt.Errorf("function response is not a batch response: %w", err)
		}
	}
	lowest := ""
	for _, f := range br.BatchItemFailures {
		id := f.ItemIdentifier
		known := false
		for _, rec := range recs {
			if rec.Kinesis.SequenceNumber == id {
				known = true
			}
		}
		if !known {
			// Lambda fails the whole batch on an identifier it did not send.
			return recs[0].Kinesis.SequenceNumber, fmt.Errorf("function reported unknown item %q", id)
		}
		if lowest == "" || seqLess(id, lowest) {
			lowest = id
		}
	}
	return lowest, nil
}

// seqLess compares Kinesis sequence numbers (decimal strings of up to 128
// bits).
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
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

package ddbstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/lfsm/lfsm/internal/backend/shardread"
)

// Invoker invokes the function with one event and returns its response (the
// local poller's function: the project binary, or the bootstrap under
// aws-lambda-rie). An error is a function error: the whole batch comes back.
type Invoker = shardread.Invoker

// API is the part of the DynamoDB Streams client the Reader calls.
type API interface {
	DescribeStream(ctx context.Context, in *streams.DescribeStreamInput, opts ...func(*streams.Options)) (*streams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *streams.GetShardIteratorInput, opts ...func(*streams.Options)) (*streams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *streams.GetRecordsInput, opts ...func(*streams.Options)) (*streams.GetRecordsOutput, error)
}

// Options configure a Reader.
type Options struct {
	Client API
	// StreamARN is the table's stream (arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL).
	StreamARN string
	Invoker   Invoker
	// BatchSize is the most records per invocation (default 100, as
	// Lambda's mapping; GetRecords takes at most 1,000).
	BatchSize int
	// MaxRetries is how often one batch is retried before its records are
	// skipped, as the deployment's mapping does (default 10; negative:
	// forever).
	MaxRetries int
	// Pause is Run's wait between rounds that read nothing and before a
	// failed batch is read again (default 1 s).
	Pause time.Duration
	// OnBatch, if set, is told each invocation.
	OnBatch func(shard string, recs []events.DynamoDBEventRecord, retryFrom string, err error)
	// Logger logs failures; nil discards.
	Logger *slog.Logger
}

// Reader plays the DynamoDB-stream event source mapping that the
// deployment makes (TRIM_HORIZON, an INSERT-only filter, partial batch
// responses): every shard from its oldest record, one batch per shard at a
// time, the next only after the function returned. Records other than
// INSERT are dropped before the function sees them, as the mapping's filter
// drops them: TTL removals (REMOVE on AWS, UNKNOWN_TO_SDK_VERSION on
// DynamoDB Local) must not invoke it. A reported failure resumes the shard
// from the lowest sequence number reported; a function error repeats the
// batch; a child shard is read once its parent is finished.
type Reader struct {
	o      Options
	region string
	w      *shardread.Walker[types.Record]
}

// New returns a Reader of o.StreamARN.
func New(o Options) (*Reader, error) {
	if o.Client == nil || o.Invoker == nil {
		return nil, errors.New("dynamodb stream reader: no client or invoker")
	}
	p := strings.SplitN(o.StreamARN, ":", 6) // the label is a time with colons
	if len(p) != 6 || p[0] != "arn" || p[2] != "dynamodb" || p[3] == "" || !strings.Contains(p[5], "/stream/") {
		return nil, fmt.Errorf("invalid DynamoDB stream ARN %q (want arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL)", o.StreamARN)
	}
	r := &Reader{o: o, region: p[3]}
	r.w = shardread.New(shardread.Config[types.Record]{
		Name: "dynamodb stream", Source: source{r}, Seq: seq,
		Handle: r.handle, BatchSize: o.BatchSize, MaxBatch: 1000, MaxRetries: o.MaxRetries, Pause: o.Pause, Logger: o.Logger,
	})
	return r, nil
}

// Run reads until ctx is done; the batch in flight is finished first.
func (r *Reader) Run(ctx context.Context) error { return r.w.Run(ctx) }

// Poll reads one batch of every shard that can be read and returns the
// number of records handed to the function.
func (r *Reader) Poll(ctx context.Context) (int, error) { return r.w.Poll(ctx) }

func seq(rec types.Record) string {
	if rec.Dynamodb == nil {
		return ""
	}
	return aws.ToString(rec.Dynamodb.SequenceNumber)
}

// source is the stream's shards for the walker, over the DynamoDB Streams
// client.
type source struct{ r *Reader }

func (s source) Shards(ctx context.Context) ([]shardread.Shard, error) {
	arn := s.r.o.StreamARN
	var shards []shardread.Shard
	in := &streams.DescribeStreamInput{StreamArn: &arn}
	for {
		out, err := s.r.o.Client.DescribeStream(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("describe DynamoDB stream %s: %w", arn, err)
		}
		d := out.StreamDescription
		if d == nil {
			return shards, nil
		}
		for _, sh := range d.Shards {
			shards = append(shards, shardread.Shard{ID: aws.ToString(sh.ShardId), Parent: aws.ToString(sh.ParentShardId)})
		}
		if d.LastEvaluatedShardId == nil {
			return shards, nil
		}
		in = &streams.DescribeStreamInput{StreamArn: &arn, ExclusiveStartShardId: d.LastEvaluatedShardId}
	}
}

func (s source) Iterator(ctx context.Context, id, after string) (*string, error) {
	arn := s.r.o.StreamARN
	in := &streams.GetShardIteratorInput{StreamArn: &arn, ShardId: &id, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if after != "" {
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	}
	out, err := s.r.o.Client.GetShardIterator(ctx, in)
	var gone *types.ResourceNotFoundException
	if errors.As(err, &gone) && after == "" {
		// A shard trimmed away (older than 24 h) is finished.
		return nil, shardread.ErrGone
	}
	if err != nil {
		return nil, fmt.Errorf("shard iterator of %s/%s: %w", arn, id, err)
	}
	return out.ShardIterator, nil
}

func (s source) Records(ctx context.Context, id string, it *string, limit int) ([]types.Record, *string, error) {
	out, err := s.r.o.Client.GetRecords(ctx, &streams.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(int32(limit))})
	var expired *types.ExpiredIteratorException
	var trimmed *types.TrimmedDataAccessException
	if errors.As(err, &expired) || errors.As(err, &trimmed) {
		// An iterator past its 15 minutes, or one DynamoDB Local refuses
		// as trimmed once records arrive in a shard that was empty when it
		// was taken: a new one, after the last record read, reads on.
		return nil, nil, shardread.ErrExpired
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read shard %s/%s: %w", s.r.o.StreamARN, id, err)
	}
	return out.Records, out.NextShardIterator, nil
}

// handle hands the batch's INSERT records to the function (the mapping's
// filter); a batch of none is done without an invocation.
func (r *Reader) handle(ctx context.Context, shardID string, raw []types.Record) (int, string, error) {
	var recs []events.DynamoDBEventRecord
	var seqs []string
	for _, rec := range raw {
		if rec.EventName == types.OperationTypeInsert && rec.Dynamodb != nil {
			recs = append(recs, r.event(rec))
			seqs = append(seqs, seq(rec))
		}
	}
	if len(recs) == 0 {
		return 0, "", nil
	}
	from, err := r.w.Invoke(ctx, r.o.Invoker, events.DynamoDBEvent{Records: recs}, seqs)
	if r.o.OnBatch != nil {
		r.o.OnBatch(shardID, recs, from, err)
	}
	return len(recs), from, err
}

func (r *Reader) event(rec types.Record) events.DynamoDBEventRecord {
	d := rec.Dynamodb
	e := events.DynamoDBEventRecord{
		AWSRegion: r.region, EventID: aws.ToString(rec.EventID), EventName: string(rec.EventName),
		EventSource: "aws:dynamodb", EventVersion: aws.ToString(rec.EventVersion), EventSourceArn: r.o.StreamARN,
		Change: events.DynamoDBStreamRecord{
			Keys: image(d.Keys), NewImage: image(d.NewImage), OldImage: image(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber), SizeBytes: aws.ToInt64(d.SizeBytes),
			StreamViewType: string(d.StreamViewType),
		},
	}
	if d.ApproximateCreationDateTime != nil {
		e.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *d.ApproximateCreationDateTime}
	}
	return e
}

func image(m map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	if m == nil {
		return nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		out[k] = value(v)
	}
	return out
}

func value(v types.AttributeValue) events.DynamoDBAttributeValue {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value)
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value)
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value)
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value)
	case *types.AttributeValueMemberNULL:
		return events.NewNullAttribute()
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value)
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value)
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value)
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, x := range v.Value {
			l[i] = value(x)
		}
		return events.NewListAttribute(l)
	case *types.AttributeValueMemberM:
		return events.NewMapAttribute(image(v.Value))
	}
	return events.NewNullAttribute()
}

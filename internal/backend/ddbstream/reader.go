package ddbstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// Invoker invokes the function with one event and returns its response. An
// error is a function error: the whole batch comes back.
type Invoker interface {
	Invoke(ctx context.Context, event []byte) ([]byte, error)
}

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
	shards map[string]*shard
	order  []string
	listed time.Time
}

type shard struct {
	id, parent string
	iter       *string
	after      string
	closed     bool
	failures   int
	wakeAt     time.Time
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
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	o.BatchSize = min(o.BatchSize, 1000)
	if o.MaxRetries == 0 {
		o.MaxRetries = 10
	}
	if o.Pause <= 0 {
		o.Pause = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{o: o, region: p[3], shards: map[string]*shard{}}, nil
}

// Run reads until ctx is done; the batch in flight is finished first.
func (r *Reader) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		n, err := r.Poll(ctx)
		if err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("dynamodb stream event source mapping", "err", err)
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

// Poll reads one batch of every shard that can be read and returns the
// number of records handed to the function.
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
	in := &streams.DescribeStreamInput{StreamArn: &r.o.StreamARN}
	for {
		out, err := r.o.Client.DescribeStream(ctx, in)
		if err != nil {
			return fmt.Errorf("describe DynamoDB stream %s: %w", r.o.StreamARN, err)
		}
		d := out.StreamDescription
		if d == nil {
			break
		}
		for _, sh := range d.Shards {
			id := aws.ToString(sh.ShardId)
			if _, ok := r.shards[id]; !ok {
				r.shards[id] = &shard{id: id, parent: aws.ToString(sh.ParentShardId)}
				r.order = append(r.order, id)
			}
		}
		if d.LastEvaluatedShardId == nil {
			break
		}
		in = &streams.DescribeStreamInput{StreamArn: &r.o.StreamARN, ExclusiveStartShardId: d.LastEvaluatedShardId}
	}
	r.listed = time.Now()
	return nil
}

func (r *Reader) iterator(ctx context.Context, s *shard) (*string, error) {
	if s.iter != nil {
		return s.iter, nil
	}
	in := &streams.GetShardIteratorInput{StreamArn: &r.o.StreamARN, ShardId: &s.id, ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
	if s.after != "" {
		in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(s.after)
	}
	out, err := r.o.Client.GetShardIterator(ctx, in)
	var gone *types.ResourceNotFoundException
	if errors.As(err, &gone) && s.after == "" {
		// A shard trimmed away (older than 24 h) is finished.
		s.closed = true
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shard iterator of %s/%s: %w", r.o.StreamARN, s.id, err)
	}
	s.iter = out.ShardIterator
	return s.iter, nil
}

func (r *Reader) read(ctx context.Context, s *shard) (int, error) {
	it, err := r.iterator(ctx, s)
	if err != nil || it == nil {
		return 0, err
	}
	out, err := r.o.Client.GetRecords(ctx, &streams.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(int32(r.o.BatchSize))})
	var expired *types.ExpiredIteratorException
	var trimmed *types.TrimmedDataAccessException
	if errors.As(err, &expired) || errors.As(err, &trimmed) {
		// An iterator past its 15 minutes, or one DynamoDB Local refuses
		// as trimmed once records arrive in a shard that was empty when it
		// was taken: a new one, after the last record read, reads on.
		s.iter = nil
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read shard %s/%s: %w", r.o.StreamARN, s.id, err)
	}
	advance := func() {
		s.iter, s.failures = out.NextShardIterator, 0
		if len(out.Records) > 0 {
			s.after = aws.ToString(out.Records[len(out.Records)-1].Dynamodb.SequenceNumber)
		}
		if s.iter == nil {
			s.closed = true
		}
	}
	var recs []events.DynamoDBEventRecord
	for _, rec := range out.Records {
		// The mapping's filter: INSERT only.
		if rec.EventName == types.OperationTypeInsert && rec.Dynamodb != nil {
			recs = append(recs, r.event(rec))
		}
	}
	if len(recs) == 0 {
		advance()
		return 0, nil
	}
	from, ierr := r.invoke(ctx, recs)
	if r.o.OnBatch != nil {
		r.o.OnBatch(s.id, recs, from, ierr)
	}
	if from == "" {
		advance()
		return len(recs), nil
	}
	// Resume from the failed record: the records before it (filtered ones
	// too) are done.
	for _, rec := range out.Records {
		seq := aws.ToString(rec.Dynamodb.SequenceNumber)
		if seq == from {
			break
		}
		s.after = seq
	}
	s.iter = nil
	s.failures++
	if r.o.MaxRetries >= 0 && s.failures > r.o.MaxRetries {
		r.o.Logger.Error("dynamodb stream batch failed too often: its records are skipped, as the mapping does after its retries",
			"shard", s.id, "records", len(recs), "err", ierr)
		advance()
		return len(recs), nil
	}
	s.wakeAt = time.Now().Add(r.o.Pause)
	return len(recs), nil
}

func (r *Reader) invoke(ctx context.Context, recs []events.DynamoDBEventRecord) (string, error) {
	first := recs[0].Change.SequenceNumber
	event, err := json.Marshal(events.DynamoDBEvent{Records: recs})
	if err != nil {
		return first, err
	}
	resp, err := r.o.Invoker.Invoke(context.WithoutCancel(ctx), event)
	if err != nil {
		r.o.Logger.Warn("dynamodb stream batch: function error; the batch is read again", "records", len(recs), "err", err)
		return first, err
	}
	var br events.DynamoDBEventResponse
	if len(resp) > 0 && string(resp) != "null" {
		if err := json.Unmarshal(resp, &br); err != nil {
			return first, fmt.Errorf("function response is not a batch response: %w", err)
		}
	}
	lowest := ""
	for _, f := range br.BatchItemFailures {
		known := false
		for _, rec := range recs {
			known = known || rec.Change.SequenceNumber == f.ItemIdentifier
		}
		if !known {
			return first, fmt.Errorf("function reported unknown item %q", f.ItemIdentifier)
		}
		if lowest == "" || seqLess(f.ItemIdentifier, lowest) {
			lowest = f.ItemIdentifier
		}
	}
	return lowest, nil
}

// seqLess compares stream sequence numbers (decimal strings).
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
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

package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/lfsm/lfsm/internal/backend/sendbatch"
	"github.com/lfsm/lfsm/internal/engine"
)

// DefaultMaxRecordBytes is a record's limit when the stream does not say
// (1 MiB: AWS's default, and what kinesalite enforces).
const DefaultMaxRecordBytes = 1 << 20

// MaxBatch is the most records one PutRecords call takes.
const MaxBatch = 500

// maxBatchBytes is the most one PutRecords call may carry (5 MiB, keys and
// data together).
const maxBatchBytes = 5 << 20

// maxKeyBytes is the longest partition key Kinesis accepts (256 characters);
// a message's limit leaves it room, so a correlation id of any length fits.
const maxKeyBytes = 256

// API is the part of the Kinesis client the Stream calls (*kinesis.Client
// has it).
type API interface {
	PutRecord(ctx context.Context, in *awskinesis.PutRecordInput, opts ...func(*awskinesis.Options)) (*awskinesis.PutRecordOutput, error)
	PutRecords(ctx context.Context, in *awskinesis.PutRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.PutRecordsOutput, error)
	DescribeStreamSummary(ctx context.Context, in *awskinesis.DescribeStreamSummaryInput, opts ...func(*awskinesis.Options)) (*awskinesis.DescribeStreamSummaryOutput, error)
}

// Options configure a Stream.
type Options struct {
	// Client talks to Kinesis in the stream's region.
	Client API
	// ARN names the stream (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME);
	// Name may be given instead (Name wins when both are).
	ARN  string
	Name string
	// BatchAttempts bounds the PutRecords calls SendBatch makes for one
	// batch (the first and the retries of its failed entries); 0 means 5.
	BatchAttempts int
}

// Stream sends messages to one Kinesis stream. It implements engine.Queue.
type Stream struct {
	c        API
	name     string
	maxBytes int
	attempts int
}

var _ engine.Queue = (*Stream)(nil)

// ARNShape is the form ParseARN accepts, for error and help text.
const ARNShape = "arn:aws:kinesis:REGION:ACCOUNT:stream/NAME"

// ARN is a parsed Kinesis stream ARN.
type ARN struct {
	Partition, Region, Account, Name string
}

// ParseARN parses arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME.
func ParseARN(s string) (ARN, error) {
	p := strings.Split(s, ":")
	if len(p) != 6 || p[0] != "arn" || p[2] != "kinesis" || p[1] == "" || p[3] == "" || p[4] == "" ||
		!strings.HasPrefix(p[5], "stream/") || len(p[5]) == len("stream/") || strings.Contains(p[5][len("stream/"):], "/") {
		return ARN{}, fmt.Errorf("invalid Kinesis stream ARN %q (want %s)", s, ARNShape)
	}
	return ARN{Partition: p[1], Region: p[3], Account: p[4], Name: p[5][len("stream/"):]}, nil
}

// New returns a Stream for o.Name (or o.ARN's name), reading the stream's
// largest record once (DescribeStreamSummary, which also proves that the
// stream exists).
func New(ctx context.Context, o Options) (*Stream, error) {
	if o.Client == nil {
		return nil, errors.New("kinesis: no client")
	}
	name := o.Name
	if name == "" {
		if o.ARN == "" {
			return nil, errors.New("kinesis: no stream name or ARN")
		}
		a, err := ParseARN(o.ARN)
		if err != nil {
			return nil, err
		}
		name = a.Name
	}
	out, err := o.Client.DescribeStreamSummary(ctx, &awskinesis.DescribeStreamSummaryInput{StreamName: &name})
	if err != nil {
		return nil, fmt.Errorf("describe Kinesis stream %s: %w", name, err)
	}
	maxBytes := DefaultMaxRecordBytes
	if d := out.StreamDescriptionSummary; d != nil && d.MaxRecordSizeInKiB != nil && *d.MaxRecordSizeInKiB > 0 {
		maxBytes = int(*d.MaxRecordSizeInKiB) << 10
	}
	n := o.BatchAttempts
	if n <= 0 {
		n = 5
	}
	return &Stream{c: o.Client, name: name, maxBytes: maxBytes, attempts: n}, nil
}

// Name returns the stream's name.
func (s *Stream) Name() string { return s.name }

// MaxRecordBytes returns the stream's largest record (partition key and
// data together), as read in New.
func (s *Stream) MaxRecordBytes() int { return s.maxBytes }

// MaxMessageBytes is the largest payload Send takes: the largest record
// less room for the longest partition key.
func (s *Stream) MaxMessageBytes() int { return s.maxBytes - maxKeyBytes }

func (s *Stream) check(m engine.OutMessage) error {
	if m.Delay > 0 {
		return fmt.Errorf("kinesis: stream %s cannot delay a record (%s): retries go to a retry table or SQS", s.name, m.Delay)
	}
	if m.Key == "" {
		return fmt.Errorf("kinesis: message for stream %s has no key (the correlation id is the partition key)", s.name)
	}
	if len(m.Key) > maxKeyBytes {
		return fmt.Errorf("kinesis: partition key of %d bytes is longer than Kinesis's %d", len(m.Key), maxKeyBytes)
	}
	if n := len(m.Key) + len(m.Payload); n > s.maxBytes {
		return fmt.Errorf("kinesis: record of %d bytes is larger than stream %s's limit of %d bytes", n, s.name, s.maxBytes)
	}
	return nil
}

// Send implements engine.Queue with PutRecord, partition key m.Key; the
// receipt is SHARD/SEQUENCE.
func (s *Stream) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if err := s.check(m); err != nil {
		return "", err
	}
	out, err := s.c.PutRecord(ctx, &awskinesis.PutRecordInput{StreamName: &s.name, PartitionKey: aws.String(m.Key), Data: m.Payload})
	if err != nil {
		return "", fmt.Errorf("put record to Kinesis stream %s: %w", s.name, err)
	}
	return aws.ToString(out.ShardId) + "/" + aws.ToString(out.SequenceNumber), nil
}

// BatchError names the messages of a SendBatch that stayed unsent.
type BatchError = sendbatch.Error

// SendBatch sends ms in PutRecords calls (at most 500 records and 5 MiB
// each), retrying the entries Kinesis reports failed (ErrorCode set: a
// throttled shard or an internal failure; the call itself succeeds) up to
// the stream's BatchAttempts, with a growing pause. A message that can
// never be sent (too large, no key) is not sent and fails at once. It
// returns a receipt per message (empty where it failed) and a *BatchError
// naming the messages not sent, or the call's error.
func (s *Stream) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	receipts := make([]string, len(ms))
	failed := map[int]error{}
	var pending []int
	for i, m := range ms {
		if err := s.check(m); err != nil {
			failed[i] = err
			continue
		}
		pending = append(pending, i)
	}
	for attempt := 0; len(pending) > 0 && attempt < s.attempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, time.Duration(attempt)*100*time.Millisecond); err != nil {
				return receipts, err
			}
		}
		var next []int
		for len(pending) > 0 {
			chunk, size := 0, 0
			for chunk < len(pending) && chunk < MaxBatch {
				m := ms[pending[chunk]]
				if n := len(m.Key) + len(m.Payload); chunk > 0 && size+n > maxBatchBytes {
					break
				} else {
					size += n
				}
				chunk++
			}
			idx := pending[:chunk]
			pending = pending[chunk:]
			entries := make([]types.PutRecordsRequestEntry, len(idx))
			for j, i := range idx {
				entries[j] = types.PutRecordsRequestEntry{PartitionKey: aws.String(ms[i].Key), Data: ms[i].Payload}
			}
			out, err := s.c.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: &s.name, Records: entries})
			if err != nil {
				return receipts, fmt.Errorf("put records to Kinesis stream %s: %w", s.name, err)
			}
			// Results are in request order, one per entry.
			for j, r := range out.Records {
				if j >= len(idx) {
					break
				}
				i := idx[j]
				if r.ErrorCode != nil {
					failed[i] = fmt.Errorf("%s: %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
					next = append(next, i)
					continue
				}
				delete(failed, i)
				receipts[i] = aws.ToString(r.ShardId) + "/" + aws.ToString(r.SequenceNumber)
			}
			for _, i := range idx[min(len(out.Records), len(idx)):] {
				failed[i] = errors.New("no result for the record")
				next = append(next, i)
			}
		}
		pending = next
	}
	if len(failed) > 0 {
		return receipts, &BatchError{Op: "put records to Kinesis stream " + s.name, Failed: failed}
	}
	return receipts, nil
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

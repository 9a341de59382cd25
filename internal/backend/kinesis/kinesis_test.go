package kinesis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/engine"
)

// newStream creates a stream of shards on kinesalite, waits until it is
// active and returns the client and its ARN.
func newStream(t *testing.T, m *awsconfig.Meter, shards int32) (*awskinesis.Client, string) {
	t.Helper()
	c := awskinesis.NewFromConfig(awstest.Config(t, "KINESIS", m))
	name := awstest.Name("lfsm-kinesis-test")
	if _, err := c.CreateStream(t.Context(), &awskinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteStream(context.WithoutCancel(t.Context()), &awskinesis.DeleteStreamInput{StreamName: &name})
	})
	w := awskinesis.NewStreamExistsWaiter(c, func(o *awskinesis.StreamExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond })
	out, err := w.WaitForOutput(t.Context(), &awskinesis.DescribeStreamInput{StreamName: &name}, 30*time.Second)
	if err != nil {
		t.Fatalf("stream %s not active: %v", name, err)
	}
	if m != nil {
		m.Reset()
	}
	return c, aws.ToString(out.StreamDescription.StreamARN)
}

func TestSendByARN(t *testing.T) {
	m := &awsconfig.Meter{}
	c, arn := newStream(t, m, 1)
	s, err := kinesis.New(t.Context(), kinesis.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.MaxRecordBytes(); got != kinesis.DefaultMaxRecordBytes {
		t.Errorf("MaxRecordBytes = %d, want %d (kinesalite does not say)", got, kinesis.DefaultMaxRecordBytes)
	}
	r, err := s.Send(t.Context(), engine.OutMessage{Key: "c1", Payload: []byte(`{"version":"0.1"}`)})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !strings.HasPrefix(r, "shardId-") || !strings.Contains(r, "/") {
		t.Errorf("receipt %q, want SHARD/SEQUENCE", r)
	}
	if diff := cmp.Diff([]string{"Kinesis.DescribeStreamSummary", "Kinesis.PutRecord"}, m.Ops()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if n := m.Usage()["Kinesis.PutRecord"].Calls; n != 1 {
		t.Errorf("PutRecord calls %d, want 1", n)
	}
	got := readAll(t, c, arn, 1)
	if diff := cmp.Diff([]string{"c1=" + `{"version":"0.1"}`}, got); diff != "" {
		t.Errorf("stream holds (-want +got):\n%s", diff)
	}
}

func TestSendRefuses(t *testing.T) {
	c, arn := newStream(t, nil, 1)
	s, err := kinesis.New(t.Context(), kinesis.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]engine.OutMessage{
		"delay":     {Key: "c", Payload: []byte("x"), Delay: time.Second},
		"no key":    {Payload: []byte("x")},
		"too large": {Key: "c", Payload: make([]byte, kinesis.DefaultMaxRecordBytes)},
	} {
		if _, err := s.Send(t.Context(), m); err == nil {
			t.Errorf("%s: Send succeeded", name)
		}
	}
	if s.MaxMessageBytes() >= s.MaxRecordBytes() || s.MaxMessageBytes() < s.MaxRecordBytes()-256 {
		t.Errorf("MaxMessageBytes %d, want the record limit %d less the key's room", s.MaxMessageBytes(), s.MaxRecordBytes())
	}
	if got := readAll(t, c, arn, 0); len(got) != 0 {
		t.Errorf("refused sends reached the stream: %q", got)
	}
	if _, err := kinesis.New(t.Context(), kinesis.Options{Client: c, Name: "lfsm-no-such-stream"}); err == nil {
		t.Error("New of a missing stream succeeded")
	}
}

// summary answers DescribeStreamSummary with a raised record limit, as AWS
// does for a stream whose MaxRecordSizeInKiB was raised (kinesalite has no
// such setting); the rest goes to the emulator.
type summary struct {
	kinesis.API
	kib int32
}

func (s summary) DescribeStreamSummary(ctx context.Context, in *awskinesis.DescribeStreamSummaryInput, opts ...func(*awskinesis.Options)) (*awskinesis.DescribeStreamSummaryOutput, error) {
	out, err := s.API.DescribeStreamSummary(ctx, in, opts...)
	if err == nil {
		out.StreamDescriptionSummary.MaxRecordSizeInKiB = aws.Int32(s.kib)
	}
	return out, err
}

func TestMaxRecordSizeRead(t *testing.T) {
	c, arn := newStream(t, nil, 1)
	s, err := kinesis.New(t.Context(), kinesis.Options{Client: summary{c, 10 << 10}, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.MaxRecordBytes(); got != 10<<20 {
		t.Errorf("MaxRecordBytes = %d, want 10 MiB", got)
	}
}

// flaky fails the odd entries of its first calls, as Kinesis does when it
// throttles a shard (ErrorCode set in the result, the call succeeds); the
// others go to the emulator.
type flaky struct {
	kinesis.API
	mu    sync.Mutex
	fails int
	calls int
}

func (f *flaky) PutRecords(ctx context.Context, in *awskinesis.PutRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if !fail {
		return f.API.PutRecords(ctx, in, opts...)
	}
	var keep []types.PutRecordsRequestEntry
	for i, e := range in.Records {
		if i%2 == 0 {
			keep = append(keep, e)
		}
	}
	sent, err := f.API.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: in.StreamName, Records: keep}, opts...)
	if err != nil {
		return nil, err
	}
	out := &awskinesis.PutRecordsOutput{}
	for i := range in.Records {
		if i%2 == 0 {
			out.Records = append(out.Records, sent.Records[i/2])
			continue
		}
		out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
		out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String("ProvisionedThroughputExceededException"), ErrorMessage: aws.String("injected")})
	}
	return out, nil
}

func TestSendBatchRetriesFailedEntries(t *testing.T) {
	c, arn := newStream(t, nil, 2)
	f := &flaky{API: c, fails: 2}
	s, err := kinesis.New(t.Context(), kinesis.Options{Client: f, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	var ms []engine.OutMessage
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("c%02d", i)
		ms = append(ms, engine.OutMessage{Key: k, Payload: []byte("m")})
		want = append(want, k+"=m")
	}
	receipts, err := s.SendBatch(t.Context(), ms)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	for i, r := range receipts {
		if r == "" {
			t.Errorf("receipt %d empty", i)
		}
	}
	if f.calls != 3 { // all 25, then the 12 odd ones, then the 6 odd ones of those
		t.Errorf("PutRecords calls = %d, want 3", f.calls)
	}
	got := readAll(t, c, arn, len(want))
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stream holds (-want +got), each once:\n%s", diff)
	}

	s, _ = kinesis.New(t.Context(), kinesis.Options{Client: refuse{c, "b"}, ARN: arn, BatchAttempts: 2})
	_, err = s.SendBatch(t.Context(), []engine.OutMessage{{Key: "a", Payload: []byte("m")}, {Key: "b", Payload: []byte("m")}, {Key: "c", Payload: []byte("m")}})
	var be *kinesis.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[1] == nil {
		t.Errorf("SendBatch with an entry that always fails = %v, want a *BatchError naming message 1", err)
	}
}

// refuse fails every entry whose partition key is key (a shard that stays
// throttled).
type refuse struct {
	kinesis.API
	key string
}

func (f refuse) PutRecords(ctx context.Context, in *awskinesis.PutRecordsInput, opts ...func(*awskinesis.Options)) (*awskinesis.PutRecordsOutput, error) {
	out := &awskinesis.PutRecordsOutput{}
	for _, e := range in.Records {
		if aws.ToString(e.PartitionKey) == f.key {
			out.Records = append(out.Records, types.PutRecordsResultEntry{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("injected")})
			continue
		}
		r, err := f.API.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: in.StreamName, Records: []types.PutRecordsRequestEntry{e}}, opts...)
		if err != nil {
			return nil, err
		}
		out.Records = append(out.Records, r.Records[0])
	}
	return out, nil
}

// invoker is the function of the Reader's tests: it records each batch and
// fails as told.
type invoker struct {
	mu      sync.Mutex
	batches [][]string // partition key=data per record
	// fail, if set, returns the sequence number to report, or an error.
	fail func(n int, recs []events.KinesisEventRecord) (string, error)
}

func (iv *invoker) Invoke(_ context.Context, event []byte) ([]byte, error) {
	var ev events.KinesisEvent
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, err
	}
	iv.mu.Lock()
	n := len(iv.batches)
	var b []string
	for _, r := range ev.Records {
		if r.EventSource != "aws:kinesis" || r.EventSourceArn == "" {
			return nil, fmt.Errorf("record without its source: %+v", r)
		}
		b = append(b, r.Kinesis.PartitionKey+"="+string(r.Kinesis.Data))
	}
	iv.batches = append(iv.batches, b)
	iv.mu.Unlock()
	if iv.fail != nil {
		seq, err := iv.fail(n, ev.Records)
		if err != nil {
			return nil, err
		}
		if seq != "" {
			return json.Marshal(events.KinesisEventResponse{BatchItemFailures: []events.KinesisBatchItemFailure{{ItemIdentifier: seq}}})
		}
	}
	return []byte(`{"batchItemFailures":[]}`), nil
}

// readAll reads the stream with a Reader until want records were delivered.
func readAll(t *testing.T, c *awskinesis.Client, arn string, want int) []string {
	t.Helper()
	iv := &invoker{}
	r, err := kinesis.NewReader(kinesis.ReaderOptions{Client: c, ARN: arn, Invoker: iv})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 + want {
		if _, err := r.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		got = nil
		for _, b := range iv.batches {
			got = append(got, b...)
		}
		if len(got) >= want && want > 0 {
			break
		}
	}
	return got
}

// The reader hands each shard's records over in order, one batch at a
// time; a reported failure resumes the shard from that record (those before
// it are not handed over again), and a function error repeats the batch.
func TestReaderResumesFromReportedFailure(t *testing.T) {
	c, arn := newStream(t, nil, 1)
	s, err := kinesis.New(t.Context(), kinesis.Options{Client: c, ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	var ms []engine.OutMessage
	for i := range 12 {
		ms = append(ms, engine.OutMessage{Key: fmt.Sprintf("k%d", i%3), Payload: fmt.Appendf(nil, "%02d", i)})
	}
	if _, err := s.SendBatch(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	iv := &invoker{fail: func(n int, recs []events.KinesisEventRecord) (string, error) {
		switch n {
		case 0:
			return recs[4].Kinesis.SequenceNumber, nil // 00..03 done, 04.. again
		case 1:
			return "", errors.New("function crashed") // the whole batch again
		}
		return "", nil
	}}
	r, err := kinesis.NewReader(kinesis.ReaderOptions{Client: c, ARN: arn, Invoker: iv, BatchSize: 5, Pause: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := r.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	rec := func(i int) string { return fmt.Sprintf("k%d=%02d", i%3, i) }
	want := [][]string{
		{rec(0), rec(1), rec(2), rec(3), rec(4)},
		{rec(4), rec(5), rec(6), rec(7), rec(8)},
		{rec(4), rec(5), rec(6), rec(7), rec(8)},
		{rec(9), rec(10), rec(11)},
	}
	if diff := cmp.Diff(want, iv.batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestReaderSkipsAfterMaxRetries(t *testing.T) {
	c, arn := newStream(t, nil, 1)
	s, _ := kinesis.New(t.Context(), kinesis.Options{Client: c, ARN: arn})
	if _, err := s.SendBatch(t.Context(), []engine.OutMessage{{Key: "a", Payload: []byte("1")}, {Key: "a", Payload: []byte("2")}}); err != nil {
		t.Fatal(err)
	}
	iv := &invoker{fail: func(n int, recs []events.KinesisEventRecord) (string, error) {
		if string(recs[0].Kinesis.Data) == "1" {
			return "", errors.New("poisoned")
		}
		return "", nil
	}}
	r, _ := kinesis.NewReader(kinesis.ReaderOptions{Client: c, ARN: arn, Invoker: iv, BatchSize: 1, MaxRetries: 2, Pause: time.Nanosecond})
	for range 8 {
		if _, err := r.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]string{{"a=1"}, {"a=1"}, {"a=1"}, {"a=2"}}
	if diff := cmp.Diff(want, iv.batches); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
}

func TestParseARN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want kinesis.ARN
	}{
		{"arn:aws:kinesis:eu-west-1:123456789012:stream/orders", kinesis.ARN{Partition: "aws", Region: "eu-west-1", Account: "123456789012", Name: "orders"}},
		{"arn:aws:kinesis:eu-west-1:123456789012:orders", kinesis.ARN{}},
		{"arn:aws:sqs:eu-west-1:123456789012:stream/orders", kinesis.ARN{}},
		{"arn:aws:kinesis:eu-west-1:123456789012:stream/", kinesis.ARN{}},
	} {
		got, err := kinesis.ParseARN(tc.in)
		if (err != nil) != (tc.want == kinesis.ARN{}) || got != tc.want {
			t.Errorf("ParseARN(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

package cloudwatch_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch/cwfake"
	"github.com/lfsm/lfsm/internal/engine"
)

// The tests run against cwfake, an httptest fake of CloudWatch: no
// CloudWatch emulator installs here (EMULATORS.md), and the fake decodes
// what the SDK really sends (rpc-v2-cbor, gzipped when large).

// client is a real SDK client of the fake, in us-east-1.
func client(t *testing.T, f *cwfake.Fake) *cw.Client { return regionClient(t, f, "us-east-1") }

// regionClient is a real SDK client of the fake in region (the fake tells
// regions apart by the requests' signatures).
func regionClient(t *testing.T, f *cwfake.Fake, region string) *cw.Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return cw.New(cw.Options{
		Region: region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		}),
	})
}

func newPublisher(t *testing.T, f *cwfake.Fake, o cloudwatch.Options) *cloudwatch.Publisher {
	t.Helper()
	o.Client = client(t, f)
	p, err := cloudwatch.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFlushBatches: what an invocation counted goes in one PutMetricData,
// summed per counter, with its dimensions; nothing counted makes no call.
func TestFlushBatches(t *testing.T) {
	f := cwfake.New(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := newPublisher(t, f, cloudwatch.Options{Clock: func() time.Time { return now }})
	if calls, err := p.Flush(t.Context()); calls != 0 || err != nil {
		t.Fatalf("empty Flush = %d calls, %v; want none", calls, err)
	}
	for range 3 {
		p.Add(engine.MetricKey{Name: engine.MetricDispatch, Machine: "Example", State: "A", Event: "go"}, 1)
	}
	p.Add(engine.MetricKey{Name: engine.MetricDuplicate, Machine: "Example"}, 2)
	p.Add(engine.MetricKey{Name: engine.MetricDone, Machine: "Example", State: "End"}, 1)
	calls, err := p.Flush(t.Context())
	if err != nil || calls != 1 {
		t.Fatalf("Flush = %d calls, %v; want 1", calls, err)
	}
	want := []cwfake.Call{{Region: "us-east-1", Namespace: "lfsm", Data: []cwfake.Datum{
		{Region: "us-east-1", Namespace: "lfsm", Name: "dispatch", Dimensions: "Machine=Example,State=A,Event=go", Value: 3, Unit: "Count", Timestamp: now},
		{Region: "us-east-1", Namespace: "lfsm", Name: "done", Dimensions: "Machine=Example,State=End", Value: 1, Unit: "Count", Timestamp: now},
		{Region: "us-east-1", Namespace: "lfsm", Name: "duplicate", Dimensions: "Machine=Example", Value: 2, Unit: "Count", Timestamp: now},
	}}}
	if d := cmp.Diff(want, f.Calls()); d != "" {
		t.Errorf("PutMetricData calls (-want +got):\n%s", d)
	}
	if calls, _ := p.Flush(t.Context()); calls != 0 {
		t.Errorf("second Flush made %d calls, want none (all sent)", calls)
	}
}

// TestFlushLimits: more distinct counters than one call takes make more
// calls, each within the limit (gzipped by the SDK at this size); with
// MaxCalls 1 the rest waits for the next Flush.
func TestFlushLimits(t *testing.T) {
	for _, tc := range []struct {
		maxCalls int
		want     [][]int // sizes of the calls of each of two flushes
	}{
		{0, [][]int{{cloudwatch.MaxPerCall, 5}, nil}},
		{1, [][]int{{cloudwatch.MaxPerCall}, {5}}},
	} {
		t.Run(fmt.Sprint("max-calls-", tc.maxCalls), func(t *testing.T) {
			f := cwfake.New(t)
			p := newPublisher(t, f, cloudwatch.Options{MaxCalls: tc.maxCalls})
			for i := range cloudwatch.MaxPerCall + 5 {
				p.Add(engine.MetricKey{Name: engine.MetricDispatch, Machine: "M", State: fmt.Sprintf("S%04d", i)}, 1)
			}
			var got [][]int
			for range 2 {
				before := len(f.Calls())
				calls, err := p.Flush(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				var sizes []int
				for _, c := range f.Calls()[before:] {
					sizes = append(sizes, len(c.Data))
				}
				if calls != len(sizes) {
					t.Errorf("Flush said %d calls, the fake got %d", calls, len(sizes))
				}
				got = append(got, sizes)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("call sizes per flush (-want +got):\n%s", d)
			}
			if s := f.Sums(); len(s) != cloudwatch.MaxPerCall+5 {
				t.Errorf("%d distinct metrics stored, want %d (none lost, none twice)", len(s), cloudwatch.MaxPerCall+5)
			}
		})
	}
}

// TestFlushFailureKeeps: a failed call's counters go with the next Flush.
func TestFlushFailureKeeps(t *testing.T) {
	f := cwfake.New(t)
	f.Fail(1)
	p := newPublisher(t, f, cloudwatch.Options{})
	p.Add(engine.MetricKey{Name: engine.MetricError, Machine: "M"}, 4)
	if _, err := p.Flush(t.Context()); err == nil || !strings.Contains(err.Error(), "put 1 metrics in namespace lfsm") {
		t.Fatalf("Flush against a failing CloudWatch = %v, want an error naming the call", err)
	}
	p.Add(engine.MetricKey{Name: engine.MetricError, Machine: "M"}, 1)
	if _, err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 2 || !calls[0].Failed || calls[1].Failed || !slices.EqualFunc(calls[1].Data, []cwfake.Datum{{Value: 5}},
		func(a, b cwfake.Datum) bool { return a.Value == b.Value }) {
		t.Errorf("after a failure, sent %+v; want a failed call, then one datum of 5", calls)
	}
}

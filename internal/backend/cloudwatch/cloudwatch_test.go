package cloudwatch_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go/encoding/cbor"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/engine"
)

// datum is one metric datum as the fake decoded it from the wire.
type datum struct {
	Name       string
	Dimensions string // Name=Value,... in the order sent
	Value      float64
	Unit       string
	Timestamp  time.Time
}

// call is one PutMetricData the fake received.
type call struct {
	Namespace string
	Data      []datum
}

// fakeCloudWatch is a fake of CloudWatch's PutMetricData: no emulator of
// CloudWatch installs here (EMULATORS.md), so this httptest server decodes
// what the SDK really sends, the Smithy RPC v2 CBOR protocol (POST
// /service/GraniteServiceVersion20100801/operation/PutMetricData, header
// Smithy-Protocol: rpc-v2-cbor, a CBOR map body, gzipped when large), and answers as
// CloudWatch does: an empty CBOR map, or a CBOR error document.
type fakeCloudWatch struct {
	t    *testing.T
	mu   sync.Mutex
	fail int // calls left to fail with a 500
	got  []call
}

func (f *fakeCloudWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/service/GraniteServiceVersion20100801/operation/PutMetricData" {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if p := r.Header.Get("Smithy-Protocol"); p != "rpc-v2-cbor" {
		f.t.Errorf("Smithy-Protocol %q, want rpc-v2-cbor", p)
	}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		// PutMetricData is modelled with request compression: the SDK
		// gzips bodies of 10 KiB or more.
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			f.t.Errorf("gunzip the body: %v", err)
			return
		}
		rd = zr
	}
	body, _ := io.ReadAll(rd)
	v, err := cbor.Decode(body)
	if err != nil {
		f.t.Errorf("decode the CBOR body: %v", err)
		return
	}
	c, err := decodeCall(v)
	if err != nil {
		f.t.Errorf("decode PutMetricData: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	if f.fail > 0 {
		f.fail--
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String("InternalServiceFault"), "message": cbor.String("try later")}))
		return
	}
	f.got = append(f.got, c)
	_, _ = w.Write(cbor.Encode(cbor.Map{}))
}

func decodeCall(v cbor.Value) (call, error) {
	m, ok := v.(cbor.Map)
	if !ok {
		return call{}, fmt.Errorf("body is %T, not a map", v)
	}
	var c call
	ns, _ := m["Namespace"].(cbor.String)
	c.Namespace = string(ns)
	list, ok := m["MetricData"].(cbor.List)
	if !ok {
		return c, fmt.Errorf("MetricData is %T", m["MetricData"])
	}
	for _, e := range list {
		dm, ok := e.(cbor.Map)
		if !ok {
			return c, fmt.Errorf("datum is %T", e)
		}
		var d datum
		name, _ := dm["MetricName"].(cbor.String)
		unit, _ := dm["Unit"].(cbor.String)
		d.Name, d.Unit = string(name), string(unit)
		var err error
		if d.Value, err = cbor.AsFloat64(dm["Value"]); err != nil {
			return c, fmt.Errorf("Value: %w", err)
		}
		if d.Timestamp, err = cbor.AsTime(dm["Timestamp"]); err != nil {
			return c, fmt.Errorf("Timestamp: %w", err)
		}
		var dims []string
		if dl, ok := dm["Dimensions"].(cbor.List); ok {
			for _, x := range dl {
				xm := x.(cbor.Map)
				n, _ := xm["Name"].(cbor.String)
				val, _ := xm["Value"].(cbor.String)
				dims = append(dims, string(n)+"="+string(val))
			}
		}
		d.Dimensions = strings.Join(dims, ",")
		c.Data = append(c.Data, d)
	}
	return c, nil
}

func newPublisher(t *testing.T, f *fakeCloudWatch, now time.Time) *cloudwatch.Publisher {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := cw.New(cw.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		}),
	})
	p, err := cloudwatch.New(cloudwatch.Options{Client: c, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFlushBatches: what an invocation counted goes in one PutMetricData,
// summed per counter, with its dimensions; nothing counted makes no call.
func TestFlushBatches(t *testing.T) {
	f := &fakeCloudWatch{t: t}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := newPublisher(t, f, now)
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
	want := []call{{Namespace: "lfsm", Data: []datum{
		{Name: "dispatch", Dimensions: "Machine=Example,State=A,Event=go", Value: 3, Unit: "Count", Timestamp: now},
		{Name: "done", Dimensions: "Machine=Example,State=End", Value: 1, Unit: "Count", Timestamp: now},
		{Name: "duplicate", Dimensions: "Machine=Example", Value: 2, Unit: "Count", Timestamp: now},
	}}}
	if d := cmp.Diff(want, f.got); d != "" {
		t.Errorf("PutMetricData calls (-want +got):\n%s", d)
	}
	if calls, _ := p.Flush(t.Context()); calls != 0 {
		t.Errorf("second Flush made %d calls, want none (all sent)", calls)
	}
}

// TestFlushLimits: more distinct counters than one call takes make more
// calls, each within the limit.
func TestFlushLimits(t *testing.T) {
	f := &fakeCloudWatch{t: t}
	p := newPublisher(t, f, time.Now())
	for i := range cloudwatch.MaxPerCall + 5 {
		p.Add(engine.MetricKey{Name: engine.MetricDispatch, Machine: "M", State: fmt.Sprintf("S%04d", i)}, 1)
	}
	calls, err := p.Flush(t.Context())
	if err != nil || calls != 2 {
		t.Fatalf("Flush = %d calls, %v; want 2", calls, err)
	}
	if len(f.got) != 2 {
		t.Fatalf("the fake decoded %d calls, want 2", len(f.got))
	}
	sizes := []int{len(f.got[0].Data), len(f.got[1].Data)}
	if !slices.Equal(sizes, []int{cloudwatch.MaxPerCall, 5}) {
		t.Errorf("call sizes %v, want [%d 5]", sizes, cloudwatch.MaxPerCall)
	}
}

// TestFlushFailureKeeps: a failed call's counters go with the next Flush.
func TestFlushFailureKeeps(t *testing.T) {
	f := &fakeCloudWatch{t: t, fail: 1}
	p := newPublisher(t, f, time.Now())
	p.Add(engine.MetricKey{Name: engine.MetricError, Machine: "M"}, 4)
	if _, err := p.Flush(t.Context()); err == nil || !strings.Contains(err.Error(), "put 1 metrics in namespace lfsm") {
		t.Fatalf("Flush against a failing CloudWatch = %v, want an error naming the call", err)
	}
	p.Add(engine.MetricKey{Name: engine.MetricError, Machine: "M"}, 1)
	if _, err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 1 || f.got[0].Data[0].Value != 5 {
		t.Errorf("after a failure, sent %+v; want one datum of 5", f.got)
	}
}

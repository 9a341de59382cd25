// Package cwfake is a fake of CloudWatch's metrics API for tests, served
// over HTTP in the protocol the AWS SDK speaks to CloudWatch: Smithy RPC v2
// CBOR (POST /service/GraniteServiceVersion20100801/operation/NAME, header
// Smithy-Protocol: rpc-v2-cbor, a CBOR map body, gzipped when the SDK
// compresses it). No CloudWatch emulator exists that runs here (see
// EMULATORS.md), so the publisher and `lfsm metrics --target aws` are
// tested against this fake, which decodes exactly what the SDK sends and
// answers as CloudWatch does (a CBOR map, or a CBOR error document).
//
// It keeps state: PutMetricData stores its data points, ListMetrics lists
// the distinct metrics (namespace, name, dimensions) in pages, and
// GetMetricData sums the points of MetricStat queries (Stat Sum only) per
// period from StartTime, paged by NextToken as CloudWatch pages it. Like
// CloudWatch it is regional: each request's region is read from its
// signature's credential scope, and a region sees only its own points, so
// one fake serves a primary and a secondary region.
package cwfake

import (
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Datum is one data point as the fake decoded it from PutMetricData.
type Datum struct {
	// Region is the region the call was signed for.
	Region     string
	Namespace  string
	Name       string
	Dimensions string // Name=Value,... in the order sent
	Value      float64
	Unit       string
	Timestamp  time.Time
}

// Call is one PutMetricData the fake received (also those it failed).
type Call struct {
	Region    string
	Namespace string
	Data      []Datum
	// Failed says the fake answered it with an error.
	Failed bool
}

// Fake is the fake's state. Serve it with httptest.NewServer.
type Fake struct {
	t testing.TB

	mu     sync.Mutex
	fail   map[string]int // by region ("": any); calls left to fail, <0: every call
	calls  []Call
	ops    []string
	points []Datum

	// PageSize is how many entries ListMetrics and GetMetricData return
	// per page (CloudWatch: 500; smaller in tests to make callers page).
	PageSize int
}

// New returns an empty fake that reports what it cannot decode to t.
func New(t testing.TB) *Fake { return &Fake{t: t, PageSize: 500, fail: map[string]int{}} }

// Fail makes the next n calls fail with a 500 InternalServiceFault; n < 0
// makes every call fail until Fail(0).
func (f *Fake) Fail(n int) { f.FailRegion("", n) }

// FailRegion is Fail for the calls to one region only (an outage there).
func (f *Fake) FailRegion(region string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[region] = n
}

// RegionSums is the sum of the stored points of region per "namespace name
// dimensions".
func (f *Fake) RegionSums(region string) map[string]float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]float64{}
	for _, p := range f.points {
		if p.Region == region {
			out[p.Namespace+" "+p.Name+" "+p.Dimensions] += p.Value
		}
	}
	return out
}

// region is the region of a request, from its SigV4 credential scope
// (Credential=KEY/DATE/REGION/monitoring/aws4_request).
func region(r *http.Request) string {
	_, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	if !ok {
		return ""
	}
	parts := strings.Split(cred, "/")
	if len(parts) < 4 {
		return ""
	}
	return parts[2]
}

// Calls lists the PutMetricData calls received, in order.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Ops lists every operation received, in order.
func (f *Fake) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

// Sums is the sum of the stored points per "namespace name dimensions",
// over every region.
func (f *Fake) Sums() map[string]float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]float64{}
	for _, p := range f.points {
		out[p.Namespace+" "+p.Name+" "+p.Dimensions] += p.Value
	}
	return out
}

// Put stores data points as if PutMetricData had sent them (each in its
// Region).
func (f *Fake) Put(ds ...Datum) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.points = append(f.points, ds...)
}

const pathPrefix = "/service/GraniteServiceVersion20100801/operation/"

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.URL.Path, pathPrefix)
	if r.Method != http.MethodPost || !ok {
		f.t.Errorf("cwfake: unexpected request %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
		return
	}
	if p := r.Header.Get("Smithy-Protocol"); p != "rpc-v2-cbor" {
		f.t.Errorf("cwfake: Smithy-Protocol %q, want rpc-v2-cbor", p)
	}
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		// PutMetricData is modelled with request compression: the SDK
		// gzips bodies of 10 KiB or more.
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			f.t.Errorf("cwfake: gunzip the body: %v", err)
			f.fault(w, http.StatusBadRequest, "SerializationException", err.Error())
			return
		}
		rd = zr
	}
	body, _ := io.ReadAll(rd)
	v, err := cbor.Decode(body)
	if err != nil {
		f.t.Errorf("cwfake: decode the CBOR body of %s: %v", op, err)
		f.fault(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	in, ok := v.(cbor.Map)
	if !ok {
		f.t.Errorf("cwfake: %s body is %T, not a map", op, v)
		f.fault(w, http.StatusBadRequest, "SerializationException", "not a map")
		return
	}
	reg := region(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op)
	failing := false
	for _, k := range []string{"", reg} {
		if n := f.fail[k]; n != 0 {
			failing = true
			if n > 0 {
				f.fail[k] = n - 1
			}
			break
		}
	}
	var out cbor.Map
	switch op {
	case "PutMetricData":
		c, err := decodePut(in, reg)
		if err != nil {
			f.t.Errorf("cwfake: decode PutMetricData: %v", err)
		}
		c.Failed = failing
		f.calls = append(f.calls, c)
		if !failing {
			f.points = append(f.points, c.Data...)
		}
		out = cbor.Map{}
	case "ListMetrics":
		out, err = f.listMetrics(in, reg)
	case "GetMetricData":
		out, err = f.getMetricData(in, reg)
	default:
		f.t.Errorf("cwfake: operation %s is not faked", op)
		f.fault(w, http.StatusBadRequest, "InvalidAction", op+" is not faked")
		return
	}
	if failing {
		f.fault(w, http.StatusInternalServerError, "InternalServiceFault", "try later")
		return
	}
	if err != nil {
		f.t.Errorf("cwfake: %s: %v", op, err)
		f.fault(w, http.StatusBadRequest, "InvalidParameterValue", err.Error())
		return
	}
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(cbor.Encode(out))
}

func (f *Fake) fault(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.WriteHeader(status)
	_, _ = w.Write(cbor.Encode(cbor.Map{"__type": cbor.String(typ), "message": cbor.String(msg)}))
}

func str(v cbor.Value) string {
	s, _ := v.(cbor.String)
	return string(s)
}

// dims decodes a Dimensions list as Name=Value,...
func dims(v cbor.Value) (string, error) {
	if v == nil {
		return "", nil
	}
	dl, ok := v.(cbor.List)
	if !ok {
		return "", fmt.Errorf("Dimensions is %T", v)
	}
	var ds []string
	for _, x := range dl {
		xm, ok := x.(cbor.Map)
		if !ok {
			return "", fmt.Errorf("dimension is %T", x)
		}
		ds = append(ds, str(xm["Name"])+"="+str(xm["Value"]))
	}
	return strings.Join(ds, ","), nil
}

func decodePut(m cbor.Map, region string) (Call, error) {
	c := Call{Region: region, Namespace: str(m["Namespace"])}
	list, ok := m["MetricData"].(cbor.List)
	if !ok {
		return c, fmt.Errorf("MetricData is %T", m["MetricData"])
	}
	for _, e := range list {
		dm, ok := e.(cbor.Map)
		if !ok {
			return c, fmt.Errorf("datum is %T", e)
		}
		d := Datum{Region: region, Namespace: c.Namespace, Name: str(dm["MetricName"]), Unit: str(dm["Unit"])}
		var err error
		if d.Value, err = cbor.AsFloat64(dm["Value"]); err != nil {
			return c, fmt.Errorf("Value: %w", err)
		}
		if d.Timestamp, err = cbor.AsTime(dm["Timestamp"]); err != nil {
			return c, fmt.Errorf("Timestamp: %w", err)
		}
		if d.Dimensions, err = dims(dm["Dimensions"]); err != nil {
			return c, err
		}
		c.Data = append(c.Data, d)
	}
	return c, nil
}

// metric is a distinct metric: namespace, name, dimensions.
type metric struct{ ns, name, dims string }

func dimList(s string) cbor.List {
	l := cbor.List{}
	if s == "" {
		return l
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		l = append(l, cbor.Map{"Name": cbor.String(k), "Value": cbor.String(v)})
	}
	return l
}

// page cuts list at the NextToken of in (an offset) and returns the next token.
func (f *Fake) page(in cbor.Map, n int) (from, to int, next string, err error) {
	if t := str(in["NextToken"]); t != "" {
		if from, err = strconv.Atoi(t); err != nil || from < 0 || from > n {
			return 0, 0, "", fmt.Errorf("bad NextToken %q", t)
		}
	}
	to = min(n, from+cmp.Or(f.PageSize, 500))
	if to < n {
		next = strconv.Itoa(to)
	}
	return from, to, next, nil
}

func (f *Fake) listMetrics(in cbor.Map, region string) (cbor.Map, error) {
	ns, name := str(in["Namespace"]), str(in["MetricName"])
	seen := map[metric]bool{}
	var ms []metric
	for _, p := range f.points {
		k := metric{p.Namespace, p.Name, p.Dimensions}
		if p.Region != region || (ns != "" && k.ns != ns) || (name != "" && k.name != name) || seen[k] {
			continue
		}
		seen[k] = true
		ms = append(ms, k)
	}
	slices.SortFunc(ms, func(a, b metric) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name), cmp.Compare(a.dims, b.dims))
	})
	from, to, next, err := f.page(in, len(ms))
	if err != nil {
		return nil, err
	}
	list := cbor.List{}
	for _, m := range ms[from:to] {
		list = append(list, cbor.Map{"Namespace": cbor.String(m.ns), "MetricName": cbor.String(m.name), "Dimensions": dimList(m.dims)})
	}
	out := cbor.Map{"Metrics": list}
	if next != "" {
		out["NextToken"] = cbor.String(next)
	}
	return out, nil
}

// MaxQueries is how many queries one GetMetricData takes (CloudWatch's limit).
const MaxQueries = 500

func epoch(t time.Time) cbor.Value {
	return &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.UnixMilli()) / 1e3)}
}

func (f *Fake) getMetricData(in cbor.Map, region string) (cbor.Map, error) {
	start, err := cbor.AsTime(in["StartTime"])
	if err != nil {
		return nil, fmt.Errorf("StartTime: %w", err)
	}
	end, err := cbor.AsTime(in["EndTime"])
	if err != nil {
		return nil, fmt.Errorf("EndTime: %w", err)
	}
	qs, ok := in["MetricDataQueries"].(cbor.List)
	if !ok || len(qs) == 0 || len(qs) > MaxQueries {
		return nil, fmt.Errorf("MetricDataQueries: want 1 to %d queries", MaxQueries)
	}
	type result struct {
		id     string
		times  []time.Time
		values []float64
	}
	var results []result
	for _, q := range qs {
		qm, ok := q.(cbor.Map)
		if !ok {
			return nil, fmt.Errorf("query is %T", q)
		}
		ms, ok := qm["MetricStat"].(cbor.Map)
		if !ok {
			return nil, fmt.Errorf("query %s: only MetricStat queries are faked", str(qm["Id"]))
		}
		if s := str(ms["Stat"]); s != "Sum" {
			return nil, fmt.Errorf("query %s: stat %q is not faked (only Sum)", str(qm["Id"]), s)
		}
		period, err := cbor.AsInt64(ms["Period"])
		if err != nil || period <= 0 || period%60 != 0 {
			return nil, fmt.Errorf("query %s: Period %v: want a multiple of 60 seconds", str(qm["Id"]), ms["Period"])
		}
		mm, _ := ms["Metric"].(cbor.Map)
		d, err := dims(mm["Dimensions"])
		if err != nil {
			return nil, err
		}
		k := metric{str(mm["Namespace"]), str(mm["MetricName"]), d}
		sums := map[int64]float64{}
		for _, p := range f.points {
			if p.Region != region || (metric{p.Namespace, p.Name, p.Dimensions}) != k || p.Timestamp.Before(start) || !p.Timestamp.Before(end) {
				continue
			}
			sums[int64(p.Timestamp.Sub(start)/time.Second)/period] += p.Value
		}
		r := result{id: str(qm["Id"])}
		// CloudWatch returns the newest first (ScanBy TimestampDescending).
		for _, b := range slices.Backward(slices.Sorted(maps.Keys(sums))) {
			r.times = append(r.times, start.Add(time.Duration(b*period)*time.Second))
			r.values = append(r.values, sums[b])
		}
		results = append(results, r)
	}
	from, to, next, err := f.page(in, len(results))
	if err != nil {
		return nil, err
	}
	list := cbor.List{}
	for _, r := range results[from:to] {
		ts, vs := cbor.List{}, cbor.List{}
		for i := range r.times {
			ts = append(ts, epoch(r.times[i]))
			vs = append(vs, cbor.Float64(r.values[i]))
		}
		list = append(list, cbor.Map{"Id": cbor.String(r.id), "Label": cbor.String(r.id), "StatusCode": cbor.String("Complete"),
			"Timestamps": ts, "Values": vs})
	}
	out := cbor.Map{"MetricDataResults": list, "Messages": cbor.List{}}
	if next != "" {
		out["NextToken"] = cbor.String(next)
	}
	return out, nil
}

package cloudwatch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch/cwfake"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestReadSumsWhatWasPublished: Read (lfsm metrics --target aws) finds what
// the Publisher sent with ListMetrics and sums it over the window with
// GetMetricData, paging both; points outside the window, of another
// namespace, with the EMF lines' dimensions (unless asked for) or of
// another machine (with Machine) are left out. cwfake is a fake because no
// CloudWatch emulator exists; it decodes what the SDK sends.
func TestReadSumsWhatWasPublished(t *testing.T) {
	f := cwfake.New(t)
	f.PageSize = 100 // ListMetrics and GetMetricData both page
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := now
	p := newPublisher(t, f, cloudwatch.Options{Namespace: "orders", Clock: func() time.Time { return at }})
	want := map[engine.MetricKey]int64{}
	add := func(k engine.MetricKey, n int64, inWindow bool) {
		p.Add(k, n)
		if inWindow {
			want[k] += n
		}
	}
	// Two invocations an hour apart, inside a 2h window, and one before it.
	for i, ago := range []time.Duration{3 * time.Hour, 90 * time.Minute, 10 * time.Minute} {
		at = now.Add(-ago)
		in := ago < 2*time.Hour
		add(engine.MetricKey{Name: engine.MetricDispatch, Machine: "Example", State: "FirstState", Event: "done"}, int64(10+i), in)
		add(engine.MetricKey{Name: engine.MetricRetry, Machine: "Example", State: "FirstState", Event: "done"}, 2, in)
		add(engine.MetricKey{Name: engine.MetricDropped, Machine: "Example"}, 1, in)
		add(engine.MetricKey{Name: engine.MetricDone, Machine: "Other", State: "End", Event: "pseudo_final"}, 3, in)
		if _, err := p.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	// More metrics than one GetMetricData takes.
	at = now.Add(-time.Minute)
	for i := range cloudwatch.MaxQueries + 3 {
		add(engine.MetricKey{Name: engine.MetricDispatch, Machine: "Wide", State: fmt.Sprintf("S%03d", i), Event: "go"}, 1, true)
	}
	if _, err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.Put(cwfake.Datum{Region: "us-east-1", Namespace: "lfsm", Name: "dispatch", Dimensions: "machine=Example,state=FirstState,event=done", Value: 99, Timestamp: at},
		cwfake.Datum{Region: "us-east-1", Namespace: "orders", Name: "dispatch", Dimensions: "machine=Example,state=FirstState,event=done", Value: 98, Timestamp: at},
		cwfake.Datum{Region: "us-east-1", Namespace: "orders", Name: "dispatch", Dimensions: "Machine=Example,FunctionName=f", Value: 97, Timestamp: at})

	c := client(t, f)
	got, u, err := cloudwatch.Read(t.Context(), c, cloudwatch.ReadOptions{Namespace: "orders", Start: now.Add(-2 * time.Hour), End: now})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("read (-published +read):\n%s", d)
	}
	if u.GetCalls < 2 || u.ListCalls < 2 || u.MetricsRequested != cloudwatch.MaxQueries+3+4 {
		t.Errorf("usage %+v: want paging of both calls, and %d metrics requested", u, cloudwatch.MaxQueries+3+4)
	}

	got, _, err = cloudwatch.Read(t.Context(), c, cloudwatch.ReadOptions{Namespace: "orders", Machine: "Other", Start: now.Add(-2 * time.Hour), End: now})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[engine.MetricKey]int64{{Name: engine.MetricDone, Machine: "Other", State: "End", Event: "pseudo_final"}: 6}, got); d != "" {
		t.Errorf("read of machine Other (-want +got):\n%s", d)
	}
	got, _, err = cloudwatch.Read(t.Context(), c, cloudwatch.ReadOptions{Dimensions: cloudwatch.EMFDimensions, Start: now.Add(-2 * time.Hour), End: now})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[engine.MetricKey]int64{{Name: engine.MetricDispatch, Machine: "Example", State: "FirstState", Event: "done"}: 99}, got); d != "" {
		t.Errorf("read of the EMF lines' metrics (-want +got):\n%s", d)
	}
	f.Fail(1)
	if _, _, err := cloudwatch.Read(t.Context(), c, cloudwatch.ReadOptions{Start: now.Add(-time.Hour), End: now}); err == nil {
		t.Error("Read against a failing CloudWatch: no error")
	}
}

package cloudwatch_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch/cwfake"
	"github.com/lfsm/lfsm/internal/backend/failover"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestFailoverToSecondaryRegion: the publisher's flushes through a
// Failover pair of regions (cwfake, a fake because no CloudWatch emulator
// exists; regional, from each request's signature). While the primary
// region fails every call, each batch lands in the secondary; after the
// threshold the primary is skipped (one failed call per cool-down, not
// per flush), and after the cool-down it takes the calls again. Summed
// over both regions, every counter arrived exactly once; and when both
// regions fail, the counts wait in the publisher for a flush that succeeds.
func TestFailoverToSecondaryRegion(t *testing.T) {
	const primary, secondary = "us-east-1", "us-west-2"
	f := cwfake.New(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	failovers := engine.NewCounters()
	pair := cloudwatch.NewFailover(regionClient(t, f, primary), regionClient(t, f, secondary),
		failover.Options{Threshold: 2, Cooldown: time.Minute, Clock: clock, Metrics: failovers})
	p, err := cloudwatch.New(cloudwatch.Options{Client: pair, Namespace: "orders", Clock: clock, MaxCalls: 1})
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	invocation := func(i int) {
		t.Helper()
		k := engine.MetricKey{Name: engine.MetricDispatch, Machine: "M", State: fmt.Sprintf("S%d", i%3), Event: "go"}
		p.Add(k, int64(i+1))
		counted[fmt.Sprintf("orders dispatch Machine=M,State=S%d,Event=go", i%3)] += float64(i + 1)
		if _, err := p.Flush(t.Context()); err != nil {
			t.Fatalf("flush %d: %v", i, err)
		}
		now = now.Add(10 * time.Second)
	}
	primaryCalls := func() (n int) {
		for _, c := range f.Calls() {
			if c.Region == primary {
				n++
			}
		}
		return n
	}

	f.FailRegion(primary, -1)
	for i := range 5 {
		invocation(i)
	}
	if n := primaryCalls(); n != 2 {
		t.Errorf("the failing primary was called %d times in 5 flushes, want 2 (the threshold, then skipped)", n)
	}
	if got := f.RegionSums(primary); len(got) != 0 {
		t.Errorf("the failing primary stored %v", got)
	}
	if n := failovers.Total(failover.MetricFailover); n != 5 {
		t.Errorf("failover counted %d, want 5 (every flush served by the secondary)", n)
	}

	// The primary recovers; after the cool-down it is probed and takes over.
	f.FailRegion(primary, 0)
	now = now.Add(time.Minute)
	before := len(f.RegionSums(secondary))
	for i := 5; i < 8; i++ {
		invocation(i)
	}
	if n := primaryCalls(); n != 5 {
		t.Errorf("primary calls %d after its recovery, want 2 failed + 3", n)
	}
	if len(f.RegionSums(primary)) == 0 || len(f.RegionSums(secondary)) != before {
		t.Errorf("after the cool-down the secondary still took calls: primary %v, secondary %v", f.RegionSums(primary), f.RegionSums(secondary))
	}

	// Both regions down: nothing is lost, the next good flush sends it.
	f.Fail(-1)
	p.Add(engine.MetricKey{Name: engine.MetricError, Machine: "M"}, 4)
	counted["orders error Machine=M"] += 4
	if _, err := p.Flush(t.Context()); err == nil {
		t.Error("a flush with both regions failing returned no error")
	}
	f.Fail(0)
	invocation(8)

	sum := f.RegionSums(primary)
	for k, v := range f.RegionSums(secondary) {
		sum[k] += v
	}
	if d := cmp.Diff(counted, sum); d != "" {
		t.Errorf("counters over both regions (-counted +stored): none lost, none twice\n%s", d)
	}
}

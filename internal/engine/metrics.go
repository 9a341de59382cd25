package engine

import (
	"maps"
	"sync"
)

// Counters is an in-memory Metrics: it sums counters per key. Safe for
// concurrent use.
type Counters struct {
	mu sync.Mutex
	m  map[MetricKey]int64
}

// NewCounters returns empty Counters.
func NewCounters() *Counters { return &Counters{m: map[MetricKey]int64{}} }

// Add implements Metrics.
func (c *Counters) Add(k MetricKey, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[MetricKey]int64{}
	}
	c.m[k] += n
	c.mu.Unlock()
}

// Snapshot returns a copy of every counter.
func (c *Counters) Snapshot() map[MetricKey]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := maps.Clone(c.m)
	if out == nil {
		out = map[MetricKey]int64{}
	}
	return out
}

// Total sums the counters named name over all dimensions.
func (c *Counters) Total(name string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for k, v := range c.m {
		if k.Name == name {
			n += v
		}
	}
	return n
}

// Tee returns a Metrics that adds every counter to each of ms (nil ones
// left out): the Lambda handler counts both into its EMF lines and into a
// PutMetricData publisher.
func Tee(ms ...Metrics) Metrics {
	var t tee
	for _, m := range ms {
		if m != nil {
			t = append(t, m)
		}
	}
	if len(t) == 1 {
		return t[0]
	}
	return t
}

type tee []Metrics

func (t tee) Add(k MetricKey, n int64) {
	for _, m := range t {
		m.Add(k, n)
	}
}

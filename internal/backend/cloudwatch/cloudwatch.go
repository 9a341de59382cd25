// Package cloudwatch publishes the engine's counters with PutMetricData:
// counted in memory as the invocation runs (engine.Metrics), sent in one
// batched call when it ends (Publisher.Flush). The EMF log lines need no
// call at all; this is for accounts that want the metrics without a log
// subscription. The Python framework made one call per transition (a
// bug); at $0.01 per thousand requests one call per invocation costs $10 per
// million invocations, whatever their batch size. See docs/design.md,
// "CloudWatch metrics".
package cloudwatch

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// MaxPerCall is how many metric data one PutMetricData takes (CloudWatch's
// limit): a Flush of more distinct counters makes more calls.
const MaxPerCall = 1000

// DefaultNamespace is the metrics' namespace when Options.Namespace is empty.
const DefaultNamespace = "lfsm"

// API is the part of the CloudWatch client the Publisher calls.
type API interface {
	PutMetricData(ctx context.Context, in *cw.PutMetricDataInput, opts ...func(*cw.Options)) (*cw.PutMetricDataOutput, error)
}

// Options configure a Publisher.
type Options struct {
	Client API
	// Namespace is the metrics' namespace (DefaultNamespace when empty).
	Namespace string
	// Clock stamps the data (time.Now when nil).
	Clock func() time.Time
	// MaxCalls bounds the calls one Flush makes (0: as many as its
	// counters need, MaxPerCall a call). The Lambda handler sets 1, so that
	// an invocation costs at most one call whatever it counted: counters
	// beyond the first MaxPerCall wait for the next flush.
	MaxCalls int
}

// Publisher is an engine.Metrics that aggregates counters until Flush. It
// is safe for concurrent use.
type Publisher struct {
	c        API
	ns       string
	clock    func() time.Time
	maxCalls int

	mu     sync.Mutex
	counts map[engine.MetricKey]int64
}

var _ engine.Metrics = (*Publisher)(nil)

// New returns a Publisher.
func New(o Options) (*Publisher, error) {
	if o.Client == nil {
		return nil, fmt.Errorf("cloudwatch metrics: no client")
	}
	p := &Publisher{c: o.Client, ns: cmp.Or(o.Namespace, DefaultNamespace), clock: o.Clock, maxCalls: o.MaxCalls, counts: map[engine.MetricKey]int64{}}
	if p.clock == nil {
		p.clock = time.Now
	}
	return p, nil
}

// Add implements engine.Metrics: it only counts.
func (p *Publisher) Add(k engine.MetricKey, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[k] += n
}

// Flush sends what was counted since the last Flush in as few calls as
// CloudWatch allows (one for up to MaxPerCall distinct counters, at most
// Options.MaxCalls) and returns how many it made; nothing counted makes
// none. Counters of a call that failed, and those beyond MaxCalls, are kept
// for the next Flush, so a failure loses nothing (a call whose response was
// lost may count them twice).
func (p *Publisher) Flush(ctx context.Context) (calls int, err error) {
	p.mu.Lock()
	counts := p.counts
	p.counts = map[engine.MetricKey]int64{}
	p.mu.Unlock()
	if len(counts) == 0 {
		return 0, nil
	}
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b engine.MetricKey) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Machine, b.Machine), cmp.Compare(a.State, b.State), cmp.Compare(a.Event, b.Event))
	})
	now := p.clock()
	for chunk := range slices.Chunk(keys, MaxPerCall) {
		if p.maxCalls > 0 && calls == p.maxCalls {
			p.keep(chunk, counts)
			continue
		}
		data := make([]types.MetricDatum, 0, len(chunk))
		for _, k := range chunk {
			data = append(data, types.MetricDatum{
				MetricName: aws.String(k.Name),
				Dimensions: dimensions(k),
				Value:      aws.Float64(float64(counts[k])),
				Unit:       types.StandardUnitCount,
				Timestamp:  aws.Time(now),
			})
		}
		_, cerr := p.c.PutMetricData(ctx, &cw.PutMetricDataInput{Namespace: aws.String(p.ns), MetricData: data})
		calls++
		if cerr != nil {
			p.keep(chunk, counts)
			err = cmp.Or(err, fmt.Errorf("put %d metrics in namespace %s: %w", len(chunk), p.ns, cerr))
		}
	}
	return calls, err
}

// keep puts the counts of keys back for the next Flush.
func (p *Publisher) keep(keys []engine.MetricKey, counts map[engine.MetricKey]int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		p.counts[k] += counts[k]
	}
}

// dimensions are a key's non-empty dimensions, in a fixed order.
func dimensions(k engine.MetricKey) []types.Dimension {
	var ds []types.Dimension
	for _, d := range [][2]string{{"Machine", k.Machine}, {"State", k.State}, {"Event", k.Event}} {
		if d[1] != "" {
			ds = append(ds, types.Dimension{Name: aws.String(d[0]), Value: aws.String(d[1])})
		}
	}
	return ds
}

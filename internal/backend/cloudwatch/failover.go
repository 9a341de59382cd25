package cloudwatch

import (
	"context"

	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/lfsm/lfsm/internal/backend/failover"
)

// Failover is an API that puts metric data through a primary client (the
// function's region) and, when that call fails, through a secondary (a
// secondary region, metrics.secondary-region), with internal/backend/
// failover's breaker: after Threshold consecutive failures the primary is
// skipped for Cooldown, then probed again. The Publisher sends each batch
// once through it, so a batch lands in one region; only a call that landed
// on the primary and whose response was lost is then also sent to the
// secondary, and counted in both.
type Failover struct {
	p, s API
	b    *failover.Breaker
}

var _ API = (*Failover)(nil)

// NewFailover pairs two clients; o configures the breaker (its Metrics
// count failover, Event PutMetricData, for each call the secondary serves).
func NewFailover(primary, secondary API, o failover.Options) *Failover {
	return &Failover{p: primary, s: secondary, b: failover.NewBreaker(o)}
}

// PutMetricData implements API.
func (f *Failover) PutMetricData(ctx context.Context, in *cw.PutMetricDataInput, opts ...func(*cw.Options)) (*cw.PutMetricDataOutput, error) {
	return failover.Call(ctx, f.b, "PutMetricData",
		func() (*cw.PutMetricDataOutput, error) { return f.p.PutMetricData(ctx, in, opts...) },
		func() (*cw.PutMetricDataOutput, error) { return f.s.PutMetricData(ctx, in, opts...) })
}

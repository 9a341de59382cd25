package failover

import "context"

// Breaker is the breaker of a pair for backends this package does not wrap
// (the CloudWatch publisher's primary and secondary region): Call runs an
// operation on the primary, else on the secondary, with the same threshold
// and cool-down as Queue and Retrier. It is safe for concurrent use.
type Breaker struct{ b *breaker }

// NewBreaker returns a closed breaker.
func NewBreaker(o Options) *Breaker { return &Breaker{newBreaker(o)} }

// Call runs primary unless b skips it (after Threshold consecutive
// failures, for Cooldown), and secondary when primary failed or was
// skipped; a cancelled call is not held against the primary. Each call the
// secondary serves counts MetricFailover with Event op. Both failing
// returns both errors.
func Call[T any](ctx context.Context, b *Breaker, op string, primary, secondary func() (T, error)) (T, error) {
	return call(ctx, b.b, op, primary, secondary)
}

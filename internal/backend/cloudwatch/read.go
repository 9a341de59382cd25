package cloudwatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// Dimension names of machine, state and event: the Publisher's, and the
// EMF lines' (internal/lambda), which CloudWatch keeps as other series.
var (
	PublisherDimensions = [3]string{"Machine", "State", "Event"}
	EMFDimensions       = [3]string{"machine", "state", "event"}
)

// EMFNamespace is the namespace of the EMF lines' metrics (lambda.Namespace).
const EMFNamespace = "lfsm"

// MaxQueries is how many metrics one GetMetricData takes (CloudWatch's limit).
const MaxQueries = 500

// ReadAPI is the part of the CloudWatch client Read calls.
type ReadAPI interface {
	ListMetrics(ctx context.Context, in *cw.ListMetricsInput, opts ...func(*cw.Options)) (*cw.ListMetricsOutput, error)
	GetMetricData(ctx context.Context, in *cw.GetMetricDataInput, opts ...func(*cw.Options)) (*cw.GetMetricDataOutput, error)
}

// ReadOptions say which metrics Read sums.
type ReadOptions struct {
	// Namespace is the metrics' namespace (DefaultNamespace when empty).
	Namespace string
	// Dimensions name machine, state and event (PublisherDimensions when
	// zero). Metrics with any other dimension are left out.
	Dimensions [3]string
	// Machine, when set, keeps only that machine's metrics.
	Machine string
	// Start and End bound the window [Start, End).
	Start, End time.Time
}

// ReadUsage is what a Read cost: CloudWatch bills ListMetrics per request
// and GetMetricData per metric requested ($0.01 per thousand each).
type ReadUsage struct {
	ListCalls        int `json:"list_calls"`
	GetCalls         int `json:"get_calls"`
	MetricsRequested int `json:"metrics_requested"`
}

// Read sums each counter of the namespace over the window: ListMetrics
// (paged) finds the metrics, GetMetricData (MaxQueries a call, paged) sums
// each with the statistic Sum over one period that covers the window.
// ListMetrics lists only metrics that had data in the last two weeks.
func Read(ctx context.Context, c ReadAPI, o ReadOptions) (map[engine.MetricKey]int64, ReadUsage, error) {
	var u ReadUsage
	ns := cmp.Or(o.Namespace, DefaultNamespace)
	dn := o.Dimensions
	if dn == ([3]string{}) {
		dn = PublisherDimensions
	}
	if !o.End.After(o.Start) {
		return nil, u, errors.New("read metrics: the window is empty (end not after start)")
	}
	period := windowPeriod(o.End.Sub(o.Start))
	var metrics []types.Metric
	var keys []engine.MetricKey
	var token *string
	for {
		out, err := c.ListMetrics(ctx, &cw.ListMetricsInput{Namespace: aws.String(ns), NextToken: token})
		u.ListCalls++
		if err != nil {
			return nil, u, fmt.Errorf("list metrics in namespace %s: %w", ns, err)
		}
		for _, m := range out.Metrics {
			k, ok := keyOf(m, dn)
			if !ok || (o.Machine != "" && k.Machine != o.Machine) {
				continue
			}
			metrics, keys = append(metrics, m), append(keys, k)
		}
		if token = out.NextToken; token == nil || *token == "" {
			break
		}
	}
	sums := map[engine.MetricKey]int64{}
	for from := 0; from < len(metrics); from += MaxQueries {
		to := min(len(metrics), from+MaxQueries)
		qs := make([]types.MetricDataQuery, 0, to-from)
		for i := from; i < to; i++ {
			qs = append(qs, types.MetricDataQuery{
				Id:         aws.String("m" + strconv.Itoa(i)),
				MetricStat: &types.MetricStat{Metric: &metrics[i], Period: aws.Int32(period), Stat: aws.String("Sum")},
				ReturnData: aws.Bool(true),
			})
		}
		u.MetricsRequested += len(qs)
		var token *string
		for {
			out, err := c.GetMetricData(ctx, &cw.GetMetricDataInput{MetricDataQueries: qs, StartTime: aws.Time(o.Start),
				EndTime: aws.Time(o.End), NextToken: token})
			u.GetCalls++
			if err != nil {
				return nil, u, fmt.Errorf("get %d metrics of namespace %s: %w", len(qs), ns, err)
			}
			for _, r := range out.MetricDataResults {
				i, err := strconv.Atoi(aws.ToString(r.Id)[1:])
				if err != nil || i < from || i >= to {
					return nil, u, fmt.Errorf("get metrics of namespace %s: a result for unknown query %q", ns, aws.ToString(r.Id))
				}
				for _, v := range r.Values {
					sums[keys[i]] += int64(v)
				}
			}
			if token = out.NextToken; token == nil || *token == "" {
				break
			}
		}
	}
	for k, n := range sums {
		if n == 0 {
			delete(sums, k)
		}
	}
	return sums, u, nil
}

// keyOf is a metric's counter key, false when it has a dimension that is
// not one of dn's.
func keyOf(m types.Metric, dn [3]string) (engine.MetricKey, bool) {
	k := engine.MetricKey{Name: aws.ToString(m.MetricName)}
	for _, d := range m.Dimensions {
		v := aws.ToString(d.Value)
		switch aws.ToString(d.Name) {
		case dn[0]:
			k.Machine = v
		case dn[1]:
			k.State = v
		case dn[2]:
			k.Event = v
		default:
			return k, false
		}
	}
	return k, true
}

// windowPeriod is the one period that covers a window of d: a multiple of
// 60 seconds, of 300 past 15 days and of 3,600 past 63 days (what
// CloudWatch keeps at those ages), at most what an int32 holds.
func windowPeriod(d time.Duration) int32 {
	step := int64(60)
	switch {
	case d > 63*24*time.Hour:
		step = 3600
	case d > 15*24*time.Hour:
		step = 300
	}
	s := (int64((d+time.Second-1)/time.Second) + step - 1) / step * step
	return int32(min(s, int64(1<<31-1)/step*step))
}

package lambda

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lfsm/lfsm/internal/engine"
)

// Namespace is the CloudWatch namespace of lfsm's metrics.
const Namespace = "lfsm"

// EMF aggregates counters (it is an engine.Metrics) and writes them as
// CloudWatch Embedded Metric Format log lines: Lambda's log stream turns each
// line into metric data, so counting a transition costs no API call. Flush
// writes one line per set of dimensions (machine, state, event; those that
// are empty are left out) with every counter of that set.
type EMF struct {
	mu     sync.Mutex
	w      io.Writer
	now    func() time.Time
	counts map[engine.MetricKey]int64
}

// NewEMF returns an EMF writing to w (Lambda: stdout); now nil means time.Now.
func NewEMF(w io.Writer, now func() time.Time) *EMF {
	if now == nil {
		now = time.Now
	}
	return &EMF{w: w, now: now, counts: map[engine.MetricKey]int64{}}
}

// Add counts n for k.
func (m *EMF) Add(k engine.MetricKey, n int64) {
	m.mu.Lock()
	m.counts[k] += n
	m.mu.Unlock()
}

type dims struct{ machine, state, event string }

// Flush writes what was counted since the last Flush and forgets it.
func (m *EMF) Flush() error {
	m.mu.Lock()
	counts := m.counts
	m.counts = make(map[engine.MetricKey]int64, len(counts))
	m.mu.Unlock()
	if len(counts) == 0 {
		return nil
	}
	byDims := map[dims]map[string]int64{}
	for k, n := range counts {
		d := dims{k.Machine, k.State, k.Event}
		if byDims[d] == nil {
			byDims[d] = map[string]int64{}
		}
		byDims[d][k.Name] += n
	}
	keys := make([]dims, 0, len(byDims))
	for d := range byDims {
		keys = append(keys, d)
	}
	slices.SortFunc(keys, func(a, b dims) int {
		return cmp.Or(cmp.Compare(a.machine, b.machine), cmp.Compare(a.state, b.state), cmp.Compare(a.event, b.event))
	})
	ts := m.now().UnixMilli()
	var buf bytes.Buffer
	for _, d := range keys {
		buf.Write(emfLine(ts, d, byDims[d]))
		buf.WriteByte('\n')
	}
	_, err := m.w.Write(buf.Bytes())
	return err
}

// emfLine is one EMF document. Its keys are written in a fixed order so that
// output does not depend on map iteration.
func emfLine(ts int64, d dims, metrics map[string]int64) []byte {
	names := make([]string, 0, len(metrics))
	for n := range metrics {
		names = append(names, n)
	}
	slices.Sort(names)
	dimNames := []string{}
	var dimVals [][2]string
	for _, kv := range [][2]string{{"machine", d.machine}, {"state", d.state}, {"event", d.event}} {
		if kv[1] != "" {
			dimNames = append(dimNames, kv[0])
			dimVals = append(dimVals, kv)
		}
	}
	type metric struct {
		Name string `json:"Name"`
		Unit string `json:"Unit"`
	}
	defs := make([]metric, len(names))
	for i, n := range names {
		defs[i] = metric{n, "Count"}
	}
	head, _ := json.Marshal(map[string]any{
		"Timestamp": ts,
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": [][]string{dimNames},
			"Metrics":    defs,
		}},
	})
	var b bytes.Buffer
	b.WriteString(`{"_aws":`)
	b.Write(head)
	for _, kv := range dimVals {
		k, _ := json.Marshal(kv[0])
		v, _ := json.Marshal(kv[1])
		b.WriteByte(',')
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, n := range names {
		k, _ := json.Marshal(n)
		b.WriteByte(',')
		b.Write(k)
		b.WriteByte(':')
		v, _ := json.Marshal(metrics[n])
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// NewLogHandler returns a JSON slog handler writing to w at level that adds
// the Lambda request id (aws_request_id) of the invocation in the context to
// every record, so that the engine's logs carry it too.
func NewLogHandler(w io.Writer, level slog.Leveler) slog.Handler {
	return requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})}
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		r.AddAttrs(slog.String("aws_request_id", lc.AwsRequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

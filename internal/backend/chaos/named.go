package chaos

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/engine"
)

// Operations of the AWS backends' wrappers, beside the engine's seams'
// (Ops): each is the wrapped method, or the call a wrapper stands for.
const (
	// OpCommitSteps is engine.BatchCommitter's batched commit.
	OpCommitSteps = "CommitSteps"
	// OpStartBatch is engine.BatchStarter's batched start.
	OpStartBatch = "StartBatch"
	// OpSendBatch is a queue's batched send (SendMessageBatch, PutRecords,
	// PublishBatch).
	OpSendBatch = "SendBatch"
	// OpPoll is the retry table's scheduled poll.
	OpPoll = "Poll"
	// OpChangeVisibility is SQS's ChangeMessageVisibility of a bounced record.
	OpChangeVisibility = "ChangeVisibility"
	// OpFlush is CloudWatch's PutMetricData of an invocation's counters.
	OpFlush = "Flush"
	// OpSeed, OpSettle and OpForget are lease-cache calls (with OpAcquire,
	// OpRenew and OpGet).
	OpSeed   = "Seed"
	OpSettle = "Settle"
	OpForget = "Forget"
)

// BackendOps returns, for each name of Backends, the operations its
// wrappers count and may fail, sorted: what "backend.Op" keys may name.
func BackendOps() map[string][]string {
	local := Ops()
	ddb := []string{OpAcquire, OpCommit, OpCommitStep, OpCommitSteps, OpCreate, OpGet, OpHistory, OpList,
		OpPoll, OpReceive, OpRenew, OpReopen, OpScheduleRetry, OpSend, OpSetStatus, OpStartBatch, OpStranded, OpSwapStatus}
	cache := []string{OpAcquire, OpForget, OpGet, OpRenew, OpSeed, OpSettle}
	return map[string][]string{
		"cloudwatch": {OpFlush},
		"dynamodb":   ddb,
		"kinesis":    {OpReceive, OpSend, OpSendBatch},
		"memcached":  cache,
		"memory":     local,
		"redis":      cache,
		"sns":        {OpSend, OpSendBatch},
		"sqlite":     local,
		"sqs":        {OpAck, OpChangeVisibility, OpReceive, OpScheduleRetry, OpSend, OpSendBatch},
	}
}

// AWSBackends are the backends of Backends that lfsm opens on AWS (--target
// aws and the deployed function); the others are local.
func AWSBackends() []string {
	return []string{"cloudwatch", "dynamodb", "kinesis", "memcached", "redis", "sns", "sqs"}
}

// CheckKeys reports the keys of ops ("backend.Op" or a bare operation) that
// name no operation of the given backends, each with the valid ones: a
// backend not among them, or an operation its wrappers do not have.
// ops is Config.Ops; a bare operation is valid if any backend has it.
func CheckKeys(ops map[string]float64, backends []string) error {
	all := BackendOps()
	var bad []string
	for _, k := range slices.Sorted(maps.Keys(ops)) {
		b, op, qualified := strings.Cut(k, ".")
		if !qualified {
			ok := false
			for _, name := range backends {
				ok = ok || slices.Contains(all[name], k)
			}
			if !ok {
				bad = append(bad, fmt.Sprintf("%s: no backend here has that operation (backends: %s)", k, strings.Join(backends, ", ")))
			}
			continue
		}
		if !slices.Contains(backends, b) {
			bad = append(bad, fmt.Sprintf("%s: backend %s is not used here; the backends are %s", k, b, strings.Join(backends, ", ")))
			continue
		}
		if !slices.Contains(all[b], op) {
			bad = append(bad, fmt.Sprintf("%s: %s has no operation %s; its operations are %s", k, b, op, strings.Join(all[b], ", ")))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("chaos: %s", strings.Join(bad, "; "))
	}
	return nil
}

// Fail draws one call of op: it returns an *Error if the call is to fail,
// else nil, and counts it. Wrappers outside this package (of an AWS
// client's call) use it before they call through.
func (i *Injector) Fail(op string) error { return i.fail(op) }

// Name is the backend the view wraps ("" for none).
func (i *Injector) Name() string { return i.backend }

// BatchStore is a store that is the engine's queue and retrier too and
// commits and starts in batches, as the DynamoDB store is.
type BatchStore interface {
	engine.Store
	engine.Queue
	engine.Retrier
	engine.BatchCommitter
	engine.BatchStarter
	engine.DropRecorder
}

// BatchStore wraps s keeping every seam the engine and the Lambda handler
// look for, so that under chaos they take the paths they take without it
// (one write per step, the batched commit of an SQS or Kinesis batch, the
// batched start). Send and ScheduleRetry pass through uncounted: the store
// forwards them to its queue and retrier, which are wrapped under their own
// names; a CommitStep that fails after its commit because the queue's Send
// was failed is the partial failure the repair is for.
func (i *Injector) BatchStore(s BatchStore) BatchStore {
	return &batchStore{store: store{i: i, s: s}, b: s}
}

type batchStore struct {
	store
	b BatchStore
}

func (w *batchStore) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	return w.b.Send(ctx, m)
}

func (w *batchStore) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	return w.b.ScheduleRetry(ctx, m)
}

func (w *batchStore) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	return w.i.commitStep(ctx, w.b, c, out, ack)
}

// CommitSteps fails as a whole, before the batch is written: every step
// gets the injected error, as when the store's first call fails.
func (w *batchStore) CommitSteps(ctx context.Context, steps []engine.StepCommit) []error {
	if err := w.i.fail(OpCommitSteps); err != nil {
		errs := make([]error, len(steps))
		for k := range errs {
			errs[k] = err
		}
		return errs
	}
	return w.b.CommitSteps(ctx, steps)
}

func (w *batchStore) StartBatch(ctx context.Context, xs []engine.Execution, outs []engine.OutMessage) []error {
	if err := w.i.fail(OpStartBatch); err != nil {
		errs := make([]error, len(xs))
		for k := range errs {
			errs[k] = err
		}
		return errs
	}
	return w.b.StartBatch(ctx, xs, outs)
}

// batchSender is a queue that sends in batched calls (SQS, SNS, Kinesis);
// the DynamoDB store looks for it.
type batchSender interface {
	SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error)
}

// Dispatch wraps a dispatch queue keeping its batched send (SendBatch, its
// own operation) and, when q is also a Retrier (an SQS queue delays
// messages itself), its ScheduleRetry.
func (i *Injector) Dispatch(q engine.Queue) engine.Queue {
	w := &queue{i: i, q: q}
	bs, batch := q.(batchSender)
	r, retry := q.(engine.Retrier)
	switch {
	case batch && retry:
		return &batchRetryQueue{batchQueue: &batchQueue{queue: w, bs: bs}, retrier: &retrier{i: i, r: r}}
	case batch:
		return &batchQueue{queue: w, bs: bs}
	case retry:
		return &retryQueue{queue: w, retrier: &retrier{i: i, r: r}}
	}
	return w
}

type batchQueue struct {
	*queue
	bs batchSender
}

// SendBatch fails as a whole, before anything is sent.
func (w *batchQueue) SendBatch(ctx context.Context, ms []engine.OutMessage) ([]string, error) {
	if err := w.i.fail(OpSendBatch); err != nil {
		return nil, err
	}
	return w.bs.SendBatch(ctx, ms)
}

type retryQueue struct {
	*queue
	*retrier
}

type batchRetryQueue struct {
	*batchQueue
	*retrier
}

// VisibilityChanger is SQS's ChangeMessageVisibility as the Lambda handler
// calls it.
type VisibilityChanger interface {
	ChangeVisibility(ctx context.Context, queueARN, receiptHandle string, timeout time.Duration) error
}

// Visibility wraps v (OpChangeVisibility).
func (i *Injector) Visibility(v VisibilityChanger) VisibilityChanger { return &visibility{i: i, v: v} }

type visibility struct {
	i *Injector
	v VisibilityChanger
}

func (w *visibility) ChangeVisibility(ctx context.Context, queueARN, receiptHandle string, timeout time.Duration) error {
	if err := w.i.fail(OpChangeVisibility); err != nil {
		return err
	}
	return w.v.ChangeVisibility(ctx, queueARN, receiptHandle, timeout)
}

// Cache wraps a lease cache (Redis, Memcached): each call fails before the
// server sees it, as a timeout or a refused connection would.
func (i *Injector) Cache(c leasecache.Cache) leasecache.Cache { return &cache{i: i, c: c} }

type cache struct {
	i *Injector
	c leasecache.Cache
}

func (w *cache) Seed(ctx context.Context, id string, rec leasecache.Record) (leasecache.Record, error) {
	if err := w.i.fail(OpSeed); err != nil {
		return leasecache.Record{}, err
	}
	return w.c.Seed(ctx, id, rec)
}

func (w *cache) Acquire(ctx context.Context, r engine.AcquireRequest) (engine.Lease, leasecache.Record, error) {
	if err := w.i.fail(OpAcquire); err != nil {
		return engine.Lease{}, leasecache.Record{}, err
	}
	return w.c.Acquire(ctx, r)
}

func (w *cache) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	if err := w.i.fail(OpRenew); err != nil {
		return err
	}
	return w.c.Renew(ctx, r)
}

func (w *cache) Settle(ctx context.Context, s leasecache.Settlement) error {
	if err := w.i.fail(OpSettle); err != nil {
		return err
	}
	return w.c.Settle(ctx, s)
}

func (w *cache) Forget(ctx context.Context, id string) error {
	if err := w.i.fail(OpForget); err != nil {
		return err
	}
	return w.c.Forget(ctx, id)
}

func (w *cache) Get(ctx context.Context, id string) (leasecache.Record, error) {
	if err := w.i.fail(OpGet); err != nil {
		return leasecache.Record{}, err
	}
	return w.c.Get(ctx, id)
}

// AllOps returns every operation of Ops and BackendOps, sorted: the bare
// keys a Config.Ops may hold.
func AllOps() []string {
	seen := map[string]bool{}
	for _, op := range Ops() {
		seen[op] = true
	}
	for _, ops := range BackendOps() {
		for _, op := range ops {
			seen[op] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Publisher is a metrics publisher that sends what it counted in one call
// (cloudwatch.Publisher's PutMetricData, as the Lambda handler flushes it).
type Publisher interface {
	engine.Metrics
	Flush(ctx context.Context) (calls int, err error)
}

// Publisher wraps p: its Flush fails as OpFlush before anything is sent,
// and keeps the counts (a failed flush sends them with the next one).
func (i *Injector) Publisher(p Publisher) Publisher { return &publisher{Publisher: p, i: i} }

type publisher struct {
	Publisher
	i *Injector
}

func (w *publisher) Flush(ctx context.Context) (int, error) {
	if err := w.i.fail(OpFlush); err != nil {
		return 0, err
	}
	return w.Publisher.Flush(ctx)
}

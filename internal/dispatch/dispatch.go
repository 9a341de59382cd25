// Package dispatch opens the dispatch a deployment sends its messages on
// (aws.dispatch: sqs, sns-sqs, sns, kinesis, dynamodb) and the retry source
// that goes with it, for the Lambda handler (fsm/host) and the operator
// commands (internal/cli) alike, so both send the same way. Each service
// is its own package under internal/backend; this one only chooses and
// connects them, and computes the message limit the engine checks.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/failover"
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/backend/sns"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
)

// Kinds of dispatch (aws.dispatch, LFSM_AWS_DISPATCH).
const (
	SQS      = "sqs"
	SNSSQS   = "sns-sqs"
	SNS      = "sns"
	Kinesis  = "kinesis"
	DynamoDB = "dynamodb"
)

// Kinds lists the dispatches, the default first.
var Kinds = []string{SQS, SNSSQS, SNS, Kinesis, DynamoDB}

// CanDelay reports whether kind delays messages itself (SQS); the others
// need the retry table.
func CanDelay(kind string) bool { return kind == SQS || kind == SNSSQS }

// LambdaMaxPayloadBytes is the largest message a Lambda event can carry: 6
// MB of synchronous invocation payload, base64-encoded for Kinesis records
// (a quarter larger), less room for the event's envelope.
const LambdaMaxPayloadBytes = (6<<20 - 16<<10) * 3 / 4

// Options say which dispatch to open.
type Options struct {
	// Kind is the dispatch (default sqs).
	Kind string
	// ARN is the dispatch's resource: the queue (also for sns-sqs: lfsm
	// sends to the subscribed queue), the topic, the stream or the table.
	ARN string
	// RetryTableARN is the retry table, required by the dispatches that
	// cannot delay (sns, kinesis, dynamodb).
	RetryTableARN string
	// Meter, if set, meters every client.
	Meter *awsconfig.Meter
	// SecondaryARN, if set, is the dispatch's secondary, of the same kind
	// and in any region: a send that fails on the primary is made there
	// (failover.Queue), and the function consumes it too.
	SecondaryARN string
	// SecondaryRetryTableARN, if set, is the retry table's secondary (the
	// dispatches that cannot delay). With sqs the secondary queue is the
	// secondary retrier.
	SecondaryRetryTableARN string
	// Failover tunes the pairs' breaker (failover.Options); its Metrics
	// counts the calls the secondaries served.
	Failover failover.Options
	// WrapQueue and WrapRetrier, if set, wrap each side's queue and
	// retrier before they are paired (secondary says which side): chaos on
	// the primary alone, in tests and lfsm dev.
	WrapQueue   func(secondary bool, q engine.Queue) engine.Queue
	WrapRetrier func(secondary bool, r engine.Retrier) engine.Retrier
	// Chaos, if set, wraps each side's dispatch queue in its backend's
	// named view (sqs for sqs and sns-sqs, sns, kinesis, dynamodb for the
	// stream table) before the retry table is built on it, and each retry
	// table in dynamodb's, so that "kinesis.Send=0.1" fails the stream's
	// sends, the retry table's re-sends included (docs/design.md, "Chaos").
	Chaos *chaos.Injector
}

// Dispatch is an open dispatch.
type Dispatch struct {
	Kind string
	// Queue sends the next message; the store forwards to it.
	Queue engine.Queue
	// Retrier puts a message off: the queue itself on SQS, else Retries.
	Retrier engine.Retrier
	// Retries is the retry table (nil on SQS), which the scheduled
	// invocation polls; SecondaryRetries is its secondary (nil: none),
	// polled too. Both send due retries through Queue.
	Retries, SecondaryRetries *dynamodb.RetryTable
	// Secondary reports whether the dispatch has a secondary (Queue is then
	// a failover.Queue).
	Secondary bool
	// Visibility changes bounced SQS messages' visibility (nil unless the
	// function is fed by an SQS queue), on the primary or the secondary
	// queue, whichever the record came from.
	Visibility VisibilityChanger
	// MaxMessageBytes is the smallest of the dispatch's own limit, Lambda's
	// event payload and the store's checkpoint item: the engine's
	// Options.MaxMessageBytes.
	MaxMessageBytes int
	// TransactCommit says the store should commit with TransactCommit (the
	// step item and the execution update in one transaction): on SNS, whose
	// every invocation carries one record, so that no commit is batched, a
	// transition is then 3 calls instead of 4 (docs/benchmarks.md).
	TransactCommit bool
}

// VisibilityChanger changes an SQS message's visibility on the queue the
// record names (lambda.VisibilityChanger).
type VisibilityChanger interface {
	ChangeVisibility(ctx context.Context, queueARN, receiptHandle string, timeout time.Duration) error
}

// emulated reports whether the SDK is pointed at emulators: DynamoDB Local's
// error responses then fail the SDK's checksum validation, which is off.
func emulated() bool {
	return os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != ""
}

// regionOf returns an ARN's region (its fourth field).
func regionOf(arn string) string {
	p := strings.SplitN(arn, ":", 6)
	if len(p) < 6 || p[0] != "arn" {
		return ""
	}
	return p[3]
}

// tableName returns the name of arn:aws:dynamodb:REGION:ACCOUNT:table/NAME.
func tableName(arn string) (string, error) {
	p := strings.SplitN(arn, ":", 6)
	if len(p) != 6 || p[0] != "arn" || p[2] != "dynamodb" || p[3] == "" || !strings.HasPrefix(p[5], "table/") || len(p[5]) == len("table/") || strings.Contains(p[5][len("table/"):], "/") {
		return "", fmt.Errorf("invalid DynamoDB table ARN %q (want arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)", arn)
	}
	return p[5][len("table/"):], nil
}

// ErrNoRetryTable: the dispatch cannot delay and no retry table was named.
var ErrNoRetryTable = errors.New("no retry table: this dispatch cannot delay a message, so retries need the retry table (aws.retry-table-arn, LFSM_AWS_RETRY_TABLE_ARN; lfsm deploy creates it)")

func ddbClient(ctx context.Context, arn string, m *awsconfig.Meter) (*ddb.Client, string, error) {
	name, err := tableName(arn)
	if err != nil {
		return nil, "", err
	}
	cfg, err := awsconfig.Load(ctx, regionOf(arn), m)
	if err != nil {
		return nil, "", err
	}
	return ddb.NewFromConfig(cfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = emulated() }), name, nil
}

// Open connects the dispatch o names and its retry source, and with a
// secondary pairs each with its secondary (docs/design.md, "Failover"). Only
// New-time calls are made: Kinesis reads the stream's record limit once; SQS
// looks the queue's URL up.
func Open(ctx context.Context, o Options) (*Dispatch, error) {
	kind := strings.ToLower(strings.TrimSpace(o.Kind))
	if kind == "" {
		kind = SQS
	}
	if !slices.Contains(Kinds, kind) {
		return nil, fmt.Errorf("unknown dispatch %q: want one of %s", o.Kind, strings.Join(Kinds, ", "))
	}
	if o.ARN == "" {
		return nil, fmt.Errorf("dispatch %s: no ARN of its %s", kind, resource(kind))
	}
	if !CanDelay(kind) && o.RetryTableARN == "" {
		return nil, ErrNoRetryTable
	}
	if o.SecondaryARN == o.ARN && o.ARN != "" {
		return nil, fmt.Errorf("dispatch %s: the secondary %s is the primary; name another %s", kind, o.ARN, resource(kind))
	}
	if o.SecondaryRetryTableARN != "" && o.SecondaryRetryTableARN == o.RetryTableARN {
		return nil, fmt.Errorf("retry table: the secondary %s is the primary; name another table", o.RetryTableARN)
	}
	wrapQ := func(secondary bool, q engine.Queue) engine.Queue {
		if o.Chaos != nil {
			q = wrapQueue(o.Chaos.For(Backend(kind)), q)
		}
		if o.WrapQueue != nil {
			return o.WrapQueue(secondary, q)
		}
		return q
	}
	wrapR := func(secondary bool, r engine.Retrier) engine.Retrier {
		if o.Chaos != nil {
			name := "dynamodb" // the retry table
			if CanDelay(kind) {
				name = Backend(kind) // the queue delays messages itself
			}
			r = o.Chaos.For(name).Retrier(r)
		}
		if o.WrapRetrier != nil {
			return o.WrapRetrier(secondary, r)
		}
		return r
	}
	p, err := open(ctx, kind, o.ARN, o.Meter)
	if err != nil {
		return nil, err
	}
	d := &Dispatch{Kind: kind, Queue: wrapQ(false, p.queue), MaxMessageBytes: p.limit, TransactCommit: kind == SNS}
	var retriers [2]engine.Retrier
	if p.retrier != nil {
		retriers[0] = wrapR(false, p.retrier)
	}
	var vis []*sqsSide
	if p.visibility != nil {
		vis = append(vis, &sqsSide{region: regionOf(o.ARN), v: p.visibility})
	}
	if o.SecondaryARN != "" {
		s, err := open(ctx, kind, o.SecondaryARN, o.Meter)
		if err != nil {
			return nil, fmt.Errorf("secondary: %w", err)
		}
		d.Queue = failover.NewQueue(d.Queue, wrapQ(true, s.queue), o.Failover)
		d.Secondary = true
		d.MaxMessageBytes = min(d.MaxMessageBytes, s.limit)
		if s.retrier != nil {
			retriers[1] = wrapR(true, s.retrier)
		}
		if s.visibility != nil && regionOf(o.SecondaryARN) != regionOf(o.ARN) {
			vis = append(vis, &sqsSide{region: regionOf(o.SecondaryARN), v: s.visibility})
		}
	}
	if retriers[0] == nil {
		// Retries wait in the retry table, whose poll sends them through
		// the (paired) dispatch.
		r, err := retryTable(ctx, o.RetryTableARN, d.Queue, o.Meter)
		if err != nil {
			return nil, fmt.Errorf("retry table: %w", err)
		}
		d.Retries, retriers[0] = r, wrapR(false, r)
		if o.SecondaryRetryTableARN != "" {
			r, err := retryTable(ctx, o.SecondaryRetryTableARN, d.Queue, o.Meter)
			if err != nil {
				return nil, fmt.Errorf("secondary retry table: %w", err)
			}
			d.SecondaryRetries, retriers[1] = r, wrapR(true, r)
		}
	}
	d.Retrier = retriers[0]
	if retriers[1] != nil {
		d.Retrier = failover.NewRetrier(retriers[0], retriers[1], o.Failover)
	}
	switch len(vis) {
	case 1:
		d.Visibility = vis[0].v // one client serves every queue of its region
	case 2:
		d.Visibility = regionVisibility(vis)
	}
	d.MaxMessageBytes = min(d.MaxMessageBytes, LambdaMaxPayloadBytes, dynamodb.MaxCheckpointBytes)
	return d, nil
}

// side is one opened dispatch resource: its queue, its own retrier (SQS
// delays; the others have none), its visibility changer (SQS) and limit.
type side struct {
	queue      engine.Queue
	retrier    engine.Retrier
	visibility *sqs.Visibility
	limit      int
}

func open(ctx context.Context, kind, arn string, m *awsconfig.Meter) (side, error) {
	var sd side
	switch kind {
	case SQS, SNSSQS:
		cfg, err := awsconfig.Load(ctx, regionOf(arn), m)
		if err != nil {
			return sd, err
		}
		c := awssqs.NewFromConfig(cfg)
		q, err := sqs.New(ctx, sqs.Options{Client: c, ARN: arn})
		if err != nil {
			return sd, err
		}
		sd.queue, sd.retrier, sd.visibility = q, q, sqs.NewVisibility(c)
		// The queue's own MaximumMessageSize (one call per open: the
		// function's role has sqs:GetQueueAttributes for its mapping). A
		// role without it, as an operator's may be, gets SQS's default: a
		// message above a lowered size is then refused by the send, and
		// the repair re-sends it in vain, which only the owner of such a
		// queue and role can meet.
		sd.limit, _ = sqs.MaxMessageBytes(ctx, c, q.URL())
		if kind == SNSSQS {
			sd.limit = min(sd.limit, sns.MaxMessageBytes) // other publishers go through the topic
		}
	case SNS:
		cfg, err := awsconfig.Load(ctx, regionOf(arn), m)
		if err != nil {
			return sd, err
		}
		t, err := sns.New(ctx, sns.Options{Client: awssns.NewFromConfig(cfg), ARN: arn})
		if err != nil {
			return sd, err
		}
		sd.queue, sd.limit = t, t.MaxMessageBytes()
	case Kinesis:
		cfg, err := awsconfig.Load(ctx, regionOf(arn), m)
		if err != nil {
			return sd, err
		}
		s, err := kinesis.New(ctx, kinesis.Options{Client: awskinesis.NewFromConfig(cfg), ARN: arn})
		if err != nil {
			return sd, err
		}
		sd.queue, sd.limit = s, s.MaxMessageBytes()
	case DynamoDB:
		c, name, err := ddbClient(ctx, arn, m)
		if err != nil {
			return sd, fmt.Errorf("dispatch table: %w", err)
		}
		q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: name})
		if err != nil {
			return sd, err
		}
		sd.queue, sd.limit = q, q.MaxMessageBytes()
	}
	return sd, nil
}

func retryTable(ctx context.Context, arn string, q engine.Queue, m *awsconfig.Meter) (*dynamodb.RetryTable, error) {
	c, name, err := ddbClient(ctx, arn, m)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: c, Table: name, Queue: q})
}

// sqsSide is the visibility changer of one region's queues.
type sqsSide struct {
	region string
	v      *sqs.Visibility
}

// regionVisibility changes a message's visibility with the client of its
// queue's region (a secondary queue in another region).
type regionVisibility []*sqsSide

func (r regionVisibility) ChangeVisibility(ctx context.Context, queueARN, receiptHandle string, timeout time.Duration) error {
	region := regionOf(queueARN)
	for _, s := range r {
		if s.region == region {
			return s.v.ChangeVisibility(ctx, queueARN, receiptHandle, timeout)
		}
	}
	return fmt.Errorf("change visibility: queue %s is neither the dispatch's nor its secondary's region", queueARN)
}

// Backend is the chaos backend name (chaos.Backends) of a dispatch kind's
// queue: the service it sends through.
func Backend(kind string) string {
	switch kind {
	case SNS:
		return "sns"
	case Kinesis:
		return "kinesis"
	case DynamoDB:
		return "dynamodb"
	}
	return "sqs"
}

// wrapQueue wraps q in inj, keeping the DynamoDB-stream queue an
// ItemSender (the store writes its message in the commit's transaction):
// a SendItem fails as the view's Send, before the transaction.
func wrapQueue(inj *chaos.Injector, q engine.Queue) engine.Queue {
	w := inj.Dispatch(q)
	if is, ok := q.(dynamodb.ItemSender); ok {
		return &itemQueue{Queue: w, inj: inj, is: is}
	}
	return w
}

type itemQueue struct {
	engine.Queue
	inj *chaos.Injector
	is  dynamodb.ItemSender
}

func (q *itemQueue) SendItem(m engine.OutMessage) (*ddbtypes.Put, string, error) {
	if err := q.inj.Fail(chaos.OpSend); err != nil {
		return nil, "", err
	}
	return q.is.SendItem(m)
}

func resource(kind string) string {
	switch kind {
	case SNS:
		return "topic"
	case Kinesis:
		return "stream"
	case DynamoDB:
		return "table"
	}
	return "queue"
}

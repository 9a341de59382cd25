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

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
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
}

// Dispatch is an open dispatch.
type Dispatch struct {
	Kind string
	// Queue sends the next message; the store forwards to it.
	Queue engine.Queue
	// Retrier puts a message off: the queue itself on SQS, else Retries.
	Retrier engine.Retrier
	// Retries is the retry table (nil on SQS), which the scheduled
	// invocation polls.
	Retries *dynamodb.RetryTable
	// Visibility changes bounced SQS messages' visibility (nil unless the
	// function is fed by an SQS queue).
	Visibility *sqs.Visibility
	// MaxMessageBytes is the smallest of the dispatch's own limit, Lambda's
	// event payload and the store's checkpoint item: the engine's
	// Options.MaxMessageBytes.
	MaxMessageBytes int
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

// Open connects the dispatch o names and its retry source. Only New-time
// calls are made: Kinesis reads the stream's record limit once; SQS looks
// the queue's URL up.
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
	d := &Dispatch{Kind: kind}
	limit := 0
	switch kind {
	case SQS, SNSSQS:
		cfg, err := awsconfig.Load(ctx, regionOf(o.ARN), o.Meter)
		if err != nil {
			return nil, err
		}
		c := awssqs.NewFromConfig(cfg)
		q, err := sqs.New(ctx, sqs.Options{Client: c, ARN: o.ARN})
		if err != nil {
			return nil, err
		}
		d.Queue, d.Retrier, d.Visibility = q, q, sqs.NewVisibility(c)
		limit = 1 << 20 // the queue's default MaximumMessageSize
		if kind == SNSSQS {
			limit = sns.MaxMessageBytes // other publishers go through the topic
		}
	case SNS:
		cfg, err := awsconfig.Load(ctx, regionOf(o.ARN), o.Meter)
		if err != nil {
			return nil, err
		}
		t, err := sns.New(ctx, sns.Options{Client: awssns.NewFromConfig(cfg), ARN: o.ARN})
		if err != nil {
			return nil, err
		}
		d.Queue, limit = t, t.MaxMessageBytes()
	case Kinesis:
		cfg, err := awsconfig.Load(ctx, regionOf(o.ARN), o.Meter)
		if err != nil {
			return nil, err
		}
		s, err := kinesis.New(ctx, kinesis.Options{Client: awskinesis.NewFromConfig(cfg), ARN: o.ARN})
		if err != nil {
			return nil, err
		}
		d.Queue, limit = s, s.MaxMessageBytes()
	case DynamoDB:
		c, name, err := ddbClient(ctx, o.ARN, o.Meter)
		if err != nil {
			return nil, fmt.Errorf("dispatch table: %w", err)
		}
		q, err := dynamodb.NewStreamQueue(dynamodb.StreamOptions{Client: c, Table: name})
		if err != nil {
			return nil, err
		}
		d.Queue, limit = q, q.MaxMessageBytes()
	}
	if d.Retrier == nil {
		c, name, err := ddbClient(ctx, o.RetryTableARN, o.Meter)
		if err != nil {
			return nil, fmt.Errorf("retry table: %w", err)
		}
		r, err := dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: c, Table: name, Queue: d.Queue})
		if err != nil {
			return nil, err
		}
		d.Retrier, d.Retries = r, r
	}
	d.MaxMessageBytes = min(limit, LambdaMaxPayloadBytes, dynamodb.MaxCheckpointBytes)
	return d, nil
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

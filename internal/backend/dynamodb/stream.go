package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// Attributes of the DynamoDB-stream dispatch table (internal/deploy's
// dispatch table: keys correlation_id and step, TTL ttl, stream NEW_IMAGE).
const (
	streamPK      = "correlation_id"
	streamSK      = "step"
	streamPayload = "payload"
	streamTime    = "timestamp"
	streamTTL     = "ttl"
)

// MaxItemBytes is DynamoDB's item limit (400 KB, names and values).
const MaxItemBytes = 400_000

// MaxCheckpointBytes is the largest message the store's step item holds as
// its checkpoint: the item limit less room for the history entry, keys and
// the other attributes. Every dispatch's message limit is at most this.
const MaxCheckpointBytes = MaxItemBytes - 32<<10

// DefaultStreamTTL is how long a message item stays in the dispatch table
// (its stream record lives 24 hours; the item itself is never read again).
const DefaultStreamTTL = 24 * time.Hour

// StreamOptions configure a StreamQueue.
type StreamOptions struct {
	// Client talks to DynamoDB in the dispatch table's region.
	Client StreamAPI
	// Table is the dispatch table's name.
	Table string
	// TTL is how long a message item is kept (default DefaultStreamTTL).
	TTL time.Duration
	// Now tells the time; nil is time.Now.
	Now func() time.Time
}

// StreamQueue is the DynamoDB-stream dispatch: every message is an INSERT
// of an item of its own in the dispatch table, whose stream drives the
// function (Lambda reads the payload from the record's NewImage). The item
// is keyed by correlation id and step#attempt#time, never the execution
// item's key (a transaction cannot touch one item twice) and never an
// existing item's (an overwrite is a MODIFY, which the mapping's INSERT
// filter drops); TTL removes it a day later, and that removal (REMOVE, or
// UNKNOWN_TO_SDK_VERSION on DynamoDB Local) must not invoke the function,
// which the mapping's filter on INSERT sees to.
//
// It is an ItemSender: with it as the store's queue, a step's next message
// is written in the commit's own transaction.
type StreamQueue struct {
	c     StreamAPI
	table *string
	ttl   time.Duration
	now   func() time.Time
}

// StreamAPI is the part of the DynamoDB client a StreamQueue calls.
type StreamAPI interface {
	PutItem(ctx context.Context, in *ddb.PutItemInput, opts ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
}

var (
	_ engine.Queue = (*StreamQueue)(nil)
	_ ItemSender   = (*StreamQueue)(nil)
)

// NewStreamQueue returns a StreamQueue on o.Table.
func NewStreamQueue(o StreamOptions) (*StreamQueue, error) {
	if o.Client == nil || o.Table == "" {
		return nil, errors.New("dynamodb stream dispatch: no client or table")
	}
	if o.TTL <= 0 {
		o.TTL = DefaultStreamTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &StreamQueue{c: o.Client, table: aws.String(o.Table), ttl: o.TTL, now: o.Now}, nil
}

// MaxMessageBytes is the largest payload an item takes (the item limit less
// its keys and other attributes).
func (q *StreamQueue) MaxMessageBytes() int { return MaxItemBytes - 1024 }

// messageStep reads steps and retries from a wire-format message.
func messageStep(payload []byte) (steps, retries int64, ok bool) {
	var w struct {
		SC struct {
			Steps   *int64 `json:"steps"`
			Retries *int64 `json:"retries"`
		} `json:"system_context"`
	}
	if json.Unmarshal(payload, &w) != nil || w.SC.Steps == nil {
		return 0, 0, false
	}
	if w.SC.Retries != nil {
		retries = *w.SC.Retries
	}
	return *w.SC.Steps, retries, true
}

func (q *StreamQueue) item(m engine.OutMessage) (map[string]av, string, error) {
	if m.Delay > 0 {
		return nil, "", fmt.Errorf("dynamodb stream dispatch %s cannot delay a message (%s): retries go to the retry table", *q.table, m.Delay)
	}
	if m.Key == "" {
		return nil, "", fmt.Errorf("dynamodb stream dispatch %s: message has no correlation id", *q.table)
	}
	if len(m.Payload) > q.MaxMessageBytes() {
		return nil, "", fmt.Errorf("dynamodb stream dispatch: message of %d bytes is larger than an item takes (%d)", len(m.Payload), q.MaxMessageBytes())
	}
	now := q.now()
	steps, retries, _ := messageStep(m.Payload)
	// The time makes every send a new item, so a repeated send (a repair)
	// is an INSERT too.
	sk := fmt.Sprintf("%010d#%05d#%019d", steps, retries, now.UnixNano())
	return map[string]av{
		streamPK:      vs(m.Key),
		streamSK:      vs(sk),
		streamPayload: vs(string(m.Payload)),
		streamTime:    vn(now.Unix()),
		streamTTL:     vn(now.Add(q.ttl).Unix()),
	}, m.Key + "/" + sk, nil
}

// Send implements engine.Queue: one PutItem of a new item; the receipt is
// CORRELATION_ID/STEP.
func (q *StreamQueue) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	it, receipt, err := q.item(m)
	if err != nil {
		return "", err
	}
	if _, err := q.c.PutItem(ctx, &ddb.PutItemInput{TableName: q.table, Item: it, ReturnConsumedCapacity: capacity}); err != nil {
		return "", fmt.Errorf("send to DynamoDB stream dispatch %s: %w", *q.table, err)
	}
	return receipt, nil
}

// SendItem implements ItemSender.
func (q *StreamQueue) SendItem(m engine.OutMessage) (*types.Put, string, error) {
	it, receipt, err := q.item(m)
	if err != nil {
		return nil, "", err
	}
	return &types.Put{TableName: q.table, Item: it}, receipt, nil
}

// CreateStreamTable creates a dispatch table with a NEW_IMAGE stream and
// TTL (on-demand) and waits until it is active; it returns the stream's
// ARN. It is for tests and emulators; deployments create it from the
// stack's template.
func CreateStreamTable(ctx context.Context, c *ddb.Client, name string) (string, error) {
	str := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	_, err := c.CreateTable(ctx, &ddb.CreateTableInput{
		TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{str(streamPK), str(streamSK)},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(streamPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(streamSK), KeyType: types.KeyTypeRange},
		},
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return "", fmt.Errorf("create DynamoDB table %s: %w", name, err)
	}
	w := ddb.NewTableExistsWaiter(c, func(o *ddb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	out, err := w.WaitForOutput(ctx, &ddb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute)
	if err != nil {
		return "", fmt.Errorf("wait for DynamoDB table %s: %w", name, err)
	}
	if _, err := c.UpdateTimeToLive(ctx, &ddb.UpdateTimeToLiveInput{TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(streamTTL), Enabled: aws.Bool(true)}}); err != nil {
		return "", fmt.Errorf("enable TTL on DynamoDB table %s: %w", name, err)
	}
	return aws.ToString(out.Table.LatestStreamArn), nil
}

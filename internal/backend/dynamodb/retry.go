package dynamodb

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

// Attributes and index of the retry table (the names internal/deploy
// renders: RetryTableSchema).
const (
	retryPart    = "partition"
	retryKey     = "correlation_id_steps"
	retryRunAt   = "run_at" // unix milliseconds
	retryBody    = "payload"
	retryTTL     = "ttl"
	retryIndex   = "by_run_at"
	retryKeepTTL = 14 * 24 * time.Hour
)

// RetrySchema describes the retry table for internal/deploy.
type RetrySchema struct {
	// PartitionKey (a number) and SortKey (a string) are the table's keys.
	PartitionKey, SortKey string
	// Index is the local secondary index on (PartitionKey, RunAt), RunAt a
	// number; its projection is ALL, so a poll reads due messages in one call.
	Index, RunAt string
	// TTL expires what no poll ever took (a backstop: a poll deletes what it
	// sends).
	TTL string
}

// RetryTableSchema returns the retry table's schema.
func RetryTableSchema() RetrySchema {
	return RetrySchema{PartitionKey: retryPart, SortKey: retryKey, Index: retryIndex, RunAt: retryRunAt, TTL: retryTTL}
}

// RetryAPI is the part of the DynamoDB client the RetryTable calls.
type RetryAPI interface {
	PutItem(ctx context.Context, in *ddb.PutItemInput, opts ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
	Query(ctx context.Context, in *ddb.QueryInput, opts ...func(*ddb.Options)) (*ddb.QueryOutput, error)
	DeleteItem(ctx context.Context, in *ddb.DeleteItemInput, opts ...func(*ddb.Options)) (*ddb.DeleteItemOutput, error)
}

// RetryOptions configure a RetryTable.
type RetryOptions struct {
	Client RetryAPI
	// Table is the retry table's name.
	Table string
	// Queue is the dispatch the due retries are sent to (and a retry with
	// no delay, at once).
	Queue engine.Queue
	// Partitions spreads retries over that many partition key values (1 by
	// default). A poll queries each one, so an idle poll costs Partitions
	// calls; one partition takes about 1,000 retry writes a second, which is
	// the reason to raise it.
	Partitions int
	// Now tells the time (tests inject one); nil is time.Now.
	Now func() time.Time
}

// RetryTable is a Retrier for the dispatches that cannot delay a message
// (Kinesis, SNS, the DynamoDB stream): a retry is an item due at run_at,
// which the scheduled invocation's Poll sends to the dispatch once due.
// A sub-minute backoff therefore fires when the next poll runs: up to a
// minute late on the every-minute schedule (docs/design.md).
type RetryTable struct {
	c     RetryAPI
	table *string
	q     engine.Queue
	parts int
	now   func() time.Time
}

var (
	_ engine.Retrier = (*RetryTable)(nil)
	_ ItemSender     = (*RetryTable)(nil)
)

// NewRetryTable returns a RetryTable.
func NewRetryTable(o RetryOptions) (*RetryTable, error) {
	if o.Client == nil || o.Table == "" || o.Queue == nil {
		return nil, errors.New("dynamodb retry table: no client, table or queue")
	}
	if o.Partitions <= 0 {
		o.Partitions = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &RetryTable{c: o.Client, table: aws.String(o.Table), q: o.Queue, parts: o.Partitions, now: o.Now}, nil
}

// retryItemKey names a retry by its message's step and attempt when the
// payload says them (so a retry scheduled twice is one item), else by the
// payload's hash.
func retryItemKey(m engine.OutMessage) string {
	var w struct {
		SC struct {
			Steps   *int64 `json:"steps"`
			Retries *int64 `json:"retries"`
		} `json:"system_context"`
	}
	if json.Unmarshal(m.Payload, &w) == nil && w.SC.Steps != nil && w.SC.Retries != nil {
		return fmt.Sprintf("%s#%d#%d", m.Key, *w.SC.Steps, *w.SC.Retries)
	}
	h := sha256.Sum256(m.Payload)
	return m.Key + "#" + hex.EncodeToString(h[:8])
}

func (r *RetryTable) partition(key string) int64 {
	if r.parts == 1 {
		return 0
	}
	h := sha256.Sum256([]byte(key))
	return int64(binary.BigEndian.Uint64(h[:8]) % uint64(r.parts))
}

// ScheduleRetry implements engine.Retrier: one PutItem due at now +
// m.Delay; a message with no delay is sent to the dispatch at once.
func (r *RetryTable) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	if m.Delay <= 0 {
		_, err := r.q.Send(ctx, m)
		return err
	}
	_, err := r.c.PutItem(ctx, &ddb.PutItemInput{TableName: r.table, ReturnConsumedCapacity: capacity, Item: r.item(m)})
	if err != nil {
		return fmt.Errorf("schedule retry of %s in DynamoDB table %s: %w", m.Key, *r.table, err)
	}
	return nil
}

func (r *RetryTable) item(m engine.OutMessage) map[string]av {
	runAt := r.now().Add(m.Delay)
	return map[string]av{
		retryPart:  vn(r.partition(m.Key)),
		retryKey:   vs(retryItemKey(m)),
		retryRunAt: vn(runAt.UnixMilli()),
		retryBody:  vb(m.Payload),
		attrPK:     vs(m.Key),
		retryTTL:   vn(runAt.Add(retryKeepTTL).Unix()),
	}
}

// SendItem implements ItemSender: a delayed retry is a Put on the table,
// which the store writes in the commit's transaction; one with no delay is
// the dispatch's item if the dispatch is an ItemSender (else nil: the store
// sends it after the commit).
func (r *RetryTable) SendItem(m engine.OutMessage) (*types.Put, string, error) {
	if m.Delay <= 0 {
		if is, ok := r.q.(ItemSender); ok {
			return is.SendItem(m)
		}
		return nil, "", nil
	}
	return &types.Put{TableName: r.table, Item: r.item(m)}, "", nil
}

// RetryPoll is what one Poll did.
type RetryPoll struct {
	// Sent counts due retries sent to the dispatch.
	Sent int
	// Calls counts the DynamoDB and dispatch calls made.
	Calls int
	// More: ctx ended (the invocation's deadline) before every due retry was
	// sent; the next poll goes on.
	More bool
}

// Poll sends every retry due at now to the dispatch and deletes it (on the
// condition that it was not scheduled again meanwhile). With nothing due it
// costs one Query per partition: one call with the default one partition.
// Concurrent polls may both send a retry; the second is a duplicate, which
// the store's Acquire refuses.
func (r *RetryTable) Poll(ctx context.Context, now time.Time) (RetryPoll, error) {
	var res RetryPoll
	for p := range r.parts {
		var start map[string]av
		for {
			if ctx.Err() != nil {
				res.More = true
				return res, nil
			}
			out, err := r.c.Query(ctx, &ddb.QueryInput{
				TableName: r.table, IndexName: aws.String(retryIndex), ConsistentRead: aws.Bool(true),
				KeyConditionExpression:    aws.String("#p = :p AND #r <= :now"),
				ExpressionAttributeNames:  map[string]string{"#p": retryPart, "#r": retryRunAt},
				ExpressionAttributeValues: map[string]av{":p": vn(int64(p)), ":now": vn(now.UnixMilli())},
				Limit:                     aws.Int32(100), ExclusiveStartKey: start, ReturnConsumedCapacity: capacity,
			})
			res.Calls++
			if err != nil {
				return res, fmt.Errorf("poll retries of DynamoDB table %s: %w", *r.table, err)
			}
			for _, it := range out.Items {
				if ctx.Err() != nil {
					res.More = true
					return res, nil
				}
				payload, _ := getBAttr(it, retryBody)
				res.Calls += 2
				if _, err := r.q.Send(ctx, engine.OutMessage{Key: getS(it, attrPK), Payload: payload}); err != nil {
					return res, fmt.Errorf("send a due retry of %s: %w", getS(it, attrPK), err)
				}
				_, err := r.c.DeleteItem(ctx, &ddb.DeleteItemInput{
					TableName: r.table, Key: map[string]av{retryPart: it[retryPart], retryKey: it[retryKey]},
					ConditionExpression:       aws.String("#r = :r"),
					ExpressionAttributeNames:  map[string]string{"#r": retryRunAt},
					ExpressionAttributeValues: map[string]av{":r": it[retryRunAt]},
					ReturnConsumedCapacity:    capacity,
				})
				var ccf *types.ConditionalCheckFailedException
				if err != nil && !errors.As(err, &ccf) {
					return res, fmt.Errorf("delete a sent retry of %s from DynamoDB table %s: %w", getS(it, attrPK), *r.table, err)
				}
				res.Sent++
			}
			if len(out.LastEvaluatedKey) == 0 {
				break
			}
			start = out.LastEvaluatedKey
		}
	}
	return res, nil
}

// Pending reports whether any retry waits in the table, due or not (one
// Query per partition at most): lfsm dev --until-idle is not idle while one
// does.
func (r *RetryTable) Pending(ctx context.Context) (bool, error) {
	for p := range r.parts {
		out, err := r.c.Query(ctx, &ddb.QueryInput{
			TableName: r.table, IndexName: aws.String(retryIndex), ConsistentRead: aws.Bool(true),
			KeyConditionExpression:    aws.String("#p = :p"),
			ExpressionAttributeNames:  map[string]string{"#p": retryPart},
			ExpressionAttributeValues: map[string]av{":p": vn(int64(p))},
			Limit:                     aws.Int32(1), ProjectionExpression: aws.String("#p"),
		})
		if err != nil {
			return false, fmt.Errorf("read retries of DynamoDB table %s: %w", *r.table, err)
		}
		if len(out.Items) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// CreateRetryTable creates the retry table (on-demand, TTL) and waits
// until it is active. It is for tests and emulators; deployments create it
// from the stack's template.
func CreateRetryTable(ctx context.Context, c *ddb.Client, name string) error {
	def := func(n string, t types.ScalarAttributeType) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: t}
	}
	_, err := c.CreateTable(ctx, &ddb.CreateTableInput{
		TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			def(retryPart, types.ScalarAttributeTypeN), def(retryKey, types.ScalarAttributeTypeS), def(retryRunAt, types.ScalarAttributeTypeN),
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(retryPart), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(retryKey), KeyType: types.KeyTypeRange},
		},
		LocalSecondaryIndexes: []types.LocalSecondaryIndex{{
			IndexName: aws.String(retryIndex),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(retryPart), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(retryRunAt), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create DynamoDB table %s: %w", name, err)
	}
	w := ddb.NewTableExistsWaiter(c, func(o *ddb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := w.Wait(ctx, &ddb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for DynamoDB table %s: %w", name, err)
	}
	if _, err := c.UpdateTimeToLive(ctx, &ddb.UpdateTimeToLiveInput{TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(retryTTL), Enabled: aws.Bool(true)}}); err != nil {
		return fmt.Errorf("enable TTL on DynamoDB table %s: %w", name, err)
	}
	return nil
}

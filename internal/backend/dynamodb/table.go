package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute and index names of the table (see doc.go).
const (
	attrPK = "pk"
	attrSK = "sk"
	// index key attributes, on execution items only (sparse indexes)
	attrGM = "gm" // machine
	attrGS = "gs" // machine#status
	attrGA = "ga" // shard of the correlation id
	attrGC = "gc" // creation key: zero-padded unix ns # correlation id

	indexMachine = "by_machine"
	indexStatus  = "by_status"
	indexShard   = "by_shard"

	// ttlAttr is the table's TTL attribute (unix seconds).
	ttlAttr = "ttl"
)

// shards is the number of partitions of the by_shard index: creations are
// spread over them so that no index partition takes every creation's write.
const shards = 16

// CreateTable creates the store's table with its indexes (on-demand
// billing) and TTL, and waits until it is active. It is for tests and
// emulators; deployments create the table from the stack's template.
func CreateTable(ctx context.Context, c *ddb.Client, name string) error {
	str := func(n string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(n), AttributeType: types.ScalarAttributeTypeS}
	}
	gsi := func(name, pk string) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{
			IndexName: aws.String(name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(pk), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrGC), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}
	}
	_, err := c.CreateTable(ctx, &ddb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			str(attrPK), str(attrSK), str(attrGM), str(attrGS), str(attrGA), str(attrGC),
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			gsi(indexMachine, attrGM), gsi(indexStatus, attrGS), gsi(indexShard, attrGA),
		},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create DynamoDB table %s: %w", name, err)
	}
	w := ddb.NewTableExistsWaiter(c, func(o *ddb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond })
	if err := w.Wait(ctx, &ddb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return fmt.Errorf("wait for DynamoDB table %s: %w", name, err)
	}
	_, err = c.UpdateTimeToLive(ctx, &ddb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(ttlAttr), Enabled: aws.Bool(true)},
	})
	if err != nil {
		return fmt.Errorf("enable TTL on DynamoDB table %s: %w", name, err)
	}
	return nil
}

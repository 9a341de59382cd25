package dynamodb

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ScanAPI is the part of the DynamoDB client TableMessages calls.
type ScanAPI interface {
	Scan(ctx context.Context, in *ddb.ScanInput, opts ...func(*ddb.Options)) (*ddb.ScanOutput, error)
}

// TableMessages reads the messages a table holds, without taking them: the
// retry table's retries in backoff (RetryTable) and the DynamoDB-stream
// dispatch table's messages (StreamQueue), whose items both keep the
// message in a payload attribute. A deploy's in-flight check reads them
// (deploy.Messages). It is a Scan, consistent, a page of up to 1 MB at a
// time, projecting the payload only: the retry table holds little (a poll
// deletes what it sends), the dispatch table a day of messages (their TTL).
type TableMessages struct {
	Client ScanAPI
	// Table is the table's name; Kind says what it is ("retry table").
	Table, Kind string
}

// Name says which table it is.
func (t TableMessages) Name() string { return t.Kind + " " + t.Table }

// Each calls fn with every message's payload.
func (t TableMessages) Each(ctx context.Context, fn func(payload []byte) error) error {
	var start map[string]types.AttributeValue
	for {
		out, err := t.Client.Scan(ctx, &ddb.ScanInput{
			TableName: aws.String(t.Table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start,
			ProjectionExpression: aws.String("#p"), ExpressionAttributeNames: map[string]string{"#p": retryBody},
		})
		if err != nil {
			return fmt.Errorf("scan DynamoDB table %s: %w", t.Table, err)
		}
		for _, it := range out.Items {
			switch v := it[retryBody].(type) {
			case *types.AttributeValueMemberB:
				err = fn(v.Value)
			case *types.AttributeValueMemberS:
				err = fn([]byte(v.Value))
			}
			if err != nil {
				return err
			}
		}
		if start = out.LastEvaluatedKey; len(start) == 0 {
			return nil
		}
	}
}

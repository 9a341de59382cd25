package dynamodb_test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/dynamodb"
)

// TestTableSchemaIsCreateTable: the schema deployments render is the table
// CreateTable makes, read back from DynamoDB Local.
func TestTableSchemaIsCreateTable(t *testing.T) {
	c, name := newTable(t, nil)
	out, err := c.DescribeTable(t.Context(), &ddb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := c.DescribeTimeToLive(t.Context(), &ddb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	td := out.Table
	got := dynamodb.Schema{
		PartitionKey: aws.ToString(td.KeySchema[0].AttributeName),
		SortKey:      aws.ToString(td.KeySchema[1].AttributeName),
		TTL:          aws.ToString(ttl.TimeToLiveDescription.AttributeName),
	}
	for _, ix := range td.GlobalSecondaryIndexes {
		got.Indexes = append(got.Indexes, dynamodb.IndexSchema{
			Name:         aws.ToString(ix.IndexName),
			PartitionKey: aws.ToString(ix.KeySchema[0].AttributeName),
			SortKey:      aws.ToString(ix.KeySchema[1].AttributeName),
			Projection:   string(ix.Projection.ProjectionType),
		})
	}
	slices.SortFunc(got.Indexes, func(a, b dynamodb.IndexSchema) int { return cmpStr(a.Name, b.Name) })
	want := dynamodb.TableSchema()
	slices.SortFunc(want.Indexes, func(a, b dynamodb.IndexSchema) int { return cmpStr(a.Name, b.Name) })
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("TableSchema differs from the created table (-schema +table):\n%s", d)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

package dynamodb_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/storetest"
	"github.com/lfsm/lfsm/internal/engine"
)

// newTable creates a fresh table on DynamoDB Local and deletes it after t.
func newTable(t *testing.T, m *awsconfig.Meter) (*ddb.Client, string) {
	t.Helper()
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", m), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	name := awstest.Name("lfsm-store-test")
	if err := dynamodb.CreateTable(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(name)})
	})
	if m != nil {
		m.Reset()
	}
	return c, name
}

func newStore(t *testing.T, o dynamodb.Options) *dynamodb.Store {
	t.Helper()
	if o.Client == nil {
		o.Client, o.Table = newTable(t, nil)
	}
	s, err := dynamodb.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.RunStore(t, func(t *testing.T) engine.Store { return newStore(t, dynamodb.Options{}) })
}

func TestDropRecorder(t *testing.T) {
	storetest.RunDropRecorder(t, func(t *testing.T) engine.DropRecorder { return newStore(t, dynamodb.Options{}) })
}

func TestPruner(t *testing.T) {
	storetest.RunPruner(t, func(t *testing.T) engine.Store { return newStore(t, dynamodb.Options{}) })
}

func TestProtocol(t *testing.T) {
	storetest.RunProtocol(t, func(t *testing.T) engine.Store { return newStore(t, dynamodb.Options{}) })
}

package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
)

// A bad aws.lease-cache is refused with the key, an example and no password.
func TestOpenAWSBadLeaseCache(t *testing.T) {
	_, err := openAWS(t.Context(), config.AWS{
		StoreTableARN: "arn:aws:dynamodb:us-east-1:123456789012:table/t",
		LeaseCache:    "http://admin:s3cret@cache.example:6379",
	})
	if err == nil || !strings.Contains(err.Error(), "aws.lease-cache") || !strings.Contains(err.Error(), "redis://host:6379/0") ||
		strings.Contains(err.Error(), "s3cret") {
		t.Errorf("openAWS = %v, want an error naming aws.lease-cache with an example, without the password", err)
	}
}

// --target aws with aws.lease-cache opens the composite store: leases on
// the cache (here the shared redis-server), the rest in the table.
func TestOpenAWSLeaseCache(t *testing.T) {
	redisAddr := awstest.Addr(t, "REDIS_ADDR")
	c := ddb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	name := awstest.Name("lfsm-cli-cache")
	if err := dynamodb.CreateTable(t.Context(), c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = c.DeleteTable(context.WithoutCancel(t.Context()), &ddb.DeleteTableInput{TableName: aws.String(name)})
	})
	s, err := openAWS(t.Context(), config.AWS{
		StoreTableARN: "arn:aws:dynamodb:us-east-1:123456789012:table/" + name,
		LeaseCache:    config.LeaseCacheURL("redis://" + redisAddr + "/0"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := awstest.Name("x")
	now := time.Now()
	if err := s.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "M", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: "M", Now: now, Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got := s.CacheStats(); got.Grants != 1 {
		t.Errorf("cache stats %+v, want the lease granted by the cache", got)
	}
}

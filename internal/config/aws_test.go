package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	tableARN = "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-executions"
	queueARN = "arn:aws:sqs:us-east-2:123456789012:orders-dispatch"
)

func TestAWSResolve(t *testing.T) {
	r, err := AWS{StoreTableARN: tableARN, DispatchARN: queueARN}.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Dispatch != "sqs" || r.StoreTable.Region != "eu-west-1" || r.StoreTable.Name() != "orders-executions" ||
		r.DispatchARN.Region != "us-east-2" || r.DispatchARN.Name() != "orders-dispatch" || !r.HasDispatch() {
		t.Errorf("Resolve = %+v", r)
	}
}

func TestAWSNoStore(t *testing.T) {
	_, err := AWS{}.Resolve()
	if !errors.Is(err, ErrNoAWSStore) {
		t.Fatalf("Resolve of empty settings = %v, want ErrNoAWSStore", err)
	}
	for _, want := range []string{"aws.stack", "aws.store-table-arn", "stack: orders-prod", "never falls back"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = AWS{Stack: "s"}.WithOutputs(map[string]string{"FunctionArn": "x"}).Resolve()
	if err == nil || !strings.Contains(err.Error(), "StoreTableArn") {
		t.Errorf("Resolve of a stack without the store output = %v, want it to name StoreTableArn", err)
	}
}

func TestAWSStackOutputsAndOverrides(t *testing.T) {
	outputs := map[string]string{
		"Dispatch": "sqs", "DispatchArn": queueARN, "StoreTableArn": tableARN,
		"FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:orders", "Retention": "30d",
	}
	own := "arn:aws:sqs:eu-west-1:123456789012:mine"
	r, err := AWS{Stack: "orders", DispatchARN: own}.WithOutputs(outputs).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.DispatchARN.String() != own {
		t.Errorf("dispatch = %s, want the explicit %s over the stack's", r.DispatchARN, own)
	}
	if r.StoreTable.String() != tableARN || r.Function == nil || r.Function.Function != "orders" || r.Retention != 30*24*time.Hour {
		t.Errorf("resolved from the stack = %+v", r)
	}
	r, err = AWS{Stack: "orders", Retention: "12h"}.WithOutputs(outputs).Resolve()
	if err != nil || r.Retention != 12*time.Hour {
		t.Errorf("explicit aws.retention over the stack's: %v, %v; want 12h", r.Retention, err)
	}
}

func TestAWSBadSettings(t *testing.T) {
	_, err := AWS{StoreTableARN: "orders", DispatchARN: "arn:aws:sns:us-east-1:123456789012:t", Dispatch: "carrier-pigeon",
		FunctionARN: "f", Retention: "a while"}.Resolve()
	if err == nil {
		t.Fatal("Resolve of bad settings succeeded")
	}
	for _, want := range []string{"aws.store-table-arn", "aws.dispatch \"carrier-pigeon\"", "aws.function-arn", "aws.retention"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	_, err = AWS{StoreTableARN: tableARN, DispatchARN: "arn:aws:sns:us-east-1:123456789012:t"}.Resolve()
	if err == nil || !strings.Contains(err.Error(), `service is "sns", not sqs`) {
		t.Errorf("an SNS topic as the sqs dispatch = %v", err)
	}
}

func TestAWSSecondary(t *testing.T) {
	const (
		streamARN   = "arn:aws:kinesis:us-east-1:123456789012:stream/orders-dispatch"
		secondARN   = "arn:aws:kinesis:us-west-2:123456789012:stream/orders-secondary"
		retryARN    = "arn:aws:dynamodb:us-east-1:123456789012:table/orders-retries"
		retry2ARN   = "arn:aws:dynamodb:us-west-2:123456789012:table/orders-retries-secondary"
		badQueueARN = "arn:aws:sqs:us-west-2:123456789012:orders-secondary"
	)
	// From the stack's outputs, as lfsm deploy names them.
	r, err := AWS{Stack: "orders"}.WithOutputs(map[string]string{
		"Dispatch": "kinesis", "DispatchArn": streamARN, "StoreTableArn": tableARN, "RetryTableArn": retryARN,
		"SecondaryDispatchArn": secondARN, "SecondaryRetryTableArn": retry2ARN,
	}).Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.SecondaryDispatch == nil || r.SecondaryDispatch.String() != secondARN || r.SecondaryDispatch.Region != "us-west-2" ||
		r.SecondaryRetryTable == nil || r.SecondaryRetryTable.Name() != "orders-retries-secondary" {
		t.Errorf("secondaries from the stack = %+v, %+v", r.SecondaryDispatch, r.SecondaryRetryTable)
	}
	// None: nil.
	r, err = AWS{StoreTableARN: tableARN, DispatchARN: queueARN}.Resolve()
	if err != nil || r.SecondaryDispatch != nil || r.SecondaryRetryTable != nil {
		t.Errorf("no secondaries: %+v, %v", r, err)
	}
	for _, tc := range []struct {
		a    AWS
		want string
	}{
		{AWS{StoreTableARN: tableARN, Dispatch: "kinesis", DispatchARN: streamARN, Secondary: Secondary{DispatchARN: badQueueARN}},
			`invalid aws.secondary.dispatch-arn: service is "sqs", not kinesis`},
		{AWS{StoreTableARN: tableARN, Dispatch: "kinesis", Secondary: Secondary{DispatchARN: secondARN}},
			"aws.secondary.dispatch-arn is set but aws.dispatch-arn is not"},
		{AWS{StoreTableARN: tableARN, Dispatch: "kinesis", DispatchARN: streamARN, Secondary: Secondary{DispatchARN: streamARN}},
			"the secondary must be another resource"},
		{AWS{StoreTableARN: tableARN, Dispatch: "kinesis", DispatchARN: streamARN, Secondary: Secondary{RetryTableARN: retry2ARN}},
			"aws.secondary.retry-table-arn is set but aws.retry-table-arn is not"},
		{AWS{StoreTableARN: tableARN, Dispatch: "kinesis", DispatchARN: streamARN, RetryTableARN: retryARN, Secondary: Secondary{RetryTableARN: "x"}},
			"invalid aws.secondary.retry-table-arn"},
	} {
		if _, err := tc.a.Resolve(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Resolve(%+v) = %v, want %q", tc.a, err, tc.want)
		}
	}
}

func TestAWSSecondaryLeaseCache(t *testing.T) {
	base := AWS{StoreTableARN: tableARN, DispatchARN: queueARN, LeaseCache: "redis://primary:6379"}
	a := base
	a.Secondary.LeaseCache = "memcached://secondary:11211"
	r, err := a.Resolve()
	if err != nil || r.SecondaryLeaseCache != "memcached://secondary:11211" {
		t.Fatalf("Resolve = %+v, %v", r.SecondaryLeaseCache, err)
	}
	for _, tc := range []struct {
		primary, secondary LeaseCacheURL
		want               string
	}{
		{"", "memcached://secondary:11211", "aws.secondary.lease-cache is set but aws.lease-cache is not"},
		{"redis://primary:6379", "redis://primary:6379", "the secondary must be another cache"},
		{"redis://primary:6379", "redis://user:hunter2@secondary", "invalid aws.secondary.lease-cache"},
	} {
		a := base
		a.LeaseCache, a.Secondary.LeaseCache = tc.primary, tc.secondary
		_, err := a.Resolve()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("primary %s secondary %s: %v, want %q", tc.primary.Redacted(), tc.secondary.Redacted(), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error prints the password: %v", err)
		}
	}
}

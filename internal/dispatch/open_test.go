package dispatch_test

import (
	"testing"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/dispatch"
)

// The sns dispatch has the store commit in a transaction: each invocation
// carries one record, so nothing is batched, and a transition is 3 calls
// (acquire, transaction, publish) instead of 4 (BenchmarkDispatch/sns+tx).
// SNS's New makes no call, so only the configuration is needed.
func TestOpenSNSCommitsInATransaction(t *testing.T) {
	awstest.Config(t, "SNS", nil) // skips without the emulators' environment
	d, err := dispatch.Open(t.Context(), dispatch.Options{Kind: dispatch.SNS, ARN: "arn:aws:sns:us-east-1:000000000000:t",
		RetryTableARN: "arn:aws:dynamodb:us-east-1:000000000000:table/r"})
	if err != nil {
		t.Fatal(err)
	}
	if !d.TransactCommit {
		t.Errorf("sns dispatch: TransactCommit false, want true")
	}
}

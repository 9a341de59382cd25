package cloudformation_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudformation"
	"github.com/lfsm/lfsm/internal/backend/cloudformation/cfntest"
)

func client(t *testing.T, f http.Handler) *cfn.Client {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return cfn.New(cfn.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), HTTPClient: srv.Client(),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

func TestOutputs(t *testing.T) {
	want := map[string]string{"StoreTableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t", "Dispatch": "sqs"}
	f := &cfntest.Fake{Stacks: map[string]map[string]string{"orders": want}}
	got, err := cloudformation.Outputs(t.Context(), client(t, f), "orders")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Outputs (-want +got):\n%s", diff)
	}
	if _, err := cloudformation.Outputs(t.Context(), client(t, f), "missing"); !errors.Is(err, cloudformation.ErrNoStack) {
		t.Errorf("Outputs of a missing stack = %v, want ErrNoStack", err)
	}
}

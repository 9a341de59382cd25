package host

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch/cwfake"
	"github.com/lfsm/lfsm/internal/deploy"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// The function reads the environment internal/deploy writes.
func TestEnvironmentContract(t *testing.T) {
	for _, p := range [][2]string{
		{envDispatch, deploy.EnvDispatch},
		{envDispatchARN, deploy.EnvDispatchARN},
		{envStoreTableARN, deploy.EnvStoreTableARN},
		{envRetryTableARN, deploy.EnvRetryTableARN},
		{envLeaseCache, deploy.EnvLeaseCache},
		{envLeaseTimeout, deploy.EnvLeaseTimeout},
		{envSecondaryDispatchARN, deploy.EnvSecondaryDispatchARN},
		{envSecondaryRetryTableARN, deploy.EnvSecondaryRetryTableARN},
		{envSecondaryLeaseCache, deploy.EnvSecondaryLeaseCache},
		{envRenames, deploy.EnvRenames},
		{envMetricsCloudWatch, deploy.EnvMetricsCloudWatch},
		{envMetricsNamespace, deploy.EnvMetricsNamespace},
		{envMetricsSecondaryRegion, deploy.EnvMetricsSecondaryRegion},
		{envChaos, deploy.EnvChaos},
		{envChaosSeed, deploy.EnvChaosSeed},
		{envChaosReport, deploy.EnvChaosReport},
		{envRetention, deploy.EnvRetention},
		{dispatchStepFunctions, string(deploy.ModeStepFunctions)},
		{dispatchSQS, string(deploy.DispatchSQS)},
	} {
		if p[0] != p[1] {
			t.Errorf("host reads %q, deploy writes %q", p[0], p[1])
		}
	}
}

// A function whose environment names no resources fails to start and says
// which variable to set.
func TestAWSHandlerEnvironment(t *testing.T) {
	s := &spec.Spec{Machines: []*spec.Machine{{Name: "M", States: []*spec.State{{Name: "S", Initial: true, Final: true}}}}}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, envDispatchARN + " is not set"},
		{map[string]string{envDispatch: "kafka"}, `LFSM_AWS_DISPATCH="kafka"`},
		{map[string]string{envDispatchARN: "arn:aws:sqs:nope"}, "invalid SQS queue ARN"},
		{map[string]string{envDispatch: "stepfunctions"}, ""},
		{map[string]string{envDispatch: "stepfunctions", envMetricsCloudWatch: "true", envMetricsNamespace: "orders"}, ""},
		{map[string]string{envDispatch: "stepfunctions", envMetricsCloudWatch: "yes please"}, `LFSM_METRICS_CLOUDWATCH="yes please": want true or false`},
		{map[string]string{envDispatch: "kinesis", envDispatchARN: "arn:aws:kinesis:us-east-1:1:stream/s"}, "no retry table"},
		{map[string]string{envDispatch: "dynamodb", envDispatchARN: "arn:aws:dynamodb:us-east-1:1:table/d", envRetryTableARN: "arn:aws:dynamodb:us-east-1:1:nope"}, "invalid DynamoDB table ARN"},
		{map[string]string{envDispatch: "dynamodb", envDispatchARN: "arn:aws:dynamodb:us-east-1:1:table/d", envStoreTableARN: "arn:aws:dynamodb:us-east-1:1:table/s", envRetryTableARN: "arn:aws:dynamodb:us-east-1:1:table/r",
			envLeaseCache: "http://user:s3cret@cache:6379"}, envLeaseCache + ": invalid lease cache endpoint http://user:xxxxx@cache:6379"},
		{map[string]string{envDispatch: "stepfunctions", envChaos: "dynamo.Acquire=0.2"}, "LFSM_FUNCTION_CHAOS: chaos key \"dynamo.Acquire\""},
		{map[string]string{envDispatch: "stepfunctions", envChaos: "sqlite.Acquire=0.2"}, "backend sqlite is not used here"},
		{map[string]string{envDispatch: "stepfunctions", envChaos: "0.1", envChaosSeed: "x"}, "LFSM_FUNCTION_CHAOS_SEED=\"x\""},
		// LFSM_CHAOS is the local runs' setting: it does not reach a function.
		{map[string]string{envDispatch: "stepfunctions", "LFSM_CHAOS": "nonsense"}, ""},
		{map[string]string{envDispatchARN: "arn:aws:sqs:us-east-1:123456789012:q", envStoreTableARN: "arn:aws:dynamodb:us-east-1:123456789012:table/t",
			envRetention: "soon"}, `LFSM_AWS_RETENTION: invalid age "soon"`},
	} {
		_, err := awsHandler(t.Context(), s, nil, func(k string) string { return tc.env[k] }, nil, nil, nil)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.env, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to say %q", tc.env, err, tc.want)
		}
	}
	if _, err := logLevel(func(string) string { return "loud" }); err == nil {
		t.Error("LFSM_LOG_LEVEL=loud: no error")
	}
}

func TestParseTableARN(t *testing.T) {
	r, n, err := parseTableARN("arn:aws:dynamodb:eu-west-1:123456789012:table/lfsm-store")
	if err != nil || r != "eu-west-1" || n != "lfsm-store" {
		t.Errorf("= %q %q %v", r, n, err)
	}
	for _, bad := range []string{"", "lfsm-store", "arn:aws:dynamodb:eu-west-1:1:table/", "arn:aws:sqs:eu-west-1:1:table/x", "arn:aws:dynamodb::1:table/x"} {
		if _, _, err := parseTableARN(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// The function the deploy model configures with metrics.cloudwatch
// publishes: the environment turns the publisher on, in its namespace, and
// an invocation ends with one PutMetricData. CloudWatch is cwfake, an
// httptest fake (no CloudWatch emulator exists; it decodes the SDK's
// rpc-v2-cbor requests), reached through the SDK's own endpoint variable.
func TestAWSHandlerPublishes(t *testing.T) {
	f := cwfake.New(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	s := &spec.Spec{Machines: []*spec.Machine{{Name: "M", States: []*spec.State{{Name: "S", Initial: true, Final: true}}}}}
	env := map[string]string{envDispatch: "stepfunctions", envMetricsCloudWatch: "true", envMetricsNamespace: "orders"}
	h, err := awsHandler(t.Context(), s, nil, func(k string) string { return env[k] }, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	task := `{"mode":"step_functions","message":{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init","correlation_id":"c1","steps":0,"retries":0},"user_context":{}}}`
	if _, err := h.Invoke(t.Context(), []byte(task)); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Namespace != "orders" {
		t.Fatalf("PutMetricData calls %+v, want one in namespace orders", calls)
	}
	if got := f.Sums()["orders dispatch Machine=M,State=pseudo_init,Event=pseudo_init"]; got != 1 {
		t.Errorf("sums %v: want the task's dispatch counted once", f.Sums())
	}
}

// With a secondary region, a function whose own region's CloudWatch fails
// puts its data in the secondary, and counts the failover in its EMF lines.
func TestAWSHandlerPublishesFailover(t *testing.T) {
	f := cwfake.New(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	f.FailRegion("us-east-1", -1)
	s := &spec.Spec{Machines: []*spec.Machine{{Name: "M", States: []*spec.State{{Name: "S", Initial: true, Final: true}}}}}
	env := map[string]string{envDispatch: "stepfunctions", envMetricsCloudWatch: "true", envMetricsNamespace: "orders",
		envMetricsSecondaryRegion: "us-west-2"}
	var lines bytes.Buffer
	h, err := awsHandler(t.Context(), s, nil, func(k string) string { return env[k] }, nil, lambda.NewEMF(&lines, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	task := `{"mode":"step_functions","message":{"version":"0.1","system_context":{"machine_name":"M","current_state":"pseudo_init","current_event":"pseudo_init","correlation_id":"c1","steps":0,"retries":0},"user_context":{}}}`
	for range 2 {
		if _, err := h.Invoke(t.Context(), []byte(task)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.RegionSums("us-west-2")["orders dispatch Machine=M,State=pseudo_init,Event=pseudo_init"]; got != 2 {
		t.Errorf("secondary region's sums %v, want both invocations' dispatch", f.RegionSums("us-west-2"))
	}
	if got := f.RegionSums("us-east-1"); len(got) != 0 {
		t.Errorf("the failing primary stored %v", got)
	}
	if n := strings.Count(lines.String(), `"failover":1`); n != 2 {
		t.Errorf("%d failovers counted in the EMF lines, want one per invocation:\n%s", n, lines.String())
	}
}

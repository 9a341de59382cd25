package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch/cwfake"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
)

// The EMF lines' namespace lfsm metrics --source emf reads is the one the
// handler writes.
func TestEMFNamespace(t *testing.T) {
	if cloudwatch.EMFNamespace != lambda.Namespace {
		t.Errorf("lfsm metrics reads namespace %q, the handler's EMF lines write %q", cloudwatch.EMFNamespace, lambda.Namespace)
	}
}

// metricsEnv runs lfsm metrics against cwfake, an httptest fake of
// CloudWatch (no CloudWatch emulator exists; it decodes the rpc-v2-cbor
// requests the SDK really sends), reached through the SDK's own endpoint
// variable, so the command's real client and region are what is tested.
type metricsEnv struct {
	t    *testing.T
	fake *cwfake.Fake
	url  string
}

func newMetricsEnv(t *testing.T) *metricsEnv {
	f := cwfake.New(t)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_CLOUDWATCH", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	return &metricsEnv{t: t, fake: f, url: srv.URL}
}

// publish sends counts to region as the function's publisher does, at at.
func (e *metricsEnv) publish(region, ns string, at time.Time, counts map[engine.MetricKey]int64) {
	e.t.Helper()
	c := cw.New(cw.Options{Region: region, BaseEndpoint: aws.String(e.url), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		})})
	p, err := cloudwatch.New(cloudwatch.Options{Client: c, Namespace: ns, Clock: func() time.Time { return at }})
	if err != nil {
		e.t.Fatal(err)
	}
	for k, n := range counts {
		p.Add(k, n)
	}
	if _, err := p.Flush(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

// run runs lfsm with args in a directory holding lfsm.yaml.
func (e *metricsEnv) run(settings string, args ...string) (string, string, int) {
	e.t.Helper()
	f, ios := testFactory(e.t, nil)
	if err := os.WriteFile(filepath.Join(f.WorkDir, "lfsm.yaml"), []byte(settings), 0o644); err != nil {
		e.t.Fatal(err)
	}
	root := NewRootCmd(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(e.t.Context())
	printError(ios, cmd, err)
	return ios.Out.(interface{ String() string }).String(), ios.ErrOut.(interface{ String() string }).String(), ExitCode(err)
}

const metricsSettings = `target: aws
aws:
  store-table-arn: arn:aws:dynamodb:eu-west-1:123456789012:table/orders-executions
metrics:
  cloudwatch: true
  namespace: orders
`

// TestMetricsAWS: lfsm metrics --target aws reads the deployed function's
// counters from CloudWatch in the function's region (the store table's
// here), summed over the window, in the publisher's namespace and
// dimensions, or with --source emf the EMF lines' metrics; -m keeps one
// machine; a failing CloudWatch is an error naming the region.
func TestMetricsAWS(t *testing.T) {
	e := newMetricsEnv(t)
	now := time.Now()
	first := engine.MetricKey{Name: engine.MetricDispatch, Machine: "Example", State: "FirstState", Event: "done"}
	e.publish("eu-west-1", "orders", now.Add(-2*time.Hour), map[engine.MetricKey]int64{
		first: 7,
		{Name: engine.MetricRetry, Machine: "Example", State: "FirstState", Event: "done"}: 2,
		{Name: engine.MetricDropped, Machine: "Example"}:                                   1,
	})
	e.publish("eu-west-1", "orders", now.Add(-30*time.Minute), map[engine.MetricKey]int64{
		first: 3,
		{Name: engine.MetricDone, Machine: "Other", State: "End", Event: "pseudo_final"}: 4,
	})
	e.publish("eu-west-1", "orders", now.Add(-48*time.Hour), map[engine.MetricKey]int64{first: 1000}) // before the window
	e.publish("us-east-1", "orders", now.Add(-time.Hour), map[engine.MetricKey]int64{first: 500})     // another region
	e.fake.Put(cwfake.Datum{Region: "eu-west-1", Namespace: "lfsm", Name: "dispatch",
		Dimensions: "machine=Example,state=FirstState,event=done", Value: 11, Timestamp: now.Add(-time.Hour)})

	out, errOut, code := e.run(metricsSettings, "metrics", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res MetricsResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := []MetricsCounter{
		{Name: "dropped", Machine: "Example", Value: 1},
		{Name: "dispatch", Machine: "Example", State: "FirstState", Event: "done", Value: 10},
		{Name: "retry", Machine: "Example", State: "FirstState", Event: "done", Value: 2},
		{Name: "done", Machine: "Other", State: "End", Event: "pseudo_final", Value: 4},
	}
	if d := cmp.Diff(want, res.Counters); d != "" {
		t.Errorf("counters (-want +got):\n%s", d)
	}
	if res.FormatVersion != "1" || res.Target != "aws" || res.Source != "publisher" || res.Namespace != "orders" ||
		!cmp.Equal(res.Regions, []string{"eu-west-1"}) || res.Totals["dispatch"] != 10 || res.CloudWatch == nil ||
		res.CloudWatch.MetricsRequested != 4 || res.End.Sub(res.Start) != 24*time.Hour {
		t.Errorf("result %+v", res)
	}

	out, _, _ = e.run(metricsSettings, "metrics", "--source", "emf", "-m", "Example", "--since", "3h", "--output", "json")
	res = MetricsResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if d := cmp.Diff([]MetricsCounter{{Name: "dispatch", Machine: "Example", State: "FirstState", Event: "done", Value: 11}}, res.Counters); d != "" || res.Namespace != "lfsm" {
		t.Errorf("--source emf: namespace %s, counters (-want +got):\n%s", res.Namespace, d)
	}

	out, errOut, _ = e.run(metricsSettings, "metrics", "--since", "1h")
	for _, w := range []string{"MACHINE", "DISPATCH", "DONE", "Example  FirstState  done", "total"} {
		if !strings.Contains(out, w) {
			t.Errorf("text output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(errOut, "CloudWatch (publisher, namespace orders, eu-west-1)") {
		t.Errorf("stderr does not say where it read: %s", errOut)
	}

	// With a secondary region the publisher's counters are both regions'.
	e.publish("us-west-2", "orders", now.Add(-time.Hour), map[engine.MetricKey]int64{first: 5})
	out, _, _ = e.run(metricsSettings+"  secondary-region: us-west-2\n", "metrics", "--output", "json")
	res = MetricsResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Totals["dispatch"] != 15 || !cmp.Equal(res.Regions, []string{"eu-west-1", "us-west-2"}) || res.CloudWatch.ListCalls != 2 {
		t.Errorf("with a secondary region: totals %v regions %v usage %+v; want 10+5 dispatches from both", res.Totals, res.Regions, res.CloudWatch)
	}

	e.fake.FailRegion("eu-west-1", -1)
	_, errOut, code = e.run(metricsSettings, "metrics")
	if code != 1 || !strings.Contains(errOut, "read metrics in eu-west-1") {
		t.Errorf("against a failing CloudWatch: exit %d, %s", code, errOut)
	}
}

// Bad flags are usage errors that say what is allowed.
func TestMetricsUsage(t *testing.T) {
	e := newMetricsEnv(t)
	for _, tc := range []struct {
		settings string
		args     []string
		want     string
	}{
		{"", []string{"metrics", "--since", "soon"}, `invalid --since`},
		{"", []string{"metrics", "--source", "emf"}, "applies to --target aws only"},
		{metricsSettings, []string{"metrics", "--source", "xray"}, "invalid --source"},
		{"target: aws\n", []string{"metrics"}, "needs to know where executions are stored"},
	} {
		_, errOut, code := e.run(tc.settings, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %s; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}

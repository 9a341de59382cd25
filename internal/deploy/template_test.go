package deploy

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/lfsm/lfsm/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden templates in testdata/golden")

func seedSpec(t *testing.T) *spec.Spec {
	t.Helper()
	s, diags := spec.Load(filepath.Join("..", "..", "examples", "seed", "fsm.yaml"))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return s
}

// variants are the deployments the golden files cover: each dispatch, with
// and without secondaries, and Step Functions mode.
func variants() map[string]Settings {
	v := map[string]Settings{}
	for _, d := range Dispatches() {
		v[string(d)] = Settings{Project: "seed", Dispatch: d}
		v[string(d)+"-secondary"] = Settings{Project: "seed", Dispatch: d, Secondary: true}
	}
	v["stepfunctions"] = Settings{Project: "seed", Mode: ModeStepFunctions}
	// The PutMetricData publisher on (metrics.cloudwatch in lfsm.yaml).
	v["sqs-metrics"] = Settings{Project: "seed", Metrics: &Metrics{Namespace: "orders", SecondaryRegion: "us-west-2"}}
	v["stepfunctions-metrics"] = Settings{Project: "seed", Mode: ModeStepFunctions, Metrics: &Metrics{}}
	// The explicit opt-in to chaos in the function (--function-chaos).
	v["kinesis-chaos"] = Settings{Project: "seed", Dispatch: DispatchKinesis, Chaos: "dynamodb.Acquire=0.2,kinesis.Send=0.1"}
	return v
}

func build(t *testing.T, st Settings) *Model {
	t.Helper()
	m, err := Build(seedSpec(t), st)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTemplateGolden: the seed's Example, once per dispatch and in Step
// Functions mode. Run with -update after an intended change and review the
// diff.
func TestTemplateGolden(t *testing.T) {
	for name, st := range variants() {
		t.Run(name, func(t *testing.T) {
			got, err := build(t, st).Template().YAML()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", name+".yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if d := cmp.Diff(string(want), string(got)); d != "" {
				t.Errorf("template differs from %s (-want +got):\n%s", path, d)
			}
		})
	}
}

// TestTemplateValidatesAgainstCloudFormationSchemas: every variant passes
// CloudFormation's resource schemas and every reference resolves.
func TestTemplateValidatesAgainstCloudFormationSchemas(t *testing.T) {
	for name, st := range variants() {
		t.Run(name, func(t *testing.T) {
			assertValid(t, build(t, st).Template())
		})
	}
	t.Run("provisioned-kinesis+x86", func(t *testing.T) {
		assertValid(t, build(t, Settings{Project: "seed", Dispatch: DispatchKinesis, KinesisShards: 4,
			Architecture: ArchX8664, MemoryMB: 1024, Timeout: 120 * time.Second, Tags: map[string]string{"team": "pay"}}).Template())
	})
}

// TestCheckerCatchesMistakes: the checker itself, on templates broken on
// purpose. A checker that passes everything would make the test above
// worthless.
func TestCheckerCatchesMistakes(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(*Template)
		want   string
	}{
		{"unknown property", func(tm *Template) {
			tm.Resources[IDDispatchQueue].Properties["VisibilityTimeoutSeconds"] = 10
		}, "Resources.DispatchQueue.Properties/: additional properties 'VisibilityTimeoutSeconds' not allowed"},
		{"wrong type", func(tm *Template) {
			tm.Resources[IDFunction].Properties["MemorySize"] = "lots"
		}, "Resources.Function.Properties/MemorySize: got string, want integer"},
		{"missing required", func(tm *Template) {
			delete(tm.Resources[IDFunction].Properties, "Role")
		}, "Resources.Function.Properties/: missing property 'Role'"},
		{"read-only set", func(tm *Template) {
			tm.Resources[IDExecutionsTable].Properties["StreamArn"] = "arn:aws:dynamodb:us-east-1:123456789012:table/x/stream/y"
		}, "Resources.ExecutionsTable: read-only property StreamArn is set (AWS sets it)"},
		{"ref to nothing", func(tm *Template) {
			tm.Resources[IDDispatchMapping].Properties["FunctionName"] = Ref("Fnction")
		}, `Resources.DispatchMapping.Properties.FunctionName: Ref to "Fnction", which is no resource, parameter or pseudo parameter`},
		{"getatt of nothing", func(tm *Template) {
			tm.Resources[IDFunction].Properties["Role"] = GetAtt("Role", "Arn")
		}, `Resources.Function.Properties.Role: Fn::GetAtt of "Role", which is no resource`},
		{"getatt of no attribute", func(tm *Template) {
			tm.Outputs["X"] = Output{Value: GetAtt(IDDispatchQueue, "Url")}
		}, `Outputs.X: Fn::GetAtt DispatchQueue.Url: AWS::SQS::Queue has no attribute "Url"`},
		{"sub of nothing", func(tm *Template) {
			tm.Resources[IDLogGroup].Properties["LogGroupName"] = Sub("/aws/lambda/${Functon}")
		}, `Resources.LogGroup.Properties.LogGroupName: Ref to "Functon", which is no resource, parameter or pseudo parameter`},
		{"depends on nothing", func(tm *Template) {
			tm.Resources[IDFunction].DependsOn = []string{"Logs"}
		}, `Resources.Function: DependsOn "Logs", which is no resource`},
		{"nested wrong enum", func(tm *Template) {
			tm.Resources[IDFunction].Properties["LoggingConfig"] = map[string]any{"LogFormat": "Yaml"}
		}, "Resources.Function.Properties/LoggingConfig/LogFormat: value must be one of 'Text', 'JSON'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tm := build(t, Settings{Project: "seed"}).Template()
			c.break_(tm)
			probs, err := checkTemplate(tm)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(probs, c.want) {
				t.Errorf("want problem\n  %s\ngot %d:\n  %s", c.want, len(probs), strings.Join(probs, "\n  "))
			}
		})
	}
}

// statements renders the function role's policy as the JSON that
// CloudFormation receives.
func statements(t *testing.T, tm *Template) []any {
	t.Helper()
	var doc struct {
		Resources map[string]struct {
			Properties struct {
				Policies []struct {
					PolicyDocument struct {
						Statement []any
					}
				}
			}
		}
	}
	b, err := tm.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources[IDFunctionRole].Properties.Policies[0].PolicyDocument.Statement
}

func jsonValue(t *testing.T, s string) []any {
	t.Helper()
	var v []any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test json: %v\n%s", err, s)
	}
	return v
}

// TestFunctionPolicyExact: the function role's statements, exactly, per
// dispatch: the handler's calls and the pollers', on the stack's resources.
func TestFunctionPolicyExact(t *testing.T) {
	const logs = `{"Sid":"Logs","Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents"],"Resource":[{"Fn::GetAtt":["LogGroup","Arn"]}]}`
	const storeOnly = `{"Sid":"Store","Effect":"Allow",
		"Action":["dynamodb:BatchGetItem","dynamodb:BatchWriteItem","dynamodb:GetItem","dynamodb:PutItem","dynamodb:Query","dynamodb:UpdateItem"],
		"Resource":[{"Fn::GetAtt":["ExecutionsTable","Arn"]},{"Fn::Sub":"${ExecutionsTable.Arn}/index/by_machine"},
			{"Fn::Sub":"${ExecutionsTable.Arn}/index/by_status"},{"Fn::Sub":"${ExecutionsTable.Arn}/index/by_shard"}]}`
	const store = storeOnly + `,
		{"Sid":"Retries","Effect":"Allow","Action":["dynamodb:DeleteItem","dynamodb:PutItem","dynamodb:Query"],
		"Resource":[{"Fn::GetAtt":["RetriesTable","Arn"]},{"Fn::Sub":"${RetriesTable.Arn}/index/by_run_at"}]}`
	const sqsSend = `{"Sid":"DispatchSend","Effect":"Allow","Action":["sqs:GetQueueUrl","sqs:SendMessage"],"Resource":[{"Fn::GetAtt":["DispatchQueue","Arn"]}]}`
	const sqsPoll = `{"Sid":"DispatchPoll","Effect":"Allow","Action":["sqs:ChangeMessageVisibility","sqs:DeleteMessage","sqs:GetQueueAttributes","sqs:ReceiveMessage"],"Resource":[{"Fn::GetAtt":["DispatchQueue","Arn"]}]}`
	const snsSend = `{"Sid":"DispatchSend","Effect":"Allow","Action":["sns:GetTopicAttributes","sns:Publish"],"Resource":[{"Ref":"DispatchTopic"}]}`
	const failure = `{"Sid":"FailureDestination","Effect":"Allow","Action":["sqs:SendMessage"],"Resource":[{"Fn::GetAtt":["FailureQueue","Arn"]}]}`
	metrics := func(ns string) string {
		return `{"Sid":"Metrics","Effect":"Allow","Action":["cloudwatch:PutMetricData"],"Resource":["*"],"Condition":{"StringEquals":{"cloudwatch:namespace":"` + ns + `"}}}`
	}
	want := map[string]string{
		"sqs":     `[` + logs + `,` + storeOnly + `,` + sqsSend + `,` + sqsPoll + `]`,
		"sns-sqs": `[` + logs + `,` + storeOnly + `,` + sqsSend + `,` + sqsPoll + `]`,
		"sns":     `[` + logs + `,` + store + `,` + snsSend + `,` + failure + `]`,
		"kinesis": `[` + logs + `,` + store + `,
			{"Sid":"DispatchSend","Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":[{"Fn::GetAtt":["DispatchStream","Arn"]}]},
			{"Sid":"DispatchPoll","Effect":"Allow","Action":["kinesis:DescribeStream","kinesis:DescribeStreamSummary","kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards"],"Resource":[{"Fn::GetAtt":["DispatchStream","Arn"]}]},` + failure + `]`,
		"dynamodb": `[` + logs + `,` + store + `,
			{"Sid":"DispatchSend","Effect":"Allow","Action":["dynamodb:PutItem"],"Resource":[{"Fn::GetAtt":["DispatchTable","Arn"]}]},
			{"Sid":"DispatchPoll","Effect":"Allow","Action":["dynamodb:DescribeStream","dynamodb:GetRecords","dynamodb:GetShardIterator"],"Resource":[{"Fn::GetAtt":["DispatchTable","StreamArn"]}]},
			{"Sid":"DispatchListStreams","Effect":"Allow","Action":["dynamodb:ListStreams"],"Resource":["*"],"Condition":{"StringEquals":{"aws:RequestedRegion":{"Ref":"AWS::Region"}}}},` + failure + `]`,
		"stepfunctions":         `[` + logs + `]`,
		"sqs-metrics":           `[` + logs + `,` + storeOnly + `,` + sqsSend + `,` + sqsPoll + `,` + metrics("orders") + `]`,
		"stepfunctions-metrics": `[` + logs + `,` + metrics("lfsm") + `]`,
	}
	// With secondaries, the same statements name both of each resource.
	const storeBoth = storeOnly + `,
		{"Sid":"Retries","Effect":"Allow","Action":["dynamodb:DeleteItem","dynamodb:PutItem","dynamodb:Query"],
		"Resource":[{"Fn::GetAtt":["RetriesTable","Arn"]},{"Fn::Sub":"${RetriesTable.Arn}/index/by_run_at"},
			{"Fn::GetAtt":["SecondaryRetriesTable","Arn"]},{"Fn::Sub":"${SecondaryRetriesTable.Arn}/index/by_run_at"}]}`
	const queues = `[{"Fn::GetAtt":["DispatchQueue","Arn"]},{"Fn::GetAtt":["SecondaryDispatchQueue","Arn"]}]`
	const sqsBoth = `{"Sid":"DispatchSend","Effect":"Allow","Action":["sqs:GetQueueUrl","sqs:SendMessage"],"Resource":` + queues + `},
		{"Sid":"DispatchPoll","Effect":"Allow","Action":["sqs:ChangeMessageVisibility","sqs:DeleteMessage","sqs:GetQueueAttributes","sqs:ReceiveMessage"],"Resource":` + queues + `}`
	const streams = `[{"Fn::GetAtt":["DispatchStream","Arn"]},{"Fn::GetAtt":["SecondaryDispatchStream","Arn"]}]`
	want["sqs-secondary"] = `[` + logs + `,` + storeOnly + `,` + sqsBoth + `]`
	want["sns-sqs-secondary"] = want["sqs-secondary"]
	// Chaos needs no permission: an injected failure is never a call.
	want["kinesis-chaos"] = want["kinesis"]
	want["sns-secondary"] = `[` + logs + `,` + storeBoth + `,
		{"Sid":"DispatchSend","Effect":"Allow","Action":["sns:GetTopicAttributes","sns:Publish"],"Resource":[{"Ref":"DispatchTopic"},{"Ref":"SecondaryDispatchTopic"}]},` + failure + `]`
	want["kinesis-secondary"] = `[` + logs + `,` + storeBoth + `,
		{"Sid":"DispatchSend","Effect":"Allow","Action":["kinesis:PutRecord","kinesis:PutRecords"],"Resource":` + streams + `},
		{"Sid":"DispatchPoll","Effect":"Allow","Action":["kinesis:DescribeStream","kinesis:DescribeStreamSummary","kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards"],"Resource":` + streams + `},` + failure + `]`
	want["dynamodb-secondary"] = `[` + logs + `,` + storeBoth + `,
		{"Sid":"DispatchSend","Effect":"Allow","Action":["dynamodb:PutItem"],"Resource":[{"Fn::GetAtt":["DispatchTable","Arn"]},{"Fn::GetAtt":["SecondaryDispatchTable","Arn"]}]},
		{"Sid":"DispatchPoll","Effect":"Allow","Action":["dynamodb:DescribeStream","dynamodb:GetRecords","dynamodb:GetShardIterator"],"Resource":[{"Fn::GetAtt":["DispatchTable","StreamArn"]},{"Fn::GetAtt":["SecondaryDispatchTable","StreamArn"]}]},
		{"Sid":"DispatchListStreams","Effect":"Allow","Action":["dynamodb:ListStreams"],"Resource":["*"],"Condition":{"StringEquals":{"aws:RequestedRegion":{"Ref":"AWS::Region"}}}},` + failure + `]`
	for name, st := range variants() {
		t.Run(name, func(t *testing.T) {
			tm := build(t, st).Template()
			if d := cmp.Diff(jsonValue(t, want[name]), statements(t, tm)); d != "" {
				t.Errorf("function policy (-want +got):\n%s", d)
			}
			for _, s := range statements(t, tm) {
				for _, a := range s.(map[string]any)["Action"].([]any) {
					if strings.Contains(a.(string), "*") {
						t.Errorf("wildcard action %s", a)
					}
				}
			}
		})
	}
	t.Run("unscoped statements are explained", func(t *testing.T) {
		tm := build(t, Settings{Project: "seed", Dispatch: DispatchDynamoDB}).Template()
		why := tm.Resources[IDFunctionRole].Metadata["lfsm"].(map[string]any)["why"].(map[string]any)
		if !strings.Contains(why["DispatchListStreams"].(string), "no resource-level permission") {
			t.Errorf("role metadata does not explain DispatchListStreams: %v", why)
		}
	})
	t.Run("the metrics statement is explained", func(t *testing.T) {
		tm := build(t, Settings{Project: "seed", Metrics: &Metrics{}}).Template()
		why := tm.Resources[IDFunctionRole].Metadata["lfsm"].(map[string]any)["why"].(map[string]any)
		if !strings.Contains(why["Metrics"].(string), "no resource-level permission") || !strings.Contains(why["Metrics"].(string), "cloudwatch:namespace") {
			t.Errorf("role metadata does not explain Metrics: %v", why)
		}
	})
	t.Run("state machine role invokes only the function", func(t *testing.T) {
		tm := build(t, Settings{Project: "seed", Mode: ModeStepFunctions}).Template()
		b, _ := json.Marshal(tm.Resources[IDStateMachineRole].Properties["Policies"])
		want := `[{"PolicyDocument":{"Statement":[{"Action":["lambda:InvokeFunction"],"Effect":"Allow","Resource":[{"Fn::GetAtt":["Function","Arn"]},{"Fn::Sub":"${Function.Arn}:*"}],"Sid":"InvokeFunction"}],"Version":"2012-10-17"},"PolicyName":"lfsm"}]`
		if string(b) != want {
			t.Errorf("state machine role policy:\n got %s\nwant %s", b, want)
		}
	})
}

// refsIn lists the logical ids v refers to (Ref, GetAtt, Sub).
func refsIn(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			switch k {
			case "Ref":
				out = append(out, e.(string))
			case "Fn::GetAtt":
				out = append(out, e.([]any)[0].(string))
			case "Fn::Sub":
				s := e.(string)
				for _, part := range strings.Split(s, "${")[1:] {
					id, _, _ := strings.Cut(part, "}")
					id, _, _ = strings.Cut(id, ".")
					out = append(out, id)
				}
			default:
				out = append(out, refsIn(e)...)
			}
		}
	case []any:
		for _, e := range v {
			out = append(out, refsIn(e)...)
		}
	}
	return out
}

// TestTemplateShape: the properties the issue asks for, per dispatch.
func TestTemplateShape(t *testing.T) {
	for name, st := range variants() {
		t.Run(name, func(t *testing.T) {
			m := build(t, st)
			tm := m.Template()
			// Stack outputs name every resource (how aws.stack finds them).
			named := map[string]bool{}
			for _, o := range tm.Outputs {
				for _, id := range refsIn(o.Value) {
					named[id] = true
				}
			}
			for id, r := range tm.Resources {
				switch r.Type {
				case "AWS::Lambda::Permission", "AWS::SNS::Subscription", "AWS::SQS::QueuePolicy", "AWS::Lambda::EventInvokeConfig":
					// Attachments: no ARN of their own that anyone looks up.
					continue
				}
				if !named[id] {
					t.Errorf("no stack output names resource %s", id)
				}
			}
			// Every taggable resource carries the project and stack tags.
			sch, err := loadSchemas()
			if err != nil {
				t.Fatal(err)
			}
			for id, r := range tm.Resources {
				if !sch[r.Type].props["Tags"] {
					continue
				}
				b, _ := json.Marshal(r.Properties["Tags"])
				if !strings.Contains(string(b), `{"Key":"lfsm:project","Value":"seed"}`) ||
					!strings.Contains(string(b), `{"Key":"lfsm:stack","Value":{"Ref":"AWS::StackName"}}`) {
					t.Errorf("%s (%s) is not tagged with lfsm:project and lfsm:stack: %s", id, r.Type, b)
				}
			}
			// Stateful tables are retained on delete and on replacement.
			for _, tb := range m.Tables {
				r := tm.Resources[tb.ID]
				if r.DeletionPolicy != "Retain" || r.UpdateReplacePolicy != "Retain" {
					t.Errorf("%s: DeletionPolicy %q UpdateReplacePolicy %q, want Retain", tb.ID, r.DeletionPolicy, r.UpdateReplacePolicy)
				}
				pitr := r.Properties["PointInTimeRecoverySpecification"].(map[string]any)
				if pitr["PointInTimeRecoveryEnabled"] != true {
					t.Errorf("%s: no point-in-time recovery", tb.ID)
				}
				if r.Properties["TimeToLiveSpecification"] == nil {
					t.Errorf("%s: no TTL", tb.ID)
				}
			}
			fn := tm.Resources[IDFunction].Properties
			if fn["Runtime"] != "provided.al2023" || fn["Handler"] != "bootstrap" {
				t.Errorf("function runtime %v handler %v", fn["Runtime"], fn["Handler"])
			}
			// The publisher is on exactly when metrics are, in their namespace.
			env := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			wantMetrics := map[string]any{}
			if st.Metrics != nil {
				ns := st.Metrics.Namespace
				if ns == "" {
					ns = DefaultMetricsNamespace
				}
				wantMetrics = map[string]any{EnvMetricsCloudWatch: "true", EnvMetricsNamespace: ns}
				if sr := st.Metrics.SecondaryRegion; sr != "" {
					wantMetrics[EnvMetricsSecondaryRegion] = sr
				}
			}
			gotMetrics := map[string]any{}
			for _, k := range []string{EnvMetricsCloudWatch, EnvMetricsNamespace, EnvMetricsSecondaryRegion} {
				if v, ok := env[k]; ok {
					gotMetrics[k] = v
				}
			}
			if d := cmp.Diff(wantMetrics, gotMetrics); d != "" {
				t.Errorf("metrics environment (-want +got):\n%s", d)
			}
			if st.Mode == ModeStepFunctions {
				if len(m.Mappings) != 0 || tm.Resources["StateMachineExample"] == nil {
					t.Errorf("step functions mode: mappings %v, state machine %v", m.Mappings, tm.Resources["StateMachineExample"])
				}
				return
			}
			// Environment names the dispatch and the store.
			for _, k := range []string{EnvTarget, EnvDispatch, EnvDispatchARN, EnvStoreTableARN} {
				if env[k] == nil {
					t.Errorf("function environment has no %s", k)
				}
			}
			for _, mp := range m.Mappings {
				p := tm.Resources[mp.ID].Properties
				if !slices.Equal(p["FunctionResponseTypes"].([]any), []any{"ReportBatchItemFailures"}) {
					t.Errorf("mapping without ReportBatchItemFailures")
				}
				if mp.Stream {
					for _, k := range []string{"StartingPosition", "MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError", "DestinationConfig"} {
						if p[k] == nil {
							t.Errorf("stream mapping has no %s", k)
						}
					}
				}
				if st.Dispatch == DispatchDynamoDB && p["FilterCriteria"] == nil {
					t.Errorf("dynamodb stream mapping has no INSERT filter")
				}
			}
			// A secondary is consumed as the primary is, and the function is
			// told where it is.
			if st.Secondary {
				if _, ok := env[EnvSecondaryDispatchARN]; !ok {
					t.Errorf("function environment has no %s", EnvSecondaryDispatchARN)
				}
				if _, ok := env[EnvRetryTableARN]; ok {
					if _, ok := env[EnvSecondaryRetryTableARN]; !ok {
						t.Errorf("function environment has no %s", EnvSecondaryRetryTableARN)
					}
				}
				if tm.Outputs[OutSecondaryDispatchARN].Value == nil {
					t.Errorf("no output %s", OutSecondaryDispatchARN)
				}
				wantMappings := 2
				if st.Dispatch == DispatchSNS {
					wantMappings = 0
					if tm.Resources[IDSecondarySubscription] == nil || tm.Resources[IDSecondaryTopicPermission] == nil {
						t.Errorf("the secondary topic does not invoke the function")
					}
				}
				if len(m.Mappings) != wantMappings {
					t.Errorf("%d mappings, want %d (the primary's and the secondary's)", len(m.Mappings), wantMappings)
				}
				for i, mp := range m.Mappings {
					if i > 0 && mp.ID == m.Mappings[0].ID {
						t.Errorf("mappings share logical id %s", mp.ID)
					}
				}
			}
			if q := m.Queue(IDDispatchQueue); q != nil {
				if q.Visibility < 6*m.Settings.Timeout {
					t.Errorf("visibility %s < 6 x timeout %s", q.Visibility, m.Settings.Timeout)
				}
				bounces := int(m.Settings.LeaseTimeout/q.Visibility) + 1
				if q.MaxReceiveCount <= bounces {
					t.Errorf("maxReceiveCount %d <= lease bounces %d", q.MaxReceiveCount, bounces)
				}
			}
		})
	}
}

func TestMaxReceiveCount(t *testing.T) {
	for _, c := range []struct {
		lease, vis time.Duration
		want       int
	}{
		{300 * time.Second, 180 * time.Second, 10}, // 3 bounces + 5, floor 10
		{3600 * time.Second, 180 * time.Second, 26},
		{300 * time.Second, 300 * time.Second, 10},
	} {
		if got := MaxReceiveCount(c.lease, c.vis); got != c.want {
			t.Errorf("MaxReceiveCount(%s, %s) = %d, want %d", c.lease, c.vis, got, c.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	_, err := Build(&spec.Spec{}, Settings{Project: "p", Stack: "9bad", Dispatch: "carrier-pigeon", MemoryMB: 64,
		Timeout: 1500 * time.Millisecond, LogRetentionDays: 10, Tags: map[string]string{"lfsm:x": "y"}})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{`stack name "9bad"`, `dispatch "carrier-pigeon": want one of sqs, kinesis, sns, sns-sqs, dynamodb`,
		"memory 64 MB", "timeout 1.5s", "log retention 10 days", `tag "lfsm:x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// TestYAMLIsJSONTemplate: both encodings carry the same document.
func TestYAMLIsJSONTemplate(t *testing.T) {
	tm := build(t, Settings{Project: "seed", Dispatch: DispatchSNSSQS}).Template()
	y, err := tm.YAML()
	if err != nil {
		t.Fatal(err)
	}
	j, err := tm.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromY, fromJ any
	if err := yaml.Unmarshal(y, &fromY); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(j, &fromJ); err != nil {
		t.Fatal(err)
	}
	// yaml decodes integers as int; normalise through JSON.
	b, _ := json.Marshal(fromY)
	var norm any
	_ = json.NewDecoder(bytes.NewReader(b)).Decode(&norm)
	if d := cmp.Diff(fromJ, norm); d != "" {
		t.Errorf("YAML and JSON differ:\n%s", d)
	}
}

// TestImportTemplate: the template of a resource import holds exactly the
// adopted tables, as the full template has them, and passes the schemas.
func TestImportTemplate(t *testing.T) {
	m := build(t, Settings{Project: "seed", Dispatch: DispatchDynamoDB})
	tm := m.ImportTemplate([]string{IDExecutionsTable, IDDispatchTable})
	if len(tm.Resources) != 2 || len(tm.Outputs) != 0 || len(tm.Parameters) != 0 {
		t.Fatalf("import template: %d resources, %d outputs, %d parameters", len(tm.Resources), len(tm.Outputs), len(tm.Parameters))
	}
	full := m.Template()
	if d := cmp.Diff(full.Resources[IDExecutionsTable], tm.Resources[IDExecutionsTable]); d != "" {
		t.Errorf("imported table differs from the full template's:\n%s", d)
	}
	if tm.Resources[IDDispatchTable].DeletionPolicy != "Retain" {
		t.Error("an imported resource needs a DeletionPolicy")
	}
	if got := m.TableName(m.Table(IDExecutionsTable)); got != "seed-executions" {
		t.Errorf("table name %q", got)
	}
	assertValid(t, tm)
}

func TestMetricsNamespaceValidate(t *testing.T) {
	for _, tc := range []struct{ ns, want string }{
		{"orders", ""},
		{"Team/orders-prod:v1", ""},
		{"AWS/Lambda", "the prefix AWS/ is reserved"},
		{"has space", "want 1 to 255 letters"},
		{strings.Repeat("n", 256), "want 1 to 255 letters"},
	} {
		_, err := Build(seedSpec(t), Settings{Project: "seed", Metrics: &Metrics{Namespace: tc.ns}})
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("namespace %.20q: %v, want %q", tc.ns, err, tc.want)
		}
	}
}

func TestMetricsSecondaryRegionValidate(t *testing.T) {
	_, err := Build(seedSpec(t), Settings{Project: "seed", Metrics: &Metrics{SecondaryRegion: "westeros"}})
	if err == nil || !strings.Contains(err.Error(), `metrics.secondary-region "westeros": want a region name`) {
		t.Errorf("bad region: %v", err)
	}
	st := vpcSettings(DispatchSQS, EgressEndpoints)
	st.Metrics = &Metrics{SecondaryRegion: "us-west-2"}
	if _, err := Build(seedSpec(t), st); err == nil || !strings.Contains(err.Error(), "reaches another region only through a NAT") {
		t.Errorf("a secondary region behind interface endpoints: %v, want a refusal", err)
	}
	st = vpcSettings(DispatchSQS, EgressNAT)
	st.Metrics = &Metrics{SecondaryRegion: "us-west-2"}
	if _, err := Build(seedSpec(t), st); err != nil {
		t.Errorf("a secondary region through a NAT: %v", err)
	}
}

// A stack with a lease cache takes its endpoint as a NoEcho parameter (it
// may carry a password) and hands it to the function by reference.
func TestLeaseCacheParameter(t *testing.T) {
	m, err := Build(seedSpec(t), Settings{Project: "seed", LeaseCache: true})
	if err != nil {
		t.Fatal(err)
	}
	tm := m.Template()
	p, ok := tm.Parameters[ParamLeaseCache]
	if !ok || !p.NoEcho || p.Type != "String" {
		t.Errorf("parameter %s = %+v, %v; want a NoEcho string", ParamLeaseCache, p, ok)
	}
	env := tm.Resources[IDFunction].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
	b, _ := json.Marshal(env[EnvLeaseCache])
	if string(b) != `{"Ref":"LeaseCache"}` {
		t.Errorf("function environment %s = %s, want a Ref of the parameter", EnvLeaseCache, b)
	}
	m, err = Build(seedSpec(t), Settings{Project: "seed"})
	if err != nil {
		t.Fatal(err)
	}
	tm = m.Template()
	if _, ok := tm.Parameters[ParamLeaseCache]; ok {
		t.Errorf("a stack without a lease cache has the %s parameter", ParamLeaseCache)
	}
}

// A stack with a secondary lease cache takes its endpoint as a second NoEcho
// parameter and hands it to the function by reference.
func TestSecondaryLeaseCacheParameter(t *testing.T) {
	m, err := Build(seedSpec(t), Settings{Project: "seed", LeaseCache: true, SecondaryLeaseCache: true})
	if err != nil {
		t.Fatal(err)
	}
	tm := m.Template()
	p, ok := tm.Parameters[ParamSecondaryLeaseCache]
	if !ok || !p.NoEcho || p.Type != "String" {
		t.Errorf("parameter %s = %+v, %v; want a NoEcho string", ParamSecondaryLeaseCache, p, ok)
	}
	env := tm.Resources[IDFunction].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
	b, _ := json.Marshal(env[EnvSecondaryLeaseCache])
	if string(b) != `{"Ref":"SecondaryLeaseCache"}` {
		t.Errorf("function environment %s = %s, want a Ref of the parameter", EnvSecondaryLeaseCache, b)
	}
	assertValid(t, tm)
	m, err = Build(seedSpec(t), Settings{Project: "seed", LeaseCache: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Template().Parameters[ParamSecondaryLeaseCache]; ok {
		t.Errorf("a stack without a secondary lease cache has the %s parameter", ParamSecondaryLeaseCache)
	}
}

// TestChaosOnlyByOptIn: the function's environment holds a chaos SPEC in
// exactly the deployments that asked for one, and Step Functions mode,
// whose function opens no store or dispatch, refuses it.
func TestChaosOnlyByOptIn(t *testing.T) {
	for name, st := range variants() {
		fn := build(t, st).Template().Resources[IDFunction]
		env := fn.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		got, has := env[EnvChaos]
		if has != (st.Chaos != "") || has && got != st.Chaos {
			t.Errorf("%s: %s = %v (set: %v), want %q", name, EnvChaos, got, has, st.Chaos)
		}
		for _, k := range []string{EnvChaosSeed, EnvChaosReport, "LFSM_CHAOS"} {
			if _, ok := env[k]; ok {
				t.Errorf("%s: the function's environment has %s", name, k)
			}
		}
	}
	_, err := Build(seedSpec(t), Settings{Project: "seed", Mode: ModeStepFunctions, Chaos: "0.1"})
	if err == nil || !strings.Contains(err.Error(), "function chaos: only with mode events") {
		t.Errorf("Step Functions mode with chaos: %v, want a refusal", err)
	}
}

// aws.retention reaches the function's store through its environment and
// the operator commands of aws.stack through the stack's outputs; without
// it, neither names one (executions are kept until lfsm prune).
func TestTemplateRetention(t *testing.T) {
	for _, tc := range []struct {
		ret  time.Duration
		want string
	}{{0, ""}, {30 * 24 * time.Hour, "720h0m0s"}} {
		tm := build(t, Settings{Project: "seed", Retention: tc.ret}).Template()
		env := tm.Resources[IDFunction].Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
		got, _ := env[EnvRetention].(string)
		out, ok := tm.Outputs[OutRetention]
		if got != tc.want || ok != (tc.want != "") || ok && out.Value != tc.want {
			t.Errorf("retention %s: environment %s=%q, output %v %+v; want %q in both", tc.ret, EnvRetention, got, ok, out, tc.want)
		}
	}
	if err := (Settings{Project: "seed", Retention: -time.Hour}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "retention") {
		t.Errorf("negative retention: %v", err)
	}
}

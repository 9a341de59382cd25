package deploy

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awstest"
)

// localClients talks to the emulators (DynamoDB Local, fauxqs for SQS and
// SNS, kinesalite), found through AWS_ENDPOINT_URL_<SERVICE>.
func localClients(t *testing.T) LocalClients {
	t.Helper()
	return LocalClients{
		DynamoDB: dynamodb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true }),
		SQS:      sqs.NewFromConfig(awstest.Config(t, "SQS", nil)),
		SNS:      sns.NewFromConfig(awstest.Config(t, "SNS", nil)),
		Kinesis:  kinesis.NewFromConfig(awstest.Config(t, "KINESIS", nil)),
		Region:   "us-east-1", Account: "000000000000",
	}
}

func actionsByID(r *LocalResult) map[string]string {
	out := map[string]string{}
	for _, a := range r.Actions {
		out[a.LogicalID] = a.Action
	}
	return out
}

// TestApplyLocal: on every dispatch, with and without secondaries, the
// model applied to the emulators creates what is missing, a second apply
// changes nothing, and what has no emulator is listed as skipped.
func TestApplyLocal(t *testing.T) {
	c := localClients(t)
	for _, v := range []struct {
		d         Dispatch
		secondary bool
	}{
		{DispatchSQS, false}, {DispatchKinesis, false}, {DispatchSNS, false}, {DispatchSNSSQS, false}, {DispatchDynamoDB, false},
		{DispatchSQS, true}, {DispatchKinesis, true}, {DispatchSNS, true}, {DispatchSNSSQS, true}, {DispatchDynamoDB, true},
	} {
		d := v.d
		name := string(d)
		if v.secondary {
			name += "-secondary"
		}
		t.Run(name, func(t *testing.T) {
			stack := awstest.Name("lfsm-local")
			m := build(t, Settings{Project: "seed", Stack: stack, Dispatch: d, Secondary: v.secondary})
			t.Cleanup(func() {
				for i := range m.Tables {
					_, _ = c.DynamoDB.DeleteTable(t.Context(), &dynamodb.DeleteTableInput{TableName: aws.String(m.TableName(&m.Tables[i]))})
				}
			})
			first, err := m.ApplyLocal(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			got := actionsByID(first)
			for _, tb := range m.Tables {
				if got[tb.ID] != "created" {
					t.Errorf("table %s: %s", tb.ID, got[tb.ID])
				}
			}
			for _, q := range m.Queues {
				if got[q.ID] != "created" {
					t.Errorf("queue %s: %s", q.ID, got[q.ID])
				}
			}
			for _, id := range []string{IDFunction, IDFunctionRole, IDLogGroup, IDTickRule} {
				if got[id] != "skipped" {
					t.Errorf("%s: %s, want skipped", id, got[id])
				}
			}
			if first.Settings["store-table-arn"] != "arn:aws:dynamodb:us-east-1:000000000000:table/"+stack+"-executions" || first.Settings["dispatch-arn"] == "" {
				t.Errorf("settings %v", first.Settings)
			}
			if v.secondary {
				want := "created"
				for _, id := range []string{IDSecondaryDispatchQueue, IDSecondaryDispatchStream, IDSecondaryDispatchTopic, IDSecondaryDispatchTable, IDSecondaryRetriesTable} {
					if m.Template().Resources[id] != nil && got[id] != want {
						t.Errorf("%s: %s, want %s", id, got[id], want)
					}
				}
				sd := first.Settings["secondary.dispatch-arn"]
				if sd == "" || sd == first.Settings["dispatch-arn"] {
					t.Errorf("secondary.dispatch-arn %q (dispatch-arn %q)", sd, first.Settings["dispatch-arn"])
				}
				if (first.Settings["retry-table-arn"] != "") != (first.Settings["secondary.retry-table-arn"] != "") {
					t.Errorf("retry-table-arn %q but secondary.retry-table-arn %q", first.Settings["retry-table-arn"], first.Settings["secondary.retry-table-arn"])
				}
			} else if _, ok := first.Settings["secondary.dispatch-arn"]; ok {
				t.Errorf("no secondary asked for, got %v", first.Settings)
			}
			if len(first.Actions) != len(m.Template().Resources) {
				t.Errorf("%d actions for %d resources", len(first.Actions), len(m.Template().Resources))
			}
			second, err := m.ApplyLocal(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if second.Changed() {
				t.Errorf("second apply changed something: %+v", second.Actions)
			}
		})
	}
}

func TestApplyLocalDrift(t *testing.T) {
	c := localClients(t)
	stack := awstest.Name("lfsm-drift")
	m := build(t, Settings{Project: "seed", Stack: stack})
	name := stack + "-executions"
	t.Cleanup(func() {
		_, _ = c.DynamoDB.DeleteTable(t.Context(), &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	// A table of the same name with other keys: reported, not touched.
	_, err := c.DynamoDB.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName: aws.String(name), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddbtypes.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.ApplyLocal(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(r.Actions, func(a LocalAction) bool { return a.LogicalID == IDExecutionsTable })
	if a := r.Actions[i]; a.Action != "differs" || !strings.Contains(a.Detail, "--force recreates it") || !strings.Contains(a.Detail, "keys id:HASH") {
		t.Errorf("differing table: %+v", a)
	}
	// A queue attribute changed by hand is put back in place.
	q, err := c.SQS.GetQueueUrl(t.Context(), &sqs.GetQueueUrlInput{QueueName: aws.String(stack + "-dispatch")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SQS.SetQueueAttributes(t.Context(), &sqs.SetQueueAttributesInput{QueueUrl: q.QueueUrl, Attributes: map[string]string{"VisibilityTimeout": "30"}}); err != nil {
		t.Fatal(err)
	}
	c.Force = true
	r, err = m.ApplyLocal(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	got := actionsByID(r)
	if got[IDExecutionsTable] != "recreated" || got[IDDispatchQueue] != "updated" {
		t.Errorf("with --force: %v", r.Actions)
	}
	if again, _ := m.ApplyLocal(t.Context(), c); again.Changed() {
		t.Errorf("apply after repair changed: %v", again.Actions)
	}
}

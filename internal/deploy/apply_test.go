package deploy

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"

	"github.com/lfsm/lfsm/internal/deploy/cfnfake"
)

// The change-set flow runs against cfnfake, an httptest fake of the
// CloudFormation query API: no CloudFormation emulator exists that runs
// here (EMULATORS.md). The real SDK client talks to it, so the fake decodes
// exactly what the SDK sends.

func fakeCFN(t *testing.T) (*cfnfake.Fake, *cfn.Client) {
	t.Helper()
	fake, err := cfnfake.New("testdata/schemas")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := cfn.New(cfn.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("test", "test", ""),
		RetryMaxAttempts: 1,
	})
	return fake, client
}

func deployer(client *cfn.Client, events *[]Event) *Deployer {
	n := 0
	return &Deployer{
		CFN:      client,
		Wait:     func(ctx context.Context) error { return ctx.Err() },
		Progress: func(e Event) { *events = append(*events, e) },
		Now: func() time.Time {
			n++
			return time.Date(2026, 12, 1, 12, 0, n, 0, time.UTC)
		},
	}
}

func planInput(t *testing.T, m *Model, key string) PlanInput {
	t.Helper()
	body, err := m.Template().JSON()
	if err != nil {
		t.Fatal(err)
	}
	return PlanInput{
		Stack: "seed", Template: body,
		Parameters: map[string]string{ParamCodeBucket: "artifacts", ParamCodeKey: key},
		Tags:       map[string]string{"lfsm:project": "seed"},
	}
}

func actions(cs []Change) map[string]string {
	out := map[string]string{}
	for _, c := range cs {
		out[c.LogicalID] = c.Action
	}
	return out
}

func TestDeployFlow(t *testing.T) {
	ctx := t.Context()
	fake, client := fakeCFN(t)
	var events []Event
	d := deployer(client, &events)
	m := build(t, Settings{Project: "seed"})

	// From nothing: a CREATE change set, every resource added.
	p, err := d.Plan(ctx, planInput(t, m, "seed/aaa.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if !p.NewStack || len(p.Changes) != len(m.Template().Resources) {
		t.Fatalf("plan from nothing: new %v, %d changes, want %d adds", p.NewStack, len(p.Changes), len(m.Template().Resources))
	}
	for _, c := range p.Changes {
		if c.Action != "add" {
			t.Errorf("change %+v, want add", c)
		}
	}
	if got := fake.StackStatus("seed"); got != "REVIEW_IN_PROGRESS" {
		t.Errorf("stack after plan is %q, want REVIEW_IN_PROGRESS", got)
	}
	create := fake.Calls[slices.IndexFunc(fake.Calls, func(c cfnfake.Call) bool { return c.Action == "CreateChangeSet" })]
	if create.Params.Get("ChangeSetType") != "CREATE" || create.Params.Get("Capabilities.member.1") != "CAPABILITY_IAM" {
		t.Errorf("CreateChangeSet sent type %q capabilities %q", create.Params.Get("ChangeSetType"), create.Params.Get("Capabilities.member.1"))
	}
	if err := m.CheckReplacements(p); err != nil {
		t.Fatal(err)
	}
	if err := d.Execute(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got := fake.StackStatus("seed"); got != "CREATE_COMPLETE" {
		t.Fatalf("stack is %q, want CREATE_COMPLETE", got)
	}
	if last := events[len(events)-1]; last.LogicalID != "seed" || last.Status != "CREATE_COMPLETE" {
		t.Errorf("last event %+v, want the stack's CREATE_COMPLETE", last)
	}
	// Progress saw every resource complete, in order, each event once.
	completed := map[string]int{}
	for _, e := range events {
		if e.Status == "CREATE_COMPLETE" {
			completed[e.LogicalID]++
		}
	}
	for id := range m.Template().Resources {
		if completed[id] != 1 {
			t.Errorf("resource %s completed %d times in the progress", id, completed[id])
		}
	}
	outs, err := d.Outputs(ctx, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outs[OutStoreTableARN], "seed-executions") || outs[OutDispatch] != "sqs" {
		t.Errorf("outputs %v", outs)
	}

	// The same again: no changes, and the empty change set is deleted.
	p, err = d.Plan(ctx, planInput(t, m, "seed/aaa.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if p.HasChanges() || p.NewStack {
		t.Errorf("second plan: %+v, want no changes", p)
	}
	if cs := fake.ChangeSets("seed"); len(cs) != 0 {
		t.Errorf("change sets left: %v", cs)
	}
	if a := fake.Actions(); a[len(a)-1] != "DeleteChangeSet" {
		t.Errorf("no change set deleted after an empty plan: %v", a[len(a)-5:])
	}

	// New code: the function is modified in place.
	p, err = d.Plan(ctx, planInput(t, m, "seed/bbb.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(p.Changes); len(got) != 1 || got[IDFunction] != "modify" {
		t.Fatalf("plan after new code: %v", got)
	}
	if c := p.Changes[0]; c.Replaced() || !slices.Equal(c.Properties, []string{"Code"}) {
		t.Errorf("function change %+v, want Code, not replaced", c)
	}
	if err := d.Execute(ctx, p); err != nil {
		t.Fatal(err)
	}

	// A change that replaces a table is refused, naming the property.
	changed := build(t, Settings{Project: "seed"})
	changed.Table(IDExecutionsTable).Range = Attr{"step", KeyNumber}
	p, err = d.Plan(ctx, planInput(t, changed, "seed/bbb.zip"))
	if err != nil {
		t.Fatal(err)
	}
	err = changed.CheckReplacements(p)
	var re *ReplaceError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "ExecutionsTable (changing KeySchema)") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("replacing a table: %v", err)
	}
	if err := d.Discard(ctx, p); err != nil {
		t.Fatal(err)
	}
	if fake.StackStatus("seed") != "UPDATE_COMPLETE" || len(fake.ChangeSets("seed")) != 0 {
		t.Errorf("after a discarded plan: stack %s, change sets %v", fake.StackStatus("seed"), fake.ChangeSets("seed"))
	}

	// A failed update names the resource and CloudFormation's reason, and
	// the stack rolls back to what it was.
	fake.Fail[IDFunction] = "Resource handler returned message: \"Error occurred while GetObject. S3 Error Code: NoSuchKey\""
	p, err = d.Plan(ctx, planInput(t, m, "seed/ccc.zip"))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Execute(ctx, p)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Status != "UPDATE_ROLLBACK_COMPLETE" || fe.NeedsDelete() {
		t.Fatalf("failed update: %v", err)
	}
	for _, want := range []string{"Function (AWS::Lambda::Function) UPDATE_FAILED", "NoSuchKey", "rolled back to its previous state"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure %q does not say %q", err, want)
		}
	}
	delete(fake.Fail, IDFunction)

	// Destroy: the stack goes, the stateful tables stay.
	events = nil
	kept, err := d.Destroy(ctx, "seed")
	if err != nil {
		t.Fatal(err)
	}
	var keptIDs []string
	for _, e := range kept {
		keptIDs = append(keptIDs, e.LogicalID)
	}
	slices.Sort(keptIDs)
	if want := []string{IDExecutionsTable}; !slices.Equal(keptIDs, want) {
		t.Errorf("kept %v, want %v", keptIDs, want)
	}
	if st, err := d.Stack(ctx, "seed"); err != nil || st != nil {
		t.Errorf("stack after destroy: %v %v", st, err)
	}
	// Destroying what is not there is not an error.
	if kept, err := d.Destroy(ctx, "seed"); err != nil || kept != nil {
		t.Errorf("second destroy: %v %v", kept, err)
	}
}

func TestFirstCreateFails(t *testing.T) {
	ctx := t.Context()
	fake, client := fakeCFN(t)
	var events []Event
	d := deployer(client, &events)
	m := build(t, Settings{Project: "seed"})
	fake.Fail[IDDispatchQueue] = "Resource handler returned message: \"Access to the resource https://sqs.us-east-1.amazonaws.com/ is denied.\""
	p, err := d.Plan(ctx, planInput(t, m, "seed/aaa.zip"))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Execute(ctx, p)
	var fe *FailedError
	if !errors.As(err, &fe) || fe.Status != "ROLLBACK_COMPLETE" || !fe.NeedsDelete() {
		t.Fatalf("failed create: %v", err)
	}
	for _, want := range []string{"DispatchQueue (AWS::SQS::Queue) CREATE_FAILED", "is denied", "ROLLBACK_COMPLETE", "lfsm destroy --stack seed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure %q does not say %q", err, want)
		}
	}
	// The next deploy says the stack must be deleted first.
	_, err = d.Plan(ctx, planInput(t, m, "seed/aaa.zip"))
	var se *StackStatusError
	if !errors.As(err, &se) || !se.NeedsDelete() || !strings.Contains(err.Error(), "can only delete it") {
		t.Fatalf("plan on ROLLBACK_COMPLETE: %v", err)
	}
	delete(fake.Fail, IDDispatchQueue)
	if _, err := d.Destroy(ctx, "seed"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Plan(ctx, planInput(t, m, "seed/aaa.zip")); err != nil {
		t.Fatalf("plan after deleting the failed stack: %v", err)
	}
}

func TestPlanForNewStackDiscardsIt(t *testing.T) {
	ctx := t.Context()
	fake, client := fakeCFN(t)
	var events []Event
	d := deployer(client, &events)
	p, err := d.Plan(ctx, planInput(t, build(t, Settings{Project: "seed", Dispatch: DispatchKinesis}), "k"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Discard(ctx, p); err != nil {
		t.Fatal(err)
	}
	if st := fake.StackStatus("seed"); st != "" {
		t.Errorf("a discarded plan left the stack in %s", st)
	}
}

// TestFakeRefusesIAMWithoutCapability: the fake enforces what CloudFormation
// does, so the flow's CAPABILITY_IAM is really checked.
func TestFakeRefusesIAMWithoutCapability(t *testing.T) {
	_, client := fakeCFN(t)
	body, _ := build(t, Settings{Project: "seed"}).Template().JSON()
	_, err := client.CreateChangeSet(t.Context(), &cfn.CreateChangeSetInput{
		StackName: aws.String("seed"), ChangeSetName: aws.String("x"), ChangeSetType: types.ChangeSetTypeCreate,
		TemplateBody: aws.String(string(body)),
		Parameters: []types.Parameter{
			{ParameterKey: aws.String(ParamCodeBucket), ParameterValue: aws.String("b")},
			{ParameterKey: aws.String(ParamCodeKey), ParameterValue: aws.String("k")},
		},
	})
	if err == nil || !strings.Contains(err.Error(), "InsufficientCapabilitiesException") {
		t.Fatalf("create change set without CAPABILITY_IAM: %v", err)
	}
	// And a missing stack is the 400 ValidationError IsNotFound knows.
	_, err = client.DescribeStacks(t.Context(), &cfn.DescribeStacksInput{StackName: aws.String("nope")})
	if !IsNotFound(err) {
		t.Fatalf("describe a missing stack: %v", err)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/deploy"
	"github.com/lfsm/lfsm/internal/deploy/cfnfake"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// deployEnv runs lfsm deploy and destroy in-process against cfnfake (an
// httptest fake of the CloudFormation query API, since no CloudFormation
// emulator exists: see EMULATORS.md), gofakes3 for the artifact upload and
// DynamoDB Local for --delete-data.
type deployEnv struct {
	t     *testing.T
	fake  *cfnfake.Fake
	cl    *awsClients
	ddb   *dynamodb.Client
	s3    *s3.Client
	stack string
	// answers, when set, makes stdin and stderr a terminal and is what the
	// user types there.
	answers string
	// store stands for the deployed execution store in the in-flight check.
	store  *memory.Backend
	bucket string
	zip    string
	spec   string
}

func newDeployEnv(t *testing.T) *deployEnv {
	t.Helper()
	s3c := s3.NewFromConfig(awstest.Config(t, "S3", nil), func(o *s3.Options) { o.UsePathStyle = true })
	ddb := dynamodb.NewFromConfig(awstest.Config(t, "DYNAMODB", nil), func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
	fake, err := cfnfake.New(filepath.Join("..", "deploy", "testdata", "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client := cfn.New(cfn.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	e := &deployEnv{
		t: t, fake: fake, ddb: ddb, s3: s3c,
		cl:     &awsClients{CFN: client, S3: s3c, Tables: ddb},
		store:  memory.New(memory.Options{}),
		stack:  awstest.Name("seed"),
		bucket: strings.ToLower(awstest.Name("lfsm-artifacts")),
		zip:    filepath.Join(t.TempDir(), "seed.zip"),
		spec:   filepath.Join("..", "..", "examples", "seed", "fsm.yaml"),
	}
	if _, err := s3c.CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(e.bucket)}); err != nil {
		t.Fatal(err)
	}
	e.writeZip("version 1")
	return e
}

func (e *deployEnv) writeZip(content string) {
	if err := os.WriteFile(e.zip, []byte("PK\x03\x04"+content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// run runs lfsm with args (deploy or destroy get the fakes) and returns
// stdout, stderr and the exit code.
func (e *deployEnv) run(args ...string) (string, string, int) {
	e.t.Helper()
	f, ios := testFactory(e.t, nil)
	if e.answers != "" {
		ios.In = strings.NewReader(e.answers)
		ios.InIsTerminal, ios.ErrOutIsTerminal = true, true
	}
	root := NewRootCmd(f)
	clients := func(context.Context) (*awsClients, error) { return e.cl, nil }
	wait := func(ctx context.Context) error { return ctx.Err() }
	replaceCmd(root, newDeployCmd(f, func(o *DeployOptions) error {
		o.Clients, o.Wait = clients, wait
		o.Store = func(context.Context, string) (deploy.Lister, error) { return e.store, nil }
		// The queued messages the check reads are tested in internal/deploy
		// on DynamoDB Local; the fake's stack has no tables behind it.
		o.Queued = func(context.Context, map[string]string) ([]deploy.Messages, error) { return nil, nil }
		return runDeploy(e.t.Context(), o)
	}))
	replaceCmd(root, newDestroyCmd(f, func(o *DestroyOptions) error {
		o.Clients, o.Wait = clients, wait
		return runDestroy(e.t.Context(), o)
	}))
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(e.t.Context())
	printError(ios, cmd, err)
	return ios.Out.(interface{ String() string }).String(), ios.ErrOut.(interface{ String() string }).String(), ExitCode(err)
}

func (e *deployEnv) deploy(extra ...string) (string, string, int) {
	return e.run(append([]string{"deploy", "-f", e.spec, "--stack", e.stack, "--bucket", e.bucket, "--zip", e.zip}, extra...)...)
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

func TestDeployCommand(t *testing.T) {
	e := newDeployEnv(t)

	// A plan for a new stack: exit 3 with --detailed-exitcode, nothing left.
	out, errOut, code := e.deploy("--plan", "--detailed-exitcode")
	if code != ExitChanges {
		t.Fatalf("plan exit %d, want %d\n%s%s", code, ExitChanges, out, errOut)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimRight(l, " ") != l {
			t.Errorf("plan line with trailing spaces: %q", l)
		}
	}
	mustContain(t, "plan", out, "Plan for new stack "+e.stack+":", "+ ExecutionsTable", "AWS::DynamoDB::Table", "+ DispatchQueue", "to add, 0 to change (0 replaced), 0 to remove")
	if st := e.fake.StackStatus(e.stack); st != "" {
		t.Errorf("a plan left the stack in %s", st)
	}
	out, _, code = e.deploy("--plan", "--output", "json")
	var plan DeployResult
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != 0 || !plan.HasChanges || !plan.NewStack || plan.FormatVersion != "1" {
		t.Fatalf("plan json (exit %d, %v): %s", code, err, out)
	}

	// Without a terminal and without --yes nothing is applied.
	_, errOut, code = e.deploy()
	if code != ExitUsage || !strings.Contains(errOut, "pass --yes") || e.fake.StackStatus(e.stack) != "" {
		t.Fatalf("deploy without --yes: exit %d, stack %q\n%s", code, e.fake.StackStatus(e.stack), errOut)
	}

	// Deploy from nothing.
	out, errOut, code = e.deploy("--yes")
	if code != 0 {
		t.Fatalf("deploy exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "deploy stdout", out, "Stack "+e.stack+" is deployed: function "+e.stack+", dispatch sqs")
	mustContain(t, "deploy progress", errOut, "Uploaded", "s3://"+e.bucket+"/lfsm/seed/", "CREATE_COMPLETE", "ExecutionsTable", e.stack)
	if st := e.fake.StackStatus(e.stack); st != "CREATE_COMPLETE" {
		t.Fatalf("stack %s after deploy", st)
	}

	// A second deploy changes nothing and says so.
	n := len(e.fake.Calls)
	out, _, code = e.deploy("--yes")
	if code != 0 || !strings.Contains(out, "No changes: stack "+e.stack+" is up to date.") {
		t.Fatalf("second deploy: exit %d\n%s", code, out)
	}
	for _, c := range e.fake.Calls[n:] {
		if c.Action == "ExecuteChangeSet" {
			t.Errorf("a deploy without changes executed a change set")
		}
	}
	if _, _, code := e.deploy("--plan", "--detailed-exitcode"); code != 0 {
		t.Errorf("plan without changes exits %d, want 0", code)
	}

	// New code: the function changes in place; the upload happens once.
	e.writeZip("version 2")
	out, errOut, code = e.deploy("--yes")
	if code != 0 {
		t.Fatalf("deploy of new code: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "new code plan", out, "Plan for update of stack", "~ Function", "Code", "0 to add, 1 to change (0 replaced), 0 to remove")

	// A change that would replace the store's table is refused, naming the
	// property; --force applies it.
	e.fake.SetProperty(e.stack, "ExecutionsTable", "KeySchema", []any{map[string]any{"AttributeName": "id", "KeyType": "HASH"}})
	out, errOut, code = e.deploy("--yes")
	if code != ExitFailure {
		t.Fatalf("replacing deploy: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "replacement plan", out, "~ ExecutionsTable", "MAY BE REPLACED (KeySchema)")
	mustContain(t, "refusal", errOut, "refusing to replace stateful tables of stack "+e.stack+": ExecutionsTable (changing KeySchema)", "--force")
	if cs := e.fake.ChangeSets(e.stack); len(cs) != 0 {
		t.Errorf("refused change set left behind: %v", cs)
	}
	if _, errOut, code := e.deploy("--yes", "--force"); code != 0 {
		t.Fatalf("--force: exit %d\n%s", code, errOut)
	}

	// Live executions the new spec cannot continue refuse the deploy:
	// here one of a machine the seed's spec does not have.
	retired := loadRetired(t)
	mc, err := engine.Compile(retired, engine.SimulateActions(retired, engine.SimulateOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{mc}, Store: e.store, Queue: e.store})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Start(t.Context(), engine.StartRequest{Machine: "Retired", CorrelationID: "old-1"}); err != nil {
		t.Fatal(err)
	}
	e.writeZip("version 2b")
	_, errOut, code = e.deploy("--yes")
	if code != ExitFailure {
		t.Fatalf("deploy with stranded executions: exit %d\n%s", code, errOut)
	}
	mustContain(t, "in-flight refusal", errOut, "1 live execution(s) would be stranded", "Retired in state pseudo_init: 1 (machine is not in the new spec), e.g. old-1", "--force")
	if _, errOut, code := e.deploy("--yes", "--force"); code != 0 {
		t.Fatalf("--force past stranded executions: exit %d\n%s", code, errOut)
	}
	e.store = memory.New(memory.Options{})

	// A failed update names the resource and the reason, and rolls back.
	e.fake.Fail["Function"] = "Resource handler returned message: \"Unzipped size must be smaller than 262144000 bytes\""
	e.writeZip("version 3")
	_, errOut, code = e.deploy("--yes")
	if code != ExitFailure {
		t.Fatalf("failing deploy: exit %d\n%s", code, errOut)
	}
	mustContain(t, "failure", errOut, "UPDATE_FAILED", "Function (AWS::Lambda::Function) UPDATE_FAILED: Resource handler returned message", "Unzipped size", "rolled back to its previous state (UPDATE_ROLLBACK_COMPLETE)")
	delete(e.fake.Fail, "Function")

	// Destroy keeps the tables and says so; --delete-data deletes them.
	out, errOut, code = e.run("destroy", "-f", e.spec, "--stack", e.stack, "--yes")
	if code != 0 {
		t.Fatalf("destroy: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "destroy", out, "Deleted stack "+e.stack+".", "Kept ExecutionsTable (DeletionPolicy Retain)", "--delete-data")
	mustContain(t, "destroy progress", errOut, "DELETE_SKIPPED", "DELETE_COMPLETE")
	if st := e.fake.StackStatus(e.stack); st != "" {
		t.Errorf("stack after destroy: %s", st)
	}
	// The retained table, as CloudFormation would have left it.
	for _, suffix := range []string{"executions"} {
		name := e.stack + "-" + suffix
		_, err := e.ddb.CreateTable(t.Context(), &dynamodb.CreateTableInput{
			TableName: aws.String(name), BillingMode: ddbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A deploy under the same name adopts it (a resource import), and says so.
	out, errOut, code = e.deploy("--plan", "--detailed-exitcode")
	if code != ExitChanges {
		t.Fatalf("plan over a kept table: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "adopting plan", out, "= ExecutionsTable", "adopted", "1 to import, 8 to add")
	mustContain(t, "adopting plan", errOut, "its table "+e.stack+"-executions does (kept by an earlier destroy)", "--delete-data")
	if st := e.fake.StackStatus(e.stack); st != "" {
		t.Errorf("an import plan left the stack in %s", st)
	}
	out, errOut, code = e.deploy("--yes")
	if code != 0 {
		t.Fatalf("deploy over a kept table: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "adopting deploy", errOut, "IMPORT_COMPLETE", "ExecutionsTable")
	if st := e.fake.StackStatus(e.stack); st != "UPDATE_COMPLETE" || len(e.fake.Resources(e.stack)) != 9 {
		t.Errorf("after adopting: stack %s with %v", st, e.fake.Resources(e.stack))
	}
	if _, _, code := e.run("destroy", "--stack", e.stack, "--yes"); code != 0 {
		t.Fatal("destroy after adopting failed")
	}

	out, errOut, code = e.run("destroy", "-f", e.spec, "--stack", e.stack, "--delete-data", "--yes", "--output", "json")
	var dr DestroyResult
	if err := json.Unmarshal([]byte(out), &dr); err != nil || code != 0 {
		t.Fatalf("destroy --delete-data: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if want := []string{e.stack + "-executions"}; !slices.Equal(dr.DeletedTables, want) {
		t.Errorf("deleted tables %v, want %v", dr.DeletedTables, want)
	}
	_, err = e.ddb.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(e.stack + "-executions")})
	var nf *ddbtypes.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("table still there after --delete-data: %v", err)
	}
}

func TestDeployFirstCreateFails(t *testing.T) {
	e := newDeployEnv(t)
	e.fake.Fail["DispatchQueue"] = "Resource handler returned message: \"Access to the resource https://sqs.us-east-1.amazonaws.com/ is denied.\""
	_, errOut, code := e.deploy("--yes")
	if code != ExitFailure {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	mustContain(t, "failure", errOut, "DispatchQueue (AWS::SQS::Queue) CREATE_FAILED", "is denied", "ROLLBACK_COMPLETE", "lfsm destroy --stack "+e.stack)
	// The next deploy says what to do instead of trying.
	_, errOut, code = e.deploy("--yes")
	if code != ExitFailure || !strings.Contains(errOut, "can only delete it now") {
		t.Fatalf("deploy on ROLLBACK_COMPLETE: exit %d\n%s", code, errOut)
	}
	delete(e.fake.Fail, "DispatchQueue")
	if _, errOut, code := e.run("destroy", "--stack", e.stack, "--yes"); code != 0 {
		t.Fatalf("destroy: %s", errOut)
	}
	if _, errOut, code := e.deploy("--yes"); code != 0 {
		t.Fatalf("deploy after deleting the failed stack: %s", errOut)
	}
}

// TestDeployArtifactStack: with no --bucket, the zip goes to lfsm's own
// artifact stack's bucket, created on the first deploy.
func TestDeployArtifactStack(t *testing.T) {
	e := newDeployEnv(t)
	e.fake.OnCreate = func(typ, id string) {
		if typ == "AWS::S3::Bucket" {
			_, err := e.s3.CreateBucket(context.WithoutCancel(t.Context()), &s3.CreateBucketInput{Bucket: aws.String(id)})
			if err != nil {
				t.Errorf("create bucket %s: %v", id, err)
			}
		}
	}
	out, errOut, code := e.run("deploy", "-f", e.spec, "--stack", e.stack, "--zip", e.zip, "--yes", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var res DeployResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if !res.Applied || res.Artifact == nil || !res.Artifact.Uploaded || !strings.HasPrefix(res.Artifact.Bucket, "lfsm-artifacts-bucket-") {
		t.Fatalf("result %+v", res)
	}
	if e.fake.StackStatus("lfsm-artifacts") != "CREATE_COMPLETE" {
		t.Errorf("artifact stack %q", e.fake.StackStatus("lfsm-artifacts"))
	}
	if errOut != "" {
		t.Errorf("json deploy wrote to stderr: %s", errOut)
	}
}

func TestStackName(t *testing.T) {
	f, _ := testFactory(t, nil)
	for _, c := range []struct{ flag, cfg, want string }{
		{"", "", ""},
		{"shop", "other", "shop"},
		{"", "orders-prod", "orders-prod"},
		{"", "arn:aws:cloudformation:us-east-1:123456789012:stack/orders-prod/1f2e3d4c-0000-0000-0000-000000000000", "orders-prod"},
	} {
		f.Config.AWS.Stack = c.cfg
		if got := stackName(c.flag, f); got != c.want {
			t.Errorf("stackName(%q) with aws.stack %q = %q, want %q", c.flag, c.cfg, got, c.want)
		}
	}
}

// TestDeployEmulators: --emulators applies the model to the local emulators
// (found through AWS_ENDPOINT_URL_<SERVICE>), a second run changes nothing,
// and the output names the settings for lfsm.yaml.
func TestDeployEmulators(t *testing.T) {
	e := newDeployEnv(t)
	t.Cleanup(func() {
		_, _ = e.ddb.DeleteTable(context.WithoutCancel(t.Context()), &dynamodb.DeleteTableInput{TableName: aws.String(e.stack + "-executions")})
	})
	out, errOut, code := e.run("deploy", "--emulators", "-f", e.spec, "--stack", e.stack)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "emulators", out, "Stack "+e.stack+" on the local emulators:",
		"created  ExecutionsTable", e.stack+"-executions", "created  DispatchQueue", "skipped  Function", "no local emulator",
		"store-table-arn: arn:aws:dynamodb:us-east-1:000000000000:table/"+e.stack+"-executions", "dispatch: sqs", "dispatch-arn: arn:aws:sqs:")
	out, _, code = e.run("deploy", "--emulators", "-f", e.spec, "--stack", e.stack, "--output", "json")
	var res EmulatorsResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Changed {
		t.Fatalf("second run (exit %d, %v): %s", code, err, out)
	}
	// With the secondaries (aws.secondary.deploy in lfsm.yaml): the
	// secondary queue too, named in a nested section as lfsm.yaml has it.
	cfgFile := filepath.Join(t.TempDir(), "lfsm.yaml")
	if err := os.WriteFile(cfgFile, []byte("aws:\n  secondary:\n    deploy: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = e.run("deploy", "--emulators", "--config", cfgFile, "-f", e.spec, "--stack", e.stack)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "emulators with secondaries", out, "created    SecondaryDispatchQueue", e.stack+"-secondary",
		"unchanged  DispatchQueue", "    secondary:\n      dispatch-arn: arn:aws:sqs:")
	// Without the emulators' endpoints it refuses instead of reaching AWS.
	t.Setenv("AWS_ENDPOINT_URL_SQS", "")
	_, errOut, code = e.run("deploy", "--emulators", "-f", e.spec, "--stack", e.stack)
	if code != ExitUsage || !strings.Contains(errOut, "AWS_ENDPOINT_URL_SQS is not set") {
		t.Fatalf("without an SQS endpoint: exit %d\n%s", code, errOut)
	}
	_, errOut, code = e.run("deploy", "--emulators", "--plan", "-f", e.spec)
	if code != ExitUsage || !strings.Contains(errOut, "takes no --plan") {
		t.Fatalf("--emulators --plan: exit %d\n%s", code, errOut)
	}
}

// TestDeployBuildsZip: without --zip, deploy builds the Lambda zip (lfsm
// build --target aws) and names the code by its SHA-256.
func TestDeployBuildsZip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the seed example for linux/arm64")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	for k, v := range hostGoEnv(t) {
		t.Setenv(k, v)
	}
	e := newDeployEnv(t)
	out, errOut, code := e.run("deploy", "--plan", "-f", e.spec, "--stack", e.stack, "--bucket", e.bucket)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	zip := filepath.Join("..", "..", "examples", "seed", ".lfsm", "lambda", "seed.zip")
	sum, err := fileSHA256(zip)
	if err != nil {
		t.Fatalf("deploy built no zip at %s: %v", zip, err)
	}
	i := slices.IndexFunc(e.fake.Calls, func(c cfnfake.Call) bool { return c.Action == "CreateChangeSet" })
	if i < 0 {
		t.Fatal("no change set created")
	}
	p := e.fake.Calls[i].Params
	if p.Get("Parameters.member.2.ParameterKey") != "CodeKey" || p.Get("Parameters.member.2.ParameterValue") != "lfsm/seed/"+sum+".zip" {
		t.Errorf("CodeKey %q, want lfsm/seed/%s.zip", p.Get("Parameters.member.2.ParameterValue"), sum)
	}
}

func loadRetired(t *testing.T) *spec.Machine {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fsm.yaml")
	src := "machines:\n- name: Retired\n  states:\n  - name: Only\n    initial: true\n    final: true\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(p)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	return s.Machines[0]
}

// TestDeployAsksOnATerminal: on a terminal deploy asks before applying, a
// no applies nothing (and leaves no change set), and after a failed first
// create it offers to delete the stack.
func TestDeployAsksOnATerminal(t *testing.T) {
	e := newDeployEnv(t)
	e.answers = "n\n"
	_, errOut, code := e.deploy()
	if code != ExitFailure || !strings.Contains(errOut, "Apply these changes to stack "+e.stack+"? [y/N]") || !strings.Contains(errOut, "not confirmed: nothing done") {
		t.Fatalf("answer no: exit %d\n%s", code, errOut)
	}
	if st := e.fake.StackStatus(e.stack); st != "" {
		t.Errorf("declined deploy left the stack in %s", st)
	}
	e.answers = "y\n"
	if _, errOut, code := e.deploy(); code != 0 || e.fake.StackStatus(e.stack) != "CREATE_COMPLETE" {
		t.Fatalf("answer yes: exit %d, stack %s\n%s", code, e.fake.StackStatus(e.stack), errOut)
	}
	// destroy asks too.
	e.answers = "y\n"
	if out, errOut, code := e.run("destroy", "--stack", e.stack); code != 0 || !strings.Contains(errOut, "Delete stack "+e.stack+" (its tables are kept)? [y/N]") {
		t.Fatalf("destroy on a terminal: exit %d\n%s%s", code, out, errOut)
	}

	// A failed first create: deploy offers to delete what is left.
	e.stack = awstest.Name("seed")
	e.fake.Fail["Function"] = "Resource handler returned message: \"The role defined for the function cannot be assumed by Lambda.\""
	e.answers = "y\ny\n" // apply, then delete the rolled-back stack
	_, errOut, code = e.deploy()
	if code != ExitFailure {
		t.Fatalf("failed create: exit %d\n%s", code, errOut)
	}
	mustContain(t, "failed create on a terminal", errOut, "cannot be assumed by Lambda", "ROLLBACK_COMPLETE",
		"Delete the failed stack "+e.stack+" now (its tables are kept)? [y/N]", "Deleted stack "+e.stack+": deploy again when the cause is fixed.")
	if st := e.fake.StackStatus(e.stack); st != "" {
		t.Errorf("stack after the offered delete: %s", st)
	}
}

const (
	renameV1 = `machines:
- name: Order
  states:
  - name: New
    initial: true
    do_action: example.com/shop.New
    transitions:
    - {target: Packing, event: go}
  - name: Packing
    do_action: example.com/shop.Pack
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`
	renameV2 = `machines:
- name: Order
  states:
  - name: New
    initial: true
    do_action: example.com/shop.New
    transitions:
    - {target: Boxing, event: proceed}
  - name: Boxing
    do_action: example.com/shop.Pack
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
`
)

// TestDeployRename: the change-set flow with executions of the deployed
// spec in flight (the memory store stands for the deployed one). A spec
// that renames their state and event is refused; a rename map with a
// mistake is reported at file:line:col and nothing is planned; the right
// map lets the deploy through, says what it carries on, and ships the map
// in the function's environment; a later deploy without it is refused
// again while they are still in flight, and --force deploys anyway.
func TestDeployRename(t *testing.T) {
	e := newDeployEnv(t)
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.spec = write("fsm.v1.yaml", renameV1)
	if _, errOut, code := e.deploy("--yes"); code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", code, errOut)
	}
	v1, diags := spec.Load(e.spec)
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	mc, err := engine.Compile(v1.Machines[0], engine.SimulateActions(v1.Machines[0], engine.SimulateOptions{Events: []string{"go", "go", ""}}))
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Machines: []*engine.Machine{mc}, Store: e.store, Queue: e.store})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"parked", "queued"} {
		if _, err := eng.Start(t.Context(), engine.StartRequest{Machine: "Order", CorrelationID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// parked's start (go), queued's start (go), parked's go: waits in Packing.
	for range 3 {
		ds, err := e.store.Receive(t.Context(), 1, time.Minute, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("receive: %v %v", ds, err)
		}
		if _, err := eng.HandleDelivery(t.Context(), e.store, ds[0]); err != nil {
			t.Fatal(err)
		}
	}

	e.spec = write("fsm.yaml", renameV2)
	e.writeZip("version 2")
	_, errOut, code := e.deploy("--yes")
	if code != ExitFailure {
		t.Fatalf("deploy stranding executions: exit %d\n%s", code, errOut)
	}
	mustContain(t, "refusal", errOut, "2 live execution(s) would be stranded",
		"Order in state New about to dispatch go: 1 (event has no transition from this state in the new spec), e.g. queued",
		"Order in state Packing: 1 (state is not in the new spec), e.g. parked", "--rename FILE", "--force")

	bad := write("bad.yaml", "from: fsm.v1.yaml\nmachines:\n  Order:\n    states: {Packing: Boxed}\n")
	_, errOut, code = e.deploy("--yes", "--rename", bad)
	if code != ExitFailure {
		t.Fatalf("deploy with a bad map: exit %d\n%s", code, errOut)
	}
	mustContain(t, "bad map", errOut, bad+`:4:23: error: state "Boxed" is not in machine "Order" of the new spec`, "[rename-unknown-target]", `did you mean "Boxing"?`)

	// A map that renames the state only still strands the one about to
	// dispatch go.
	half := write("half.yaml", "from: fsm.v1.yaml\nmachines:\n  Order:\n    states: {Packing: Boxing}\n")
	_, errOut, code = e.deploy("--yes", "--rename", half)
	if code != ExitFailure {
		t.Fatalf("deploy with half a map: exit %d\n%s", code, errOut)
	}
	mustContain(t, "half a map", errOut, "1 live execution(s) would be stranded by the new spec even with the rename map", "e.g. queued")

	good := write("renames.yaml", "from: fsm.v1.yaml\nmachines:\n  Order:\n    states:\n      Packing: Boxing\n    events:\n      go: proceed\n")
	out, errOut, code := e.deploy("--yes", "--rename", good)
	if code != 0 {
		t.Fatalf("deploy with the map: exit %d\n%s", code, errOut)
	}
	mustContain(t, "renamed", errOut, "Renamed: 2 live execution(s) of stack "+e.stack+" continue on the new spec:",
		"Order New on go -> New on proceed: 1, e.g. queued", "Order Packing -> Boxing: 1, e.g. parked")
	mustContain(t, "applied", out, "Stack "+e.stack+" is deployed")
	envOf := func() map[string]any {
		env, _ := e.fake.Property(e.stack, deploy.IDFunction, "Environment").(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		return vars
	}
	rs, err := engine.DecodeRenames([]byte(envOf()[deploy.EnvRenames].(string)))
	if err != nil || len(rs) != 1 || rs[0].From[0] != mc.SpecHash() || rs[0].States["Packing"] != "Boxing" || rs[0].Events["go"] != "proceed" {
		t.Fatalf("the function's renames: %+v (%v)", rs, err)
	}

	// JSON says what the check found.
	out, errOut, code = e.deploy("--plan", "--rename", good, "--output", "json")
	if code != 0 {
		t.Fatalf("plan with the map: exit %d\n%s", code, errOut)
	}
	var res DeployResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.InFlight == nil || res.InFlight.Executions != 2 || len(res.InFlight.Renamed) != 2 || len(res.InFlight.Stranded) != 0 {
		t.Errorf("in_flight: %+v", res.InFlight)
	}

	// Without the map again, while they are in flight: refused; --force
	// deploys (and the function loses the map).
	e.writeZip("version 3")
	if _, errOut, code := e.deploy("--yes"); code != ExitFailure {
		t.Fatalf("deploy dropping the map: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := e.deploy("--yes", "--force"); code != 0 {
		t.Fatalf("--force: exit %d\n%s", code, errOut)
	}
	if _, ok := envOf()[deploy.EnvRenames]; ok {
		t.Error("the map stayed in the function's environment")
	}
}

// The check reads the retry and dispatch tables the stack's outputs name,
// and nothing for a queue.
func TestOpenQueued(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	qs, err := openQueued(t.Context(), map[string]string{
		deploy.OutRetryTableARN:          "arn:aws:dynamodb:eu-west-1:123456789012:table/shop-retries",
		deploy.OutDispatchTableARN:       "arn:aws:dynamodb:eu-west-1:123456789012:table/shop-dispatch",
		deploy.OutSecondaryRetryTableARN: "arn:aws:dynamodb:eu-west-2:123456789012:table/shop-retries-2",
		deploy.OutDispatchARN:            "arn:aws:sqs:eu-west-1:123456789012:shop",
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range qs {
		names = append(names, q.Name())
	}
	if want := []string{"retry table shop-retries", "dispatch table shop-dispatch", "secondary retry table shop-retries-2"}; !slices.Equal(names, want) {
		t.Errorf("queued = %v, want %v", names, want)
	}
	if qs, err := openQueued(t.Context(), map[string]string{deploy.OutDispatchARN: "arn:aws:sqs:eu-west-1:1:shop"}); err != nil || len(qs) != 0 {
		t.Errorf("an SQS stack: %v %v", qs, err)
	}
	if _, err := openQueued(t.Context(), map[string]string{deploy.OutRetryTableARN: "shop-retries"}); err == nil {
		t.Error("a bad ARN: no error")
	}
}

// TestDeployFunctionChaos: chaos reaches the deployed function only through
// --function-chaos, which the plan shows first (text) and as function_chaos
// (JSON); LFSM_FUNCTION_CHAOS and LFSM_CHAOS in the environment do not set
// it, a bad SPEC is a usage error, and a deploy without the flag takes it
// away (the function's environment changes).
func TestDeployFunctionChaos(t *testing.T) {
	e := newDeployEnv(t)
	t.Setenv("LFSM_FUNCTION_CHAOS", "0.5")
	t.Setenv("LFSM_CHAOS", "0.5")
	out, errOut, code := e.deploy("--plan", "--output", "json")
	var plan map[string]any
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != 0 {
		t.Fatalf("plan json (exit %d, %v): %s%s", code, err, out, errOut)
	}
	if v, ok := plan["function_chaos"]; !ok || v != nil {
		t.Errorf("function_chaos without the flag = %v (present %v), want null", v, ok)
	}

	const spec = "dynamodb.Acquire=0.2,sqs.Send=0.1"
	out, _, code = e.deploy("--plan", "--function-chaos", spec)
	if code != 0 {
		t.Fatalf("plan with chaos: exit %d\n%s", code, out)
	}
	if !strings.HasPrefix(out, "CHAOS: the deployed function's calls to its AWS backends will fail at random (LFSM_FUNCTION_CHAOS="+spec+", from --function-chaos).\n") {
		t.Errorf("the plan does not open with the chaos banner:\n%s", out)
	}
	out, _, _ = e.deploy("--plan", "--function-chaos", spec, "--output", "json")
	plan = nil
	if err := json.Unmarshal([]byte(out), &plan); err != nil || plan["function_chaos"] != spec {
		t.Errorf("function_chaos = %v (%v), want %q", plan["function_chaos"], err, spec)
	}

	_, errOut, code = e.deploy("--plan", "--function-chaos", "kinesis.Acquire=0.2")
	if code != ExitUsage || !strings.Contains(errOut, "kinesis's operations are Receive, Send, SendBatch") {
		t.Errorf("bad --function-chaos: exit %d\n%s", code, errOut)
	}
	_, errOut, code = e.deploy("--plan", "--function-chaos", "sqlite.Acquire=0.2")
	if code != ExitUsage || !strings.Contains(errOut, "backend sqlite is not used here") {
		t.Errorf("bad --function-chaos: exit %d\n%s", code, errOut)
	}

	out, errOut, code = e.deploy("--yes", "--function-chaos", spec)
	if code != 0 {
		t.Fatalf("deploy with chaos: exit %d\n%s%s", code, out, errOut)
	}
	mustContain(t, "deploy with chaos", out, "CHAOS: for test stacks only; deploy again without --function-chaos to turn it off.")
	out, _, code = e.deploy("--plan", "--detailed-exitcode")
	if code != ExitChanges {
		t.Fatalf("a deploy without --function-chaos after one with it: exit %d, want changes\n%s", code, out)
	}
	mustContain(t, "plan without chaos", out, "~ Function", "Environment")
	if strings.Contains(out, "CHAOS") {
		t.Errorf("the plan without --function-chaos shows chaos:\n%s", out)
	}
}

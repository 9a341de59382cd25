package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	ddbstore "github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/deploy"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// ExitChanges is the exit status of lfsm deploy --plan --detailed-exitcode
// when the plan has changes.
const ExitChanges = 3

// awsClients are the AWS API clients deploy and destroy use.
type awsClients struct {
	CFN    deploy.CloudFormation
	S3     deploy.S3
	Tables interface {
		DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
		DeleteTable(context.Context, *dynamodb.DeleteTableInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error)
	}
}

// defaultClients builds the clients from the SDK's standard chain (region,
// credentials, AWS_ENDPOINT_URL_<SERVICE>). S3 is addressed path-style when
// an S3 endpoint is set (emulators such as gofakes3 need it).
func defaultClients(ctx context.Context) (*awsClients, error) {
	cfg, err := awsconfig.Load(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set AWS_REGION (or a region in your AWS profile)")
	}
	pathStyle := os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return &awsClients{
		CFN:    cfn.NewFromConfig(cfg),
		S3:     s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = pathStyle }),
		Tables: dynamodb.NewFromConfig(cfg),
	}, nil
}

// DeployOptions are the inputs of lfsm deploy.
type DeployOptions struct {
	IO               *IOStreams
	WorkDir          string
	File             string
	Stack            string
	Bucket           string
	Zip              string
	Plan             bool
	DetailedExitCode bool
	Yes              bool
	Force            bool
	// Rename is the rename map's path (--rename): how the live executions
	// of the deployed spec continue on this one.
	Rename    string
	Emulators bool
	Output    string
	Deploy    deployFlags
	// Clients returns the AWS clients; nil uses the SDK's standard chain.
	Clients func(context.Context) (*awsClients, error)
	// Local returns the emulators' clients (--emulators); nil uses the
	// SDK's standard chain with AWS_ENDPOINT_URL_<SERVICE>.
	Local func(context.Context, *deploy.Model) (deploy.LocalClients, error)
	// Store opens the deployed execution store for the in-flight check;
	// nil opens the DynamoDB store of the table ARN.
	Store func(ctx context.Context, tableARN string) (deploy.Lister, error)
	// Queued opens the queued messages the in-flight check can read (the
	// retry table, a DynamoDB-stream dispatch table) from the stack's
	// outputs; nil opens them through the DynamoDB API.
	Queued func(ctx context.Context, outputs map[string]string) ([]deploy.Messages, error)
	// Wait pauses between polls (nil: 2 s).
	Wait func(context.Context) error
}

func newDeployCmd(f *Factory, runF func(*DeployOptions) error) *cobra.Command {
	opts := &DeployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy [--plan [--detailed-exitcode]] [--stack NAME] [--bucket BUCKET] [--zip FILE] [--rename FILE] [--yes] [--force]",
		Short: "Deploy the project to AWS through a CloudFormation change set",
		Long: heredoc(`
			Deploy the project to AWS: build the function's zip (as lfsm build
			--target aws does, unless --zip names one), upload it (skipped when an
			object with its SHA-256 is already there), create a CloudFormation change set of the
			template lfsm export cloudformation writes, show it as a diff, ask
			(on a terminal; --yes otherwise), execute it and follow the stack's
			events until it is complete. A second deploy of the same project
			changes nothing.

			The zip goes to --bucket, or to the bucket of lfsm's own artifact
			stack (lfsm-artifacts), created once per account and region.

			A change set that would replace a stateful table (and start it
			empty) is refused, naming the property that causes it, unless
			--force. The tables are retained when the stack is deleted.

			Before the change set, deploy reads the live executions of the
			deployed store (and the retries and messages it can read without
			taking them) and refuses when the new spec cannot continue some of
			them: their state is gone, or the event they are about to dispatch
			has no transition. --rename FILE maps the deployed spec's state and
			event names to the new ones (docs/deploy.md, "Renaming states"):
			the function then renames those executions' messages as they
			arrive. --force deploys anyway.

			--plan stops after showing the change set and deletes it (and the
			empty stack a plan for a new stack leaves); with --detailed-exitcode
			it exits 3 when there are changes. Credentials and region come from
			the AWS SDK's standard chain (AWS_PROFILE, AWS_REGION, ...).
		`),
		Example: example(`
			lfsm deploy --plan
			lfsm deploy --yes
			lfsm deploy --plan --detailed-exitcode --output json
			lfsm deploy --rename renames.yaml
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if opts.DetailedExitCode && !opts.Plan {
				return usageErrorf("--detailed-exitcode goes with --plan")
			}
			if opts.Emulators && (opts.Plan || opts.Bucket != "" || opts.Zip != "") {
				return usageErrorf("--emulators applies the tables, queues, streams and topics to the local emulators: it takes no --plan, --bucket or --zip")
			}
			opts.IO = f.IOStreams
			opts.WorkDir = f.WorkDir
			opts.Stack = stackName(opts.Stack, f)
			opts.Deploy.fromConfig(cmd, f)
			if runF != nil {
				return runF(opts)
			}
			return runDeploy(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", config.DefaultSpecFile, "spec `FILE` to read")
	fl.StringVar(&opts.Stack, "stack", "", "CloudFormation stack `NAME` (default: aws.stack, else the project name)")
	fl.StringVar(&opts.Bucket, "bucket", "", "S3 `BUCKET` for the function's zip (default: lfsm's artifact stack's bucket)")
	fl.StringVar(&opts.Zip, "zip", "", "deploy this zip `FILE` instead of building the project (lfsm build --target aws)")
	fl.BoolVar(&opts.Plan, "plan", false, "show the change set and stop")
	fl.BoolVar(&opts.DetailedExitCode, "detailed-exitcode", false, "with --plan: exit 3 when there are changes")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "apply without asking")
	fl.BoolVar(&opts.Force, "force", false, "apply even a change that replaces a stateful table, or strands live executions")
	fl.StringVar(&opts.Rename, "rename", "", "rename map `FILE`: the deployed spec's state and event names, mapped to the new spec's")
	fl.BoolVar(&opts.Emulators, "emulators", false, "apply the model to the local AWS emulators instead (AWS_ENDPOINT_URL_<SERVICE>)")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	opts.Deploy.register(fl)
	return cmd
}

// DeployResult is what lfsm deploy did (--output json).
type DeployResult struct {
	FormatVersion string          `json:"format_version"`
	Stack         string          `json:"stack"`
	NewStack      bool            `json:"new_stack"`
	HasChanges    bool            `json:"has_changes"`
	Changes       []deploy.Change `json:"changes"`
	Applied       bool            `json:"applied"`
	// FunctionChaos is the chaos SPEC the deployed function gets
	// (--function-chaos), or null: its calls then fail at random.
	FunctionChaos *string           `json:"function_chaos"`
	Artifact      *deploy.Artifact  `json:"artifact,omitempty"`
	Outputs       map[string]string `json:"outputs,omitempty"`
	// InFlight is what the check of the live executions found (absent
	// for a new stack, and with --force).
	InFlight *deploy.Report `json:"in_flight,omitempty"`
}

func runDeploy(ctx context.Context, opts *DeployOptions) error {
	stack := opts.Stack
	if stack == "" {
		stack = opts.Deploy.Project
		if stack == "" {
			stack = projectName(opts.File)
		}
	}
	s, m, err := buildModel(opts.IO, opts.WorkDir, opts.File, &opts.Deploy, stack)
	if err != nil {
		return err
	}
	if opts.Emulators {
		if opts.Rename != "" {
			return usageErrorf("--rename goes with a deploy to AWS: the emulators' tables hold no function to ship it to")
		}
		return runDeployEmulators(ctx, opts, m)
	}
	renames, err := loadRenames(opts.IO, opts.WorkDir, opts.Rename, s)
	if err != nil {
		return err
	}
	if err := m.SetRenames(renames); err != nil {
		return fmt.Errorf("--rename %s: %w", opts.Rename, err)
	}
	st := m.Settings
	text := opts.Output != outputJSON
	zip := opts.Zip
	if zip == "" {
		arch := "arm64"
		if st.Architecture == deploy.ArchX8664 {
			arch = "amd64"
		}
		res, _, err := buildProjectWith(ctx, opts.IO, opts.WorkDir, opts.File, build.BuildOptions{Lambda: true, GOARCH: arch}, text)
		if err != nil {
			return err
		}
		if res.Zip == nil {
			return fmt.Errorf("build %s: no Lambda zip was made", opts.File)
		}
		zip = res.Zip.Path
	}
	sum, err := fileSHA256(zip)
	if err != nil {
		return fmt.Errorf("read the function's zip %s: %w (build it with lfsm build --target aws, or pass --zip FILE)", zip, err)
	}
	body, err := m.Template().JSON()
	if err != nil {
		return err
	}
	clients, err := opts.clients(ctx)
	if err != nil {
		return err
	}
	d := &deploy.Deployer{CFN: clients.CFN, Wait: opts.Wait}
	if text {
		d.Progress = progressPrinter(opts.IO.ErrOut)
	}

	bucket := opts.Bucket
	if bucket == "" {
		if opts.Plan {
			outs, err := d.Outputs(ctx, deploy.ArtifactStack)
			if err != nil {
				return err
			}
			bucket = outs[deploy.OutArtifactBucket]
			if bucket == "" {
				bucket = "lfsm-artifacts-bucket-to-be-created"
			}
		} else if bucket, err = d.ArtifactBucket(ctx); err != nil {
			return err
		}
	}
	report, err := checkInFlight(ctx, opts, d, s, stack, renames)
	if err != nil {
		return err
	}
	confirmed := false
	if imports, err := retainedTables(ctx, d, clients, m); err != nil {
		return err
	} else if len(imports) > 0 {
		var done bool
		if confirmed, done, err = adoptTables(ctx, opts, d, m, imports); err != nil || done {
			return err
		}
	}
	in := deploy.PlanInput{
		Stack: stack, Template: body,
		Parameters: map[string]string{deploy.ParamCodeBucket: bucket, deploy.ParamCodeKey: deploy.ArtifactKey(st.Project, sum)},
		Tags:       map[string]string{"lfsm:project": st.Project},
	}
	if st.LeaseCache && st.Mode == deploy.ModeEvents {
		in.Parameters[deploy.ParamLeaseCache] = string(opts.Deploy.LeaseCache)
		if st.SecondaryLeaseCache {
			in.Parameters[deploy.ParamSecondaryLeaseCache] = string(opts.Deploy.SecondaryLeaseCache)
		}
	}
	plan, err := d.Plan(ctx, in)
	if err != nil {
		return deployFailure(ctx, opts, d, stack, err)
	}
	res := &DeployResult{FormatVersion: "1", Stack: stack, NewStack: plan.NewStack, HasChanges: plan.HasChanges(), Changes: plan.Changes, InFlight: report,
		FunctionChaos: functionChaos(st)}
	if text {
		writeChaosBanner(opts.IO.Out, st)
		writePlan(opts.IO.Out, plan)
	}
	replaceErr := m.CheckReplacements(plan)
	discard := func() error {
		if !plan.HasChanges() {
			return nil
		}
		return d.Discard(context.WithoutCancel(ctx), plan)
	}
	if opts.Plan {
		if err := discard(); err != nil {
			return err
		}
		if !text {
			if err := writeJSON(opts.IO.Out, res); err != nil {
				return err
			}
		} else if replaceErr != nil {
			fmt.Fprintf(opts.IO.ErrOut, "warning: %v\n", replaceErr)
		}
		if opts.DetailedExitCode && plan.HasChanges() {
			return &ExitError{Code: ExitChanges}
		}
		return nil
	}
	if !plan.HasChanges() {
		if text {
			fmt.Fprintf(opts.IO.Out, "No changes: stack %s is up to date.\n", stack)
			return nil
		}
		return writeJSON(opts.IO.Out, res)
	}
	if replaceErr != nil && !opts.Force {
		return errors.Join(replaceErr, discard())
	}
	if !opts.Yes && !(confirmed && onlyAdds(plan)) {
		ok, err := confirm(opts.IO, opts.Output, fmt.Sprintf("Apply these changes to stack %s?", stack))
		if !ok {
			return errors.Join(err, discard())
		}
	}
	art, err := deploy.Upload(ctx, clients.S3, bucket, st.Project, zip)
	if err != nil {
		return errors.Join(err, discard())
	}
	res.Artifact = &art
	if text {
		if art.Uploaded {
			fmt.Fprintf(opts.IO.ErrOut, "Uploaded %s (%s) to s3://%s/%s\n", zip, humanBytes(art.Size), art.Bucket, art.Key)
		} else {
			fmt.Fprintf(opts.IO.ErrOut, "Code unchanged: s3://%s/%s is already there\n", art.Bucket, art.Key)
		}
	}
	if err := d.Execute(ctx, plan); err != nil {
		return deployFailure(ctx, opts, d, stack, err)
	}
	res.Applied = true
	if res.Outputs, err = d.Outputs(ctx, stack); err != nil {
		return err
	}
	if !text {
		return writeJSON(opts.IO.Out, res)
	}
	fmt.Fprintf(opts.IO.Out, "Stack %s is deployed: function %s, dispatch %s %s\n", stack,
		res.Outputs[deploy.OutFunctionName], res.Outputs[deploy.OutDispatch], res.Outputs[deploy.OutDispatchARN])
	writeChaosBanner(opts.IO.Out, st)
	return nil
}

// loadRenames reads and checks the rename map of --rename against the
// from spec it names and the spec s about to be deployed; its diagnostics
// go to stderr.
func loadRenames(ios *IOStreams, workDir, path string, s *spec.Spec) ([]engine.Rename, error) {
	if path == "" {
		return nil, nil
	}
	r, diags := spec.LoadRenames(path, s)
	if len(diags) > 0 {
		if err := spec.WriteText(ios.ErrOut, diags, workDir); err != nil {
			return nil, fmt.Errorf("write diagnostics: %w", err)
		}
	}
	if r == nil {
		return nil, errSilent
	}
	return deploy.EngineRenames(r, s), nil
}

// checkInFlight refuses a deploy whose spec would strand live executions of
// the deployed store or messages queued for them (unless --force): their
// machine or state is gone, or the event they are about to dispatch has no
// transition any more, and the rename map does not carry them on. It
// returns what it found (nil for a new stack or with --force).
func checkInFlight(ctx context.Context, opts *DeployOptions, d *deploy.Deployer, s *spec.Spec, stack string, renames []engine.Rename) (*deploy.Report, error) {
	if opts.Force {
		return nil, nil
	}
	outs, err := d.Outputs(ctx, stack)
	if err != nil {
		return nil, err
	}
	table := outs[deploy.OutStoreTableARN]
	if table == "" {
		return nil, nil // a new stack, or one without a store (Step Functions)
	}
	open := opts.Store
	if open == nil {
		open = openDeployedStore
	}
	fail := func(err error) (*deploy.Report, error) {
		return nil, fmt.Errorf("read the live executions of stack %s (--force skips this check): %w", stack, err)
	}
	store, err := open(ctx, table)
	if err != nil {
		return fail(err)
	}
	queued := opts.Queued
	if queued == nil {
		queued = openQueued
	}
	qs, err := queued(ctx, outs)
	if err != nil {
		return fail(err)
	}
	report, err := deploy.Check(ctx, deploy.CheckInput{Store: store, Spec: s, Renames: renames, Queued: qs})
	if err != nil {
		return fail(err)
	}
	if len(report.Stranded) > 0 {
		return nil, &deploy.InFlightError{Stack: stack, Stranded: report.Stranded, WithRenames: len(renames) > 0}
	}
	if opts.Output != outputJSON && opts.Rename != "" {
		w := opts.IO.ErrOut
		n := 0
		for _, g := range report.Renamed {
			n += g.Count
		}
		if n == 0 {
			fmt.Fprintf(w, "warning: the rename map %s carries no live execution of stack %s on: the function gets it anyway (a message of the deployed spec may still come)\n", opts.Rename, stack)
		} else {
			fmt.Fprintf(w, "Renamed: %d live execution(s) of stack %s continue on the new spec:\n", n, stack)
			for _, g := range report.Renamed {
				from, to := g.State, g.To
				if g.Event != g.ToEvent {
					from, to = g.State+" on "+g.Event, g.To+" on "+g.ToEvent
				}
				fmt.Fprintf(w, "  %s %s -> %s: %d, e.g. %s\n", g.Machine, from, to, g.Count, strings.Join(g.IDs, ", "))
			}
		}
	}
	return &report, nil
}

// openQueued opens the queued messages of a stack that can be read without
// taking them: its retry table and its DynamoDB-stream dispatch table, and
// their secondaries.
func openQueued(ctx context.Context, outs map[string]string) ([]deploy.Messages, error) {
	var out []deploy.Messages
	for _, t := range []struct{ out, kind string }{
		{deploy.OutRetryTableARN, "retry table"}, {deploy.OutDispatchTableARN, "dispatch table"},
		{deploy.OutSecondaryRetryTableARN, "secondary retry table"}, {deploy.OutSecondaryDispatchTableARN, "secondary dispatch table"},
	} {
		arn := outs[t.out]
		if arn == "" {
			continue
		}
		a, err := config.ParseARN(arn)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", t.kind, arn, err)
		}
		cfg, err := awsconfig.Load(ctx, a.Region, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, ddbstore.TableMessages{Client: dynamodb.NewFromConfig(cfg), Table: a.Name(), Kind: t.kind})
	}
	return out, nil
}

func openDeployedStore(ctx context.Context, tableARN string) (deploy.Lister, error) {
	a, err := config.ParseARN(tableARN)
	if err != nil {
		return nil, fmt.Errorf("store table %s: %w", tableARN, err)
	}
	cfg, err := awsconfig.Load(ctx, a.Region, nil)
	if err != nil {
		return nil, err
	}
	return ddbstore.New(ddbstore.Options{Client: dynamodb.NewFromConfig(cfg), Table: a.Name()})
}

// retainedTables returns the stateful tables of a stack that does not exist
// (or holds nothing yet) which exist already: kept by an earlier destroy.
func retainedTables(ctx context.Context, d *deploy.Deployer, clients *awsClients, m *deploy.Model) ([]deploy.Import, error) {
	st, err := d.Stack(ctx, m.Settings.Stack)
	if err != nil || (st != nil && st.StackStatus != "REVIEW_IN_PROGRESS") {
		return nil, err
	}
	var out []deploy.Import
	for i := range m.Tables {
		tb := &m.Tables[i]
		if !tb.Stateful {
			continue
		}
		name := m.TableName(tb)
		_, err := clients.Tables.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
		var nf *ddbtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			continue
		case err != nil:
			return nil, fmt.Errorf("look for table %s a destroy may have kept: %w", name, err)
		}
		out = append(out, deploy.Import{LogicalID: tb.ID, Type: "AWS::DynamoDB::Table", Identifier: map[string]string{"TableName": name}})
	}
	return out, nil
}

// adoptTables imports the tables an earlier destroy kept into the new stack,
// so the executions in them carry on. It reports whether the user confirmed
// (the rest of the stack is then only added, without asking again) and
// whether the deploy is done (a plan).
func adoptTables(ctx context.Context, opts *DeployOptions, d *deploy.Deployer, m *deploy.Model, imports []deploy.Import) (confirmed, done bool, err error) {
	stack := m.Settings.Stack
	var names, ids []string
	for _, im := range imports {
		names, ids = append(names, im.Identifier["TableName"]), append(ids, im.LogicalID)
	}
	text := opts.Output != outputJSON
	if text {
		fmt.Fprintf(opts.IO.ErrOut, "Stack %s does not exist, but its table %s does (kept by an earlier destroy): the deploy adopts it into the new stack (a resource import), with the executions in it. To start with an empty store instead, delete it first: lfsm destroy --stack %s --delete-data\n",
			stack, strings.Join(names, ", "), stack)
	}
	body, err := m.ImportTemplate(ids).JSON()
	if err != nil {
		return false, false, err
	}
	ip, err := d.Plan(ctx, deploy.PlanInput{Stack: stack, Template: body, Imports: imports, Tags: map[string]string{"lfsm:project": m.Settings.Project}})
	if err != nil {
		return false, false, fmt.Errorf("adopt the kept tables of stack %s: %w", stack, err)
	}
	// What follows the import: every other resource is added.
	shown := &deploy.Plan{Stack: stack, NewStack: true, ChangeSet: ip.ChangeSet, Changes: slices.Clone(ip.Changes)}
	for _, id := range slices.Sorted(maps.Keys(m.Template().Resources)) {
		if !slices.Contains(ids, id) {
			shown.Changes = append(shown.Changes, deploy.Change{Action: "add", LogicalID: id, Type: m.Template().Resources[id].Type, Properties: []string{}, Recreate: []string{}})
		}
	}
	if text {
		writeChaosBanner(opts.IO.Out, m.Settings)
		writePlan(opts.IO.Out, shown)
	}
	if opts.Plan {
		if err := d.Discard(context.WithoutCancel(ctx), ip); err != nil {
			return false, true, err
		}
		if !text {
			if err := writeJSON(opts.IO.Out, &DeployResult{FormatVersion: "1", Stack: stack, NewStack: true, HasChanges: true, Changes: shown.Changes, FunctionChaos: functionChaos(m.Settings)}); err != nil {
				return false, true, err
			}
		}
		if opts.DetailedExitCode {
			return false, true, &ExitError{Code: ExitChanges}
		}
		return false, true, nil
	}
	if !opts.Yes {
		ok, err := confirm(opts.IO, opts.Output, fmt.Sprintf("Adopt the kept tables and deploy stack %s?", stack))
		if !ok {
			return false, true, errors.Join(err, d.Discard(context.WithoutCancel(ctx), ip))
		}
	}
	if err := d.Execute(ctx, ip); err != nil {
		return false, true, fmt.Errorf("adopt the kept tables of stack %s: %w", stack, err)
	}
	return true, false, nil
}

func onlyAdds(p *deploy.Plan) bool {
	for _, c := range p.Changes {
		if c.Action != "add" {
			return false
		}
	}
	return true
}

func (opts *DeployOptions) clients(ctx context.Context) (*awsClients, error) {
	if opts.Clients != nil {
		return opts.Clients(ctx)
	}
	return defaultClients(ctx)
}

// deployFailure explains a failed deploy and, for a stack that only
// deletion can clear, offers to delete it on a terminal.
func deployFailure(ctx context.Context, opts *DeployOptions, d *deploy.Deployer, stack string, err error) error {
	var fe *deploy.FailedError
	var se *deploy.StackStatusError
	needsDelete := errors.As(err, &fe) && fe.NeedsDelete() || errors.As(err, &se) && se.NeedsDelete()
	if !needsDelete || opts.Output == outputJSON || !opts.IO.InIsTerminal || !opts.IO.ErrOutIsTerminal {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "lfsm: %v\n", err)
	ok, cerr := confirm(opts.IO, opts.Output, fmt.Sprintf("Delete the failed stack %s now (its tables are kept)?", stack))
	if !ok {
		if errors.Is(cerr, errDeclined) {
			return errSilent
		}
		return cerr
	}
	if _, derr := d.Destroy(context.WithoutCancel(ctx), stack); derr != nil {
		return derr
	}
	fmt.Fprintf(opts.IO.ErrOut, "Deleted stack %s: deploy again when the cause is fixed.\n", stack)
	return errSilent
}

// functionChaos is DeployResult.FunctionChaos of st.
func functionChaos(st deploy.Settings) *string {
	if st.Chaos == "" {
		return nil
	}
	return &st.Chaos
}

// writeChaosBanner says, before anything else, that the function will fail
// calls on purpose: a deploy with --function-chaos is for a test stack.
func writeChaosBanner(w io.Writer, st deploy.Settings) {
	if st.Chaos == "" {
		return
	}
	fmt.Fprintf(w, "CHAOS: the deployed function's calls to its AWS backends will fail at random (%s=%s, from --function-chaos).\n", deploy.EnvChaos, st.Chaos)
	fmt.Fprintf(w, "CHAOS: for test stacks only; deploy again without --function-chaos to turn it off.\n")
}

// writePlan prints the plan as a diff: + add, ~ modify (replacement called
// out), - remove.
func writePlan(w io.Writer, p *deploy.Plan) {
	what := "update of"
	if p.NewStack {
		what = "new"
	}
	if !p.HasChanges() {
		return
	}
	fmt.Fprintf(w, "Plan for %s stack %s:\n", what, p.Stack)
	idW, typeW := 0, 0
	for _, c := range p.Changes {
		idW, typeW = max(idW, len(c.LogicalID)), max(typeW, len(c.Type))
	}
	var add, mod, rep, rem, imp int
	for _, c := range p.Changes {
		sign, note := "?", ""
		switch c.Action {
		case "add":
			sign = "+"
			add++
		case "modify":
			sign = "~"
			mod++
			note = strings.Join(c.Properties, ", ")
			switch {
			case c.Replacement == "true":
				note = "REPLACED (" + strings.Join(c.Recreate, ", ") + " cannot change in place)"
				rep++
			case c.Replacement == "conditional":
				note = "MAY BE REPLACED (" + strings.Join(c.Recreate, ", ") + ")"
				rep++
			}
		case "remove":
			sign = "-"
			rem++
		case "import":
			sign, note = "=", "adopted: the existing resource and its data"
			imp++
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %s %-*s  %-*s  %s", sign, idW, c.LogicalID, typeW, c.Type, note), " "))
	}
	if imp > 0 {
		fmt.Fprintf(w, "%d to import, ", imp)
	}
	fmt.Fprintf(w, "%d to add, %d to change (%d replaced), %d to remove\n", add, mod, rep, rem)
}

// progressPrinter writes one line per stack event.
func progressPrinter(w io.Writer) func(deploy.Event) {
	return func(e deploy.Event) {
		line := fmt.Sprintf("%s  %-28s %-34s %s", e.Time.UTC().Format(time.TimeOnly), e.Status, e.LogicalID, e.Type)
		if e.Reason != "" && e.Reason != "User Initiated" {
			line += "  " + e.Reason
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

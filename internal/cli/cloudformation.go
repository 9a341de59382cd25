package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/deploy"
	"github.com/lfsm/lfsm/internal/spec"

	"github.com/spf13/cobra"
)

// deployFlags are the settings of the deployment model shared by export
// cloudformation and deploy.
type deployFlags struct {
	Project      string
	Dispatch     string
	Mode         string
	Architecture string
	MemoryMB     int
	Timeout      time.Duration
	LogRetention int
	KinesisShard int
	// Secondary adds the secondaries to the stack (--secondary,
	// aws.secondary.deploy).
	Secondary bool
	// VPC is aws.vpc (lfsm.yaml only: it has no flags).
	VPC config.VPC
	// Metrics is the metrics: section (lfsm.yaml or LFSM_METRICS_*).
	Metrics config.Metrics
	// LeaseCache is aws.lease-cache: deploy passes it as the stack's
	// LeaseCache parameter.
	LeaseCache config.LeaseCacheURL
	// SecondaryLeaseCache is aws.secondary.lease-cache: the stack's
	// SecondaryLeaseCache parameter.
	SecondaryLeaseCache config.LeaseCacheURL
	// FunctionChaos is --function-chaos: chaos in the deployed function.
	// The flag alone sets it, never lfsm.yaml or the environment (flagOnly).
	FunctionChaos config.Chaos
	// Retention is aws.retention (lfsm.yaml or LFSM_AWS_RETENTION).
	Retention string
}

func (d *deployFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&d.Project, "project", "", "project `NAME` the resources are tagged with (default: the Go module's last path element)")
	fl.StringVar(&d.Dispatch, "dispatch", string(deploy.DispatchSQS), "how messages travel between steps (`DISPATCH`: sqs|kinesis|sns|sns-sqs|dynamodb)")
	fl.StringVar(&d.Mode, "mode", string(deploy.ModeEvents), "who drives the steps (`MODE`: events|stepfunctions)")
	fl.StringVar(&d.Architecture, "arch", deploy.ArchARM64, "the function's `ARCH`, the one its zip is built for: arm64|x86_64 (or amd64)")
	fl.IntVar(&d.MemoryMB, "memory", deploy.DefaultMemoryMB, "the function's memory in `MB`")
	fl.DurationVar(&d.Timeout, "timeout", deploy.DefaultTimeout, "the function's `TIMEOUT` (whole seconds, at most 15m)")
	fl.IntVar(&d.LogRetention, "log-retention", deploy.DefaultLogRetentionDays, "`DAYS` the function's logs are kept")
	fl.IntVar(&d.KinesisShard, "kinesis-shards", 0, "shards of the Kinesis dispatch stream (`N`; 0 = on-demand)")
	fl.BoolVar(&d.Secondary, "secondary", false, "add a secondary of the dispatch (and of the retry table) that sends fail over to and the function consumes too (aws.secondary.deploy)")
	fl.Var(&d.FunctionChaos, "function-chaos", "FOR TEST STACKS ONLY: make the deployed function's calls to its AWS backends fail at random (dynamodb.Acquire=0.2,kinesis.Send=0.1); needed on every deploy that keeps it, never read from lfsm.yaml or the environment")
	flagOnly(fl, "function-chaos")
}

// fromConfig fills what the command line left unset from lfsm.yaml's aws:
// section (aws.dispatch).
func (d *deployFlags) fromConfig(cmd *cobra.Command, f *Factory) {
	if !cmd.Flags().Changed("dispatch") && f.Config.AWS.Dispatch != "" {
		d.Dispatch = f.Config.AWS.Dispatch
	}
	if !cmd.Flags().Changed("secondary") && f.Config.AWS.Secondary.Deploy {
		d.Secondary = true
	}
	d.VPC = f.Config.AWS.VPC
	d.Metrics = f.Config.Metrics
	d.LeaseCache = f.Config.AWS.LeaseCache
	d.SecondaryLeaseCache = f.Config.AWS.Secondary.LeaseCache
	d.Retention = f.Config.AWS.Retention
}

// stackName is the stack --stack names, else aws.stack (a name, or an ARN
// arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID), else "".
func stackName(flag string, f *Factory) string {
	s := flag
	if s == "" {
		s = f.Config.AWS.Stack
	}
	if strings.HasPrefix(s, "arn:") {
		if _, rest, ok := strings.Cut(s, ":stack/"); ok {
			s, _, _ = strings.Cut(rest, "/")
		}
	}
	return s
}

// settings turns the flags into deploy settings for the project of specFile.
func (d *deployFlags) settings(specFile, stack string) (deploy.Settings, error) {
	dispatch := deploy.Dispatch(d.Dispatch)
	if !slices.Contains(deploy.Dispatches(), dispatch) {
		names := make([]string, 0, 5)
		for _, d := range deploy.Dispatches() {
			names = append(names, string(d))
		}
		return deploy.Settings{}, usageErrorf("invalid --dispatch %q: allowed values are %s", d.Dispatch, joinComma(names))
	}
	mode := deploy.Mode(d.Mode)
	if mode != deploy.ModeEvents && mode != deploy.ModeStepFunctions {
		return deploy.Settings{}, usageErrorf("invalid --mode %q: allowed values are events, stepfunctions", d.Mode)
	}
	project := d.Project
	if project == "" {
		project = projectName(specFile)
	}
	arch := d.Architecture
	if arch == "amd64" { // Go's name, as lfsm build --arch spells it
		arch = deploy.ArchX8664
	}
	st := deploy.Settings{
		Project: project, Stack: stack, Dispatch: dispatch, Mode: mode,
		Architecture: arch, MemoryMB: d.MemoryMB, Timeout: d.Timeout,
		LogRetentionDays: d.LogRetention, KinesisShards: d.KinesisShard,
		Secondary: d.Secondary, LeaseCache: d.LeaseCache != "", SecondaryLeaseCache: d.SecondaryLeaseCache != "",
	}
	if d.SecondaryLeaseCache != "" {
		if d.LeaseCache == "" {
			return deploy.Settings{}, usageErrorf("aws.secondary.lease-cache is set but aws.lease-cache is not: a secondary pairs with a primary")
		}
		if err := d.SecondaryLeaseCache.Check(); err != nil {
			return deploy.Settings{}, usageErrorf("invalid aws.secondary.lease-cache: %w", err)
		}
	}
	if d.LeaseCache != "" {
		if err := d.LeaseCache.Check(); err != nil {
			return deploy.Settings{}, usageErrorf("invalid aws.lease-cache: %w", err)
		}
	}
	if d.Retention != "" {
		r, err := config.ParseAge(d.Retention)
		if err != nil {
			return deploy.Settings{}, usageErrorf("invalid aws.retention: %w", err)
		}
		st.Retention = r
	}
	if !d.VPC.IsZero() {
		st.VPC = &deploy.VPC{ID: d.VPC.ID, SubnetIDs: d.VPC.Subnets, SecurityGroupIDs: d.VPC.SecurityGroups,
			RouteTableIDs: d.VPC.RouteTables, Egress: deploy.Egress(d.VPC.Egress)}
	}
	if d.Metrics.CloudWatch {
		st.Metrics = &deploy.Metrics{Namespace: d.Metrics.Namespace, SecondaryRegion: d.Metrics.SecondaryRegion}
	}
	if d.FunctionChaos.Enabled() {
		if err := chaos.CheckKeys(d.FunctionChaos.Ops, chaos.AWSBackends()); err != nil {
			return deploy.Settings{}, usageErrorf("invalid --function-chaos: %w", err)
		}
		st.Chaos = d.FunctionChaos.String()
	}
	st = st.WithDefaults()
	if err := st.Validate(); err != nil {
		return st, &UsageError{Err: err}
	}
	return st, nil
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ", "
		}
		out += v
	}
	return out
}

// projectName is the project's name: the last element of its Go module path
// (as lfsm build names the binary and the zip), else its directory's name.
func projectName(specFile string) string {
	dir := projectDir(specFile)
	if name, err := build.ProjectName(dir); err == nil {
		return name
	}
	return filepath.Base(dir)
}

// ExportCloudFormationOptions are the inputs of lfsm export cloudformation.
type ExportCloudFormationOptions struct {
	IO      *IOStreams
	WorkDir string
	File    string
	Out     string
	Output  string
	// Rename is the rename map (--rename) put into the function's
	// environment, as lfsm deploy --rename does.
	Rename string
	Deploy deployFlags
}

func newExportCloudFormationCmd(f *Factory, runF func(*ExportCloudFormationOptions) error) *cobra.Command {
	opts := &ExportCloudFormationOptions{}
	cmd := &cobra.Command{
		Use:     "cloudformation [-f FILE] [--dispatch DISPATCH] [--out FILE] [--output text|json]",
		Aliases: []string{"cfn"},
		Short:   "Export the deployment as a CloudFormation template",
		Long: heredoc(`
			Write the CloudFormation template lfsm deploy applies, for teams that
			deploy through their own pipeline: the execution store's tables, the
			dispatch (SQS by default, with a dead-letter queue), the function,
			its event source mapping, the every-minute schedule of the retry
			poller, a log group and a least-privilege role. docs/deploy.md lists
			every resource and why it is there.

			The function's code is a parameter: pass CodeBucket and CodeKey (the
			zip lfsm build --target aws writes, uploaded to S3) when you create
			the stack, with CAPABILITY_IAM. Resource names derive from the stack
			name, so one template deploys under any name.

			--rename FILE puts a rename map into the function's environment, as
			lfsm deploy --rename does (docs/deploy.md, "Renaming states"); your
			pipeline then checks the live executions itself.

			YAML by default; --output json writes JSON.
		`),
		Example: example(`
			lfsm export cloudformation --out template.yaml
			lfsm export cloudformation --dispatch kinesis --output json --out template.json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO = f.IOStreams
			opts.WorkDir = f.WorkDir
			opts.Deploy.fromConfig(cmd, f)
			if runF != nil {
				return runF(opts)
			}
			return runExportCloudFormation(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", config.DefaultSpecFile, "spec `FILE` to read")
	fl.StringVar(&opts.Out, "out", "", "write to `FILE` instead of stdout")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text (YAML) or json")
	fl.StringVar(&opts.Rename, "rename", "", "rename map `FILE` to put into the function's environment (as lfsm deploy --rename)")
	opts.Deploy.register(fl)
	return cmd
}

// buildModel loads the spec and builds the deployment model.
func buildModel(ios *IOStreams, workDir, file string, d *deployFlags, stack string) (*spec.Spec, *deploy.Model, error) {
	s, err := loadValidSpec(ios, workDir, file)
	if err != nil {
		return nil, nil, err
	}
	st, err := d.settings(file, stack)
	if err != nil {
		return nil, nil, err
	}
	m, err := deploy.Build(s, st)
	if err != nil {
		return nil, nil, fmt.Errorf("build the deployment of %s: %w", file, err)
	}
	return s, m, nil
}

func runExportCloudFormation(_ context.Context, opts *ExportCloudFormationOptions) error {
	s, m, err := buildModel(opts.IO, opts.WorkDir, opts.File, &opts.Deploy, "")
	if err != nil {
		return err
	}
	renames, err := loadRenames(opts.IO, opts.WorkDir, opts.Rename, s)
	if err != nil {
		return err
	}
	if err := m.SetRenames(renames); err != nil {
		return fmt.Errorf("--rename %s: %w", opts.Rename, err)
	}
	if m.Settings.Chaos != "" {
		fmt.Fprintf(opts.IO.ErrOut, "warning: the template's function fails its AWS calls at random (%s=%s, from --function-chaos): for test stacks only\n", deploy.EnvChaos, m.Settings.Chaos)
	}
	tmpl := m.Template()
	var doc []byte
	if opts.Output == outputJSON {
		doc, err = tmpl.JSON()
	} else {
		doc, err = tmpl.YAML()
	}
	if err != nil {
		return err
	}
	return writeResult(opts.IO, opts.Out, false, func(w io.Writer) error {
		_, err := w.Write(doc)
		return err
	})
}

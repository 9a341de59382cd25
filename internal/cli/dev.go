package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
)

// DevOptions are the inputs of lfsm dev.
type DevOptions struct {
	IO        *IOStreams
	WorkDir   string
	File      string
	DB        string
	Workers   int
	UntilIdle bool
	Simulate  bool
	Sim       simulateFlags
	Chaos     chaosFlags
	Log       logFlags
	// Retention is --retention (or lfsm.yaml's retention), parsed.
	Retention     time.Duration
	retentionFlag string
	// Visibility and LeaseTimeout are --visibility and --lease-timeout; 0
	// keeps the worker's defaults (local.WorkerVisibility, local.LeaseTimeout,
	// or chaos's shorter ones).
	Visibility   time.Duration
	LeaseTimeout time.Duration
	// RIE runs the Lambda bootstrap under aws-lambda-rie (--target aws).
	RIE bool
	// Output is --output: text, or json for one DevResult document on
	// stdout at the end (the λ lines then go to stderr).
	Output string
}

// DevResult is what lfsm dev --output json prints when the worker stops.
type DevResult struct {
	FormatVersion string `json:"format_version"`
	Target        string `json:"target"`
	// Chaos is the calls and injected failures per operation (backend.Op
	// with --target aws), or null when chaos is off.
	Chaos *chaos.Report `json:"chaos"`
}

// finishDev reports a dev run's end: the chaos report (when rep is not
// nil) as a table on stderr, or the DevResult on stdout with --output json.
func finishDev(opts *DevOptions, target string, rep *chaos.Report) error {
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, &DevResult{FormatVersion: "1", Target: target, Chaos: rep})
	}
	if rep != nil {
		rep.WriteText(opts.IO.ErrOut)
	}
	return nil
}

// devIO is the streams the worker's λ lines go to: stdout, or stderr with
// --output json (stdout then holds only the result).
func devIO(opts *DevOptions) *IOStreams {
	if opts.Output != outputJSON {
		return opts.IO
	}
	io := *opts.IO
	io.Out, io.OutIsTerminal = opts.IO.ErrOut, opts.IO.ErrOutIsTerminal
	return &io
}

func newDevCmd(f *Factory, runF func(*DevOptions) error) *cobra.Command {
	opts := &DevOptions{}
	var sim *engine.SimulateOptions
	cmd := &cobra.Command{
		Use:   "dev [--workers N] [--until-idle] [--visibility D] [--lease-timeout D] [--simulate [--events a,b,...] [--seed N]] [--chaos SPEC [--chaos-seed N]]",
		Short: "Run a local worker over the project's store",
		Long: heredoc(`
			Build the project and run its worker on the project's local store
			(.lfsm/lfsm.db, or --db): it handles the messages of every machine
			as lfsm start, lfsm send and lfsm resume enqueue them, N at a time.

			Each step prints a λ line on stdout, as lfsm tail prints history
			(correlation id, machine, step, the λ). On a terminal at most 20
			lines a second are printed (every failed step still), under a live
			summary of the steps, their rate and how executions ended; with -v,
			or when stdout is not a terminal, every line. The last line, on
			stderr, sums up what the worker did.

			--until-idle exits once no message is queued, delayed (a retry) or in
			flight, which suits scripts and tests; executions left waiting for an
			outside event do not keep it running.

			With --simulate nothing is built: the worker runs inside lfsm with
			simulated actions (see lfsm run --help); --events are shared by every
			execution the worker runs.

			--lease-timeout (default 5s) is how long a step's lease lasts without
			a renewal: the worker renews it while the step's actions run, so a
			step may run longer, and a killed worker's steps are taken over once
			it expires. --visibility (default 10s) is how long a received message
			stays hidden before it is delivered again: a killed worker's messages
			come back after it.

			--retention (or retention: in lfsm.yaml) prunes executions finished
			longer ago than DURATION, with their history, when the worker starts
			and every 10 minutes while it runs (see lfsm prune).

			--chaos makes calls to the local store fail at random, as in lfsm run
			(see lfsm run --help); under chaos a failed step comes back after a
			250 ms visibility timeout and a 1 s lease. With --target aws it
			wraps every AWS backend by name, in dev (the queue's or stream's
			reads and deletes) and in the function (the DynamoDB store, the
			dispatch's sends, the retry table, SQS visibility changes), so
			dynamodb.Acquire=0.2,kinesis.Send=0.1 fails exactly those; an
			unknown backend or operation is a usage error naming the valid
			ones. When the worker stops, a table gives the calls and injected
			failures per operation (backend.Op on AWS); --output json prints
			them as one document on stdout instead.

			With --target aws, dev plays Lambda's SQS event source mapping
			instead: it long-polls the aws: settings' dispatch queue and hands
			each batch to the project's Lambda handler (the project binary's
			invoke command, or with --rie the real bootstrap under
			aws-lambda-rie), deleting what the function did not report in
			batchItemFailures; a λ line per step (see docs/lambda.md).

			Ctrl-C stops the worker gracefully: the steps in flight finish and are
			committed (exit status 130); a second Ctrl-C aborts them, and their
			messages come back after the visibility timeout.
		`),
		Example: example(`
			# Serve executions until Ctrl-C
			lfsm dev --workers 8

			# Process everything started so far, then exit
			lfsm start -m Example --count 100 && lfsm dev --until-idle

			# The Lambda bootstrap under aws-lambda-rie, on the aws: settings' queue and store
			lfsm dev --target aws --rie
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t := f.target()
			if opts.RIE && !t.isAWS() {
				return usageErrorf("--rie runs the Lambda bootstrap: use it with --target aws")
			}
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if t.isAWS() {
				if opts.Simulate || opts.retentionFlag != "" {
					return usageErrorf("lfsm dev --target aws runs the project's real actions in its function: --simulate and --retention are local")
				}
				if err := opts.Chaos.check(cmd, true); err != nil {
					return err
				}
				if err := opts.Log.check(f); err != nil {
					return err
				}
				opts.IO, opts.WorkDir = f.IOStreams, f.WorkDir
				if runF != nil {
					return runF(opts)
				}
				return runDevAWS(cmd.Context(), opts, t)
			}
			if opts.Workers < 1 {
				return usageErrorf("invalid --workers %d: must be at least 1", opts.Workers)
			}
			if opts.Visibility < 0 || opts.LeaseTimeout < 0 || cmd.Flags().Changed("visibility") && opts.Visibility == 0 ||
				cmd.Flags().Changed("lease-timeout") && opts.LeaseTimeout == 0 {
				return usageErrorf("invalid --visibility %s or --lease-timeout %s: both must be positive durations (10s, 500ms)",
					opts.Visibility, opts.LeaseTimeout)
			}
			var err error
			if sim, err = opts.Sim.options(cmd, opts.Simulate); err != nil {
				return err
			}
			if err := opts.Chaos.check(cmd, false); err != nil {
				return err
			}
			if err := opts.Log.check(f); err != nil {
				return err
			}
			if opts.retentionFlag != "" {
				if opts.Retention, err = config.ParseAge(opts.retentionFlag); err != nil {
					return usageErrorf("invalid --retention%s: %w", f.sourceNote("retention"), err)
				}
			}
			opts.IO, opts.WorkDir = f.IOStreams, f.WorkDir
			if runF != nil {
				return runF(opts)
			}
			return runDev(cmd.Context(), opts, sim)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.IntVar(&opts.Workers, "workers", 4, "messages handled at once")
	fl.BoolVar(&opts.UntilIdle, "until-idle", false, "exit once no message is queued, delayed or in flight")
	fl.DurationVar(&opts.Visibility, "visibility", 0, "how long a received message stays hidden before it is delivered again (default 10s)")
	fl.DurationVar(&opts.LeaseTimeout, "lease-timeout", 0, "how long a step's lease lasts without a renewal before another worker may take it over (default 5s)")
	fl.BoolVar(&opts.RIE, "rie", false, "with --target aws: invoke the real Lambda bootstrap under aws-lambda-rie")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT` of the report at the end: text|json")
	fl.StringVar(&opts.retentionFlag, "retention", "", "prune executions finished longer ago than `DURATION` (30d, 720h) as the worker runs")
	addSimulateFlags(cmd, &opts.Simulate, &opts.Sim)
	addChaosFlags(cmd, &opts.Chaos)
	addLogFlags(cmd, &opts.Log)
	return cmd
}

func runDev(ctx context.Context, opts *DevOptions, sim *engine.SimulateOptions) error {
	s, err := loadValidSpec(opts.IO, opts.WorkDir, opts.File)
	if err != nil {
		return err
	}
	db, err := filepath.Abs(dbPath(opts.DB, opts.File))
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	if sim != nil {
		inj := opts.Chaos.injector(opts.IO)
		lease, vis := local.LeaseTimeout, local.WorkerVisibility
		if inj != nil {
			lease, vis = local.ChaosLeaseTimeout, local.ChaosVisibility
		}
		lease, vis = cmp.Or(opts.LeaseTimeout, lease), cmp.Or(opts.Visibility, vis)
		fmt.Fprintf(opts.IO.ErrOut, "dev: simulated worker, %d at a time, on %s (machines: %s; lease %s, visibility %s)\n", opts.Workers,
			relTo(opts.WorkDir, db), machineNames(s), lease, vis)
		rep := local.NewStepReporter(s, local.StepReporterOptions{Out: devIO(opts).Out, Mode: devSteps(opts)})
		err := local.Worker(ctx, local.WorkerOptions{Spec: s, Simulate: sim, DBPath: db, Workers: opts.Workers, UntilIdle: opts.UntilIdle, Chaos: inj,
			Retention: opts.Retention, Logger: opts.Log.logger(opts.IO), OnHandled: rep.Handled, Visibility: opts.Visibility, LeaseTimeout: opts.LeaseTimeout})
		fmt.Fprintln(opts.IO.ErrOut, "dev: "+rep.Close())
		var report *chaos.Report
		if inj != nil {
			r := inj.Report()
			report = &r
		}
		if ferr := finishDev(opts, "local", report); ferr != nil && err == nil {
			err = ferr
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			fmt.Fprintln(opts.IO.ErrOut, "dev: stopped; the steps in flight finished")
			return ctx.Err()
		}
		return nil
	}
	res, _, err := buildProject(ctx, opts.IO, opts.WorkDir, opts.File, "", false, true)
	if err != nil {
		return err
	}
	args := []string{"worker", "--db", db, "--workers", strconv.Itoa(opts.Workers), "--steps", string(devSteps(opts))}
	if opts.UntilIdle {
		args = append(args, "--until-idle")
	}
	if opts.Retention > 0 {
		args = append(args, "--retention", opts.Retention.String())
	}
	if opts.Visibility > 0 {
		args = append(args, "--visibility", opts.Visibility.String())
	}
	if opts.LeaseTimeout > 0 {
		args = append(args, "--lease-timeout", opts.LeaseTimeout.String())
	}
	args = append(args, opts.Chaos.args()...)
	var reportFile string
	var env []string
	if opts.Chaos.Spec.Enabled() {
		dir, err := os.MkdirTemp("", "lfsm-chaos-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		reportFile = filepath.Join(dir, "report.json")
		// The worker writes its counts there (fsm/host); one built before
		// that prints its summary line instead, and no table follows.
		env = append(env, "LFSM_CHAOS_REPORT="+reportFile)
	}
	args = append(args, opts.Log.args()...)
	err = runChildEnv(ctx, devIO(opts), projectDir(opts.File), res.Binary, env, args...)
	var report *chaos.Report
	if reportFile != "" {
		if _, serr := os.Stat(reportFile); serr == nil {
			r, rerr := chaos.ReadFile(reportFile)
			if rerr != nil {
				return errors.Join(err, rerr)
			}
			report = &r
		}
	}
	if ferr := finishDev(opts, "local", report); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// devSteps is which steps dev prints a λ line for: every one off a terminal
// or with -v; on a terminal at most local.DefaultMaxLinesPerSecond a second,
// with a live summary, so that thousands of λ/s do not wait for the terminal.
func devSteps(opts *DevOptions) local.StepMode {
	if opts.Log.Verbose || !opts.IO.OutIsTerminal {
		return local.StepsAll
	}
	return local.StepsSampled
}

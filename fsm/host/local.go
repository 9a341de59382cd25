//go:build !lambda.norpc

package host

// The local commands (run, worker) run on the embedded SQLite store. The
// Lambda build (tag lambda.norpc, see lambda_build.go) leaves them out, so
// that the function links no SQLite.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

func runCmd(ctx context.Context, s *spec.Spec, resolve engine.Resolver, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	machine := fs.String("m", "", "machine to start")
	fs.StringVar(machine, "machine", "", "machine to start")
	ctxArg := fs.String("context", "", "initial context: a JSON object, or @FILE")
	id := fs.String("correlation-id", "", "correlation id (default: a new random one)")
	db := fs.String("db", local.DefaultDBPath, "SQLite database of the local store")
	output := fs.String("output", "text", "text or json")
	cf := chaosFlags(fs)
	lf := logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	logger, err := config.NewLogger(stderr, lf.format, lf.verbose)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	inj, err := cf.injector(fs, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	if *machine == "" || fs.NArg() > 0 || (*output != "text" && *output != "json") {
		fmt.Fprintln(stderr, "error: run needs -m MACHINE and no arguments; --output is text or json")
		return exitUsage
	}
	if *id != "" {
		if err := engine.ValidateCorrelationID(*id); err != nil {
			fmt.Fprintf(stderr, "error: --correlation-id %q: %v\n", *id, err)
			return exitUsage
		}
	}
	uc, err := parseContext(*ctxArg)
	if err != nil {
		fmt.Fprintf(stderr, "error: --context: %v\n", err)
		return exitUsage
	}
	res, err := local.Run(ctx, local.RunOptions{
		Spec: s, Resolve: resolve, DBPath: *db, Machine: *machine, Context: uc,
		CorrelationID: *id, Out: stdout, JSON: *output == "json", Logger: logger, Chaos: inj,
	})
	if inj != nil {
		fmt.Fprintln(stderr, "chaos: "+inj.Summary())
	}
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stderr, "interrupted: execution %s left as it was (lfsm inspect %s)\n", res.CorrelationID, res.CorrelationID)
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	if res.Status == engine.StatusDone || res.Status == engine.StatusWaiting {
		return exitOK
	}
	return exitFailure
}

func workerCmd(ctx context.Context, s *spec.Spec, resolve engine.Resolver, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 4, "messages handled at once")
	db := fs.String("db", local.DefaultDBPath, "SQLite database of the local store")
	untilIdle := fs.Bool("until-idle", false, "exit once no message is queued, delayed or in flight")
	steps := fs.String("steps", "", "λ lines on stdout: all, sampled (at most 20 a second, with a live summary: for a terminal) or none (default: sampled on a terminal, else all)")
	visibility := fs.Duration("visibility", local.WorkerVisibility, "how long a received message stays hidden before it is delivered again")
	leaseTimeout := fs.Duration("lease-timeout", local.LeaseTimeout, "how long a step's lease lasts without a renewal before another worker may take the step over")
	retentionFlag := fs.String("retention", "", "prune executions finished longer ago than `DURATION` (30d, 720h) as the worker runs")
	cf := chaosFlags(fs)
	lf := logFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	logger, err := config.NewLogger(stderr, lf.format, lf.verbose)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 || *workers < 1 || *visibility <= 0 || *leaseTimeout <= 0 {
		fmt.Fprintln(stderr, "error: worker takes no arguments, --workers >= 1, and positive --visibility and --lease-timeout")
		return exitUsage
	}
	var retention time.Duration
	if *retentionFlag != "" {
		var err error
		if retention, err = config.ParseAge(*retentionFlag); err != nil {
			fmt.Fprintf(stderr, "error: --retention: %v\n", err)
			return exitUsage
		}
	}
	inj, err := cf.injector(fs, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	if inj != nil {
		// Under chaos, commits fail on purpose: short timeouts unless given.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["visibility"] {
			*visibility = local.ChaosVisibility
		}
		if !set["lease-timeout"] {
			*leaseTimeout = local.ChaosLeaseTimeout
		}
	}
	mode := local.StepMode(*steps)
	if mode == "" {
		mode = local.StepsAll
		if f, ok := stdout.(*os.File); ok && isTerminal(f) {
			mode = local.StepsSampled
		}
	}
	if !slices.Contains(local.StepModes(), mode) {
		fmt.Fprintf(stderr, "error: invalid --steps %q: want all, sampled or none\n", *steps)
		return exitUsage
	}
	rep := local.NewStepReporter(s, local.StepReporterOptions{Out: stdout, Mode: mode})
	fmt.Fprintf(stderr, "worker: %d workers on %s (machines: %s; lease %s, visibility %s)\n", *workers, *db, machineNames(s), *leaseTimeout, *visibility)
	err = local.Worker(ctx, local.WorkerOptions{Spec: s, Resolve: resolve, DBPath: *db, Workers: *workers, Logger: logger,
		UntilIdle: *untilIdle, Visibility: *visibility, LeaseTimeout: *leaseTimeout, Chaos: inj, Retention: retention,
		OnHandled: rep.Handled})
	fmt.Fprintln(stderr, "worker: "+rep.Close())
	if inj != nil {
		fmt.Fprintln(stderr, "chaos: "+inj.Summary())
	}
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "worker: stopped")
		return exitInterrupted
	}
	if *untilIdle {
		fmt.Fprintln(stderr, "worker: queue empty, exiting")
	}
	return exitOK
}

// logOpts are the -v and --log-format flags of run and worker (see
// config.NewLogger: no logs unless asked for).
type logOpts struct {
	verbose bool
	format  string
}

func logFlags(fs *flag.FlagSet) *logOpts {
	l := &logOpts{}
	fs.BoolVar(&l.verbose, "v", false, "log what the engine does (info level)")
	fs.StringVar(&l.format, "log-format", "", "log as text or json (default: no logs unless -v)")
	return l
}

// chaosOpts are the --chaos and --chaos-seed flags of run and worker.
type chaosOpts struct {
	spec config.Chaos
	seed uint64
}

func chaosFlags(fs *flag.FlagSet) *chaosOpts {
	c := &chaosOpts{}
	fs.Var(&c.spec, "chaos", "make calls to the local store fail at random: 0.1, or default=0.1,Commit=0.5")
	fs.Uint64Var(&c.seed, "chaos-seed", 0, "seed of the chaos draws (default: random, printed)")
	return c
}

// injector returns nil when chaos is off; else it prints that chaos is on
// and returns the injector. --chaos-seed without chaos is an error.
func (c *chaosOpts) injector(fs *flag.FlagSet, stderr io.Writer) (*chaos.Injector, error) {
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "chaos-seed" })
	if !c.spec.Enabled() {
		if seedSet {
			return nil, errors.New("--chaos-seed needs --chaos")
		}
		return nil, nil
	}
	if !seedSet {
		c.seed = rand.Uint64N(1 << 31)
	}
	fmt.Fprintln(stderr, c.spec.Notice(c.seed))
	return chaos.New(c.spec.Config(c.seed)), nil
}

// envLocalChaosReport names a file the worker writes its chaos counts to
// (a chaos.Report, JSON) when it stops, instead of a line on stderr: lfsm dev
// prints them. An environment variable, not a flag, so that lfsm dev can set
// it for a project binary built before it existed, which ignores it.
const envLocalChaosReport = "LFSM_CHAOS_REPORT"

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

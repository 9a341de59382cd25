package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/backend/memory"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
)

// RunOptions are the inputs of lfsm run.
type RunOptions struct {
	IO            *IOStreams
	WorkDir       string
	File          string
	DB            string
	Machine       string
	Context       string
	CorrelationID string
	Output        string
	Simulate      bool
	Sim           simulateFlags
	Chaos         chaosFlags
	Log           logFlags
}

// simulateFlags are the --events and --seed flags of run and dev.
type simulateFlags struct {
	Events  []string
	Seed    uint64
	seedSet bool
}

// options returns the engine's simulation options, or a usage error when
// --events or --seed are given without --simulate.
func (s *simulateFlags) options(cmd *cobra.Command, simulate bool) (*engine.SimulateOptions, error) {
	s.seedSet = cmd.Flags().Changed("seed")
	if !simulate {
		if cmd.Flags().Changed("events") || s.seedSet {
			return nil, usageErrorf("--events and --seed need --simulate")
		}
		return nil, nil
	}
	if len(s.Events) > 0 && s.seedSet {
		return nil, usageErrorf("--events and --seed exclude each other: events are replayed, a seed drives a random walk")
	}
	o := &engine.SimulateOptions{}
	if len(s.Events) > 0 {
		o.Events = append([]string{}, s.Events...)
	} else if s.seedSet {
		o.Rand = rand.New(rand.NewPCG(s.Seed, s.Seed))
	}
	return o, nil
}

func addSimulateFlags(cmd *cobra.Command, simulate *bool, s *simulateFlags) {
	fl := cmd.Flags()
	fl.BoolVar(simulate, "simulate", false, "run without user code: actions do nothing, do actions return simulated events")
	fl.StringSliceVar(&s.Events, "events", nil, "with --simulate: the `EVENTS` do actions return, in order (a,b,...); when they run out, no event")
	fl.Uint64Var(&s.Seed, "seed", 1, "with --simulate and no --events: seed of the random walk over transitions")
}

func newRunCmd(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{}
	var sim *engine.SimulateOptions
	cmd := &cobra.Command{
		Use:   "run -m MACHINE [--context JSON|@FILE] [--correlation-id ID] [--output text|json] [--simulate [--events a,b,...] [--seed N]] [--chaos SPEC [--chaos-seed N]]",
		Short: "Run one execution locally and show each Lambda invocation",
		Long: heredoc(`
			Start one execution and run it to the end in this terminal, printing
			each Lambda invocation (λ) as it finishes: the transition, the actions
			that ran and how long it took, then how the execution ended.

			Without --simulate, lfsm builds the project (as lfsm build does) and
			runs the built binary on the project's local store (.lfsm/lfsm.db, or
			--db), so lfsm inspect and lfsm tail can look at the execution later.

			With --simulate no user code runs and nothing is built: every action
			does nothing, and do actions return the --events given, in order (when
			they run out, no event: a non-final state waits), or, without
			--events, follow a random walk seeded by --seed. Any spec works,
			including ones written for the Python framework. A simulated run uses
			a temporary in-memory store: nothing is written.

			Exit status: 0 when the execution finished (or waits for an outside
			event), 1 when it failed, 2 on a usage error (a bad --context names
			the problem), 130 when interrupted: the first Ctrl-C lets the step in
			flight finish.

			With --output json the result is one JSON document (format_version "1")
			with every λ, the final status and context.

			--chaos makes calls to the local store fail at random, to test that
			the workflow copes (see docs/run.md, "Chaos"): a probability for every
			call (0.1) or per operation (default=0.1,Commit=0.5). A failed call is
			retried or its message redelivered, so the run still finishes, later;
			a line on stderr says chaos is on, with the seed that repeats it.
		`),
		Example: example(`
			# The seed example's done, done path: λ1 λ2 λ4 λ5
			lfsm run -f examples/seed/fsm.yaml -m Example --simulate --events done,done

			# A real run with the project's Go actions
			lfsm run -m Example --context '{"arg1":1}'

			# The same path with one store call in five failing at random
			lfsm run -f examples/seed/fsm.yaml -m Example --simulate --events done,done --chaos 0.2 --chaos-seed 1

			# The context from a file, as JSON
			lfsm run -m Example --context @order.json --output json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := localOnly(f, "run"); err != nil {
				return err
			}
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
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
			if err := checkCorrelationID(opts.CorrelationID); err != nil {
				return err
			}
			opts.IO, opts.WorkDir = f.IOStreams, f.WorkDir
			if runF != nil {
				return runF(opts)
			}
			return runRun(cmd.Context(), opts, sim)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVarP(&opts.Machine, "machine", "m", "", "`MACHINE` to run")
	fl.StringVar(&opts.Context, "context", "", "initial context: a JSON object, or @FILE")
	fl.StringVar(&opts.CorrelationID, "correlation-id", "", "correlation `ID` of the execution (default: a new random one)")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	addSimulateFlags(cmd, &opts.Simulate, &opts.Sim)
	addChaosFlags(cmd, &opts.Chaos)
	addLogFlags(cmd, &opts.Log)
	return cmd
}

func runRun(ctx context.Context, opts *RunOptions, sim *engine.SimulateOptions) error {
	uc, err := parseContext(opts.Context)
	if err != nil {
		return err
	}
	s, err := loadValidSpec(opts.IO, opts.WorkDir, opts.File)
	if err != nil {
		return err
	}
	m, err := needMachine(s, opts.Machine)
	if err != nil {
		return err
	}
	if sim != nil {
		inj := opts.Chaos.injector(opts.IO)
		res, err := local.Run(ctx, local.RunOptions{
			Spec: s, Simulate: sim, Backend: memory.New(memory.Options{}), Machine: m.Name,
			Context: uc, CorrelationID: opts.CorrelationID, Out: opts.IO.Out, JSON: opts.Output == outputJSON,
			Chaos: inj, Command: runCommand(opts.File, m.Name), Logger: opts.Log.logger(opts.IO),
		})
		if inj != nil {
			fmt.Fprintln(opts.IO.ErrOut, "chaos: "+inj.Summary())
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return err
		case res.Status == engine.StatusDone || res.Status == engine.StatusWaiting:
			return nil
		}
		return errSilent
	}

	res, _, err := buildProject(ctx, opts.IO, opts.WorkDir, opts.File, "", false, opts.Output != outputJSON)
	if errors.Is(err, build.ErrLFSMModule) {
		return specOnlyError(opts.File, m.Name)
	}
	if err != nil {
		if err == errSilent && opts.Output == outputJSON {
			return fmt.Errorf("build %s: action references have errors (lfsm build shows them)", opts.File)
		}
		return err
	}
	db, err := filepath.Abs(dbPath(opts.DB, opts.File))
	if err != nil {
		return fmt.Errorf("--db: %w", err)
	}
	ucJSON, err := json.Marshal(uc)
	if err != nil {
		return fmt.Errorf("encode context: %w", err)
	}
	args := []string{"run", "-m", m.Name, "--db", db, "--output", opts.Output, "--context", string(ucJSON)}
	if opts.CorrelationID != "" {
		args = append(args, "--correlation-id", opts.CorrelationID)
	}
	args = append(args, opts.Chaos.args()...)
	args = append(args, opts.Log.args()...)
	return runChild(ctx, opts.IO, projectDir(opts.File), res.Binary, args...)
}

// runCommand is the lfsm run command line that names file and machine, for
// hints: -f only when file is not the default.
func runCommand(file, machine string) string {
	if file == "" || file == config.DefaultSpecFile {
		return "lfsm run -m " + machine
	}
	return fmt.Sprintf("lfsm run -f %s -m %s", shellQuote(file), machine)
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=@:+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

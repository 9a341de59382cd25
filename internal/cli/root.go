package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
)

// Execute runs the lfsm command line with args (without the program name),
// writing to ios. It prints any error to ios.ErrOut and returns it; pass the
// result to ExitCode for the process exit status.
func Execute(ctx context.Context, ios *IOStreams, args []string) error {
	f, err := NewFactory(ios)
	if err != nil {
		fmt.Fprintf(ios.ErrOut, "lfsm: %v\n", err)
		return err
	}
	root := NewRootCmd(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	printError(ios, cmd, err)
	return err
}

func printError(ios *IOStreams, cmd *cobra.Command, err error) {
	var ue *UsageError
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, errSilent), errors.As(err, &ee):
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(ios.ErrOut, "lfsm: interrupted")
	case errors.As(err, &ue):
		fmt.Fprintf(ios.ErrOut, "lfsm: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(ios.ErrOut, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	default:
		fmt.Fprintf(ios.ErrOut, "lfsm: %v\n", err)
		if hint := hintFor(err); hint != "" {
			fmt.Fprintf(ios.ErrOut, "  hint: %s\n", hint)
		}
	}
}

// hintFor suggests the next step for errors whose fix is the same wherever
// they come from.
func hintFor(err error) string {
	switch {
	case errors.Is(err, engine.ErrPruned):
		return "lfsm prune deleted it (or the retention did: a worker's, or DynamoDB's TTL with aws.retention); its id stays taken"
	case errors.Is(err, engine.ErrNotFound):
		return "lfsm ls lists the executions of this store (--db names another store)"
	case errors.Is(err, engine.ErrNotWaiting):
		return "lfsm inspect ID shows its status; only a waiting execution takes an event"
	case errors.Is(err, engine.ErrExists):
		return "an id names one execution: lfsm resume ID restarts a failed or stopped one; start a new one under another --correlation-id (or none)"
	}
	return ""
}

// NewRootCmd returns the lfsm command tree. Settings are bound (flag > env >
// lfsm.yaml > default) just before a command runs, into f.Config.
func NewRootCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lfsm <command> [flags]",
		Short: "Finite state machine workflows on AWS Lambda",
		Long: heredoc(`
			lfsm builds, checks, draws and runs finite state machine workflows that
			execute on AWS Lambda, one Lambda invocation per state transition.

			Machines are written in YAML (fsm.yaml); their entry, do, exit and
			transition actions are Go functions, referenced by import path.

			Every flag can also be set by an environment variable: LFSM_ and the
			flag's name in capitals, dashes as underscores (LFSM_OUTPUT=json).
			The settings file lfsm.yaml in the working directory (or --config FILE)
			may set file, machine, target, output, lambda-arn, db, chaos,
			chaos-seed and retention. A flag beats the environment, which beats lfsm.yaml,
			which beats the default.

			Exit status: 0 ok, 1 failure (including an invalid spec), 2 usage
			error, 3 deploy plan has changes (only with --detailed-exitcode),
			130 interrupted.
		`),
		Example: example(`
			# Create a project and run its machine locally
			lfsm init shop && cd shop && lfsm run --context '{"arg1": 1}'

			# Walk a machine without user code
			lfsm run -m Example --simulate --events done,done

			# Check a spec and report every problem at file:line:col
			lfsm validate -f fsm.yaml

			# List which actions run in which Lambda invocation
			lfsm graph -f fsm.yaml --lambdas --output listing

			# Export a machine as Amazon States Language
			lfsm export asl -m Example --lambda-arn arn:aws:lambda:us-east-1:123456789012:function:example
		`),
		SilenceErrors: true,
		SilenceUsage:  true,
		// Suggest a command within two edits of an unknown one.
		SuggestionsMinimumDistance: 2,
		Args:                       rootArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindSettings(cmd, f)
		},
	}
	cmd.SetIn(f.IOStreams.In)
	cmd.SetOut(f.IOStreams.Out)
	cmd.SetErr(f.IOStreams.ErrOut)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &UsageError{Err: err}
	})

	pf := cmd.PersistentFlags()
	pf.String("config", "", "read settings from `FILE` (default ./lfsm.yaml if present)")
	pf.String("target", string(config.TargetLocal), "where executions run (`TARGET`: local|aws)")

	cmd.AddCommand(
		newVersionCmd(f, nil),
		newValidateCmd(f, nil),
		newSchemaCmd(f, nil),
		newGraphCmd(f, nil),
		newExportCmd(f),
		newInitCmd(f, nil),
		newBuildCmd(f, nil),
		newTestCmd(f, nil),
		newRunCmd(f, nil),
		newDevCmd(f, nil),
		newStartCmd(f, nil),
		newTailCmd(f, nil),
		newInspectCmd(f, nil),
		newSendCmd(f, nil),
		newStopCmd(f, nil),
		newResumeCmd(f, nil),
		newLsCmd(f, nil),
		newMetricsCmd(f, nil),
		newUICmd(f, nil),
		newPruneCmd(f, nil),
		newDeployCmd(f, nil),
		newDestroyCmd(f, nil),
	)
	cmd.InitDefaultCompletionCmd()
	cmd.InitDefaultHelpCmd()
	wrapArgErrors(cmd)
	return cmd
}

// rootArgs rejects unknown commands as usage errors (cobra's own check
// returns a plain error).
func rootArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return &UsageError{Err: errors.New(msg)}
}

// wrapArgErrors makes every positional-argument check in the tree return a
// *UsageError, so that a wrong number of arguments exits with ExitUsage.
func wrapArgErrors(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			err := check(c, args)
			var ue *UsageError
			if err != nil && !errors.As(err, &ue) {
				return &UsageError{Err: err}
			}
			return err
		}
	}
	for _, c := range cmd.Commands() {
		wrapArgErrors(c)
	}
}

// heredoc removes the common indentation of s and its surrounding blank
// lines, so help text can be written indented in the source.
func heredoc(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		} else {
			lines[i] = strings.TrimLeft(l, " \t")
		}
	}
	return strings.TrimRight(strings.Join(lines, "\n"), " \t\n")
}

// example formats an Example section: heredoc, then indented by two spaces.
func example(s string) string {
	lines := strings.Split(heredoc(s), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}

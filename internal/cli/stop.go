package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// StopOptions are the inputs of lfsm stop.
type StopOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target        target
	IO            *IOStreams
	File          string
	DB            string
	CorrelationID string
	Yes           bool
	Output        string
}

func newStopCmd(f *Factory, runF func(*StopOptions) error) *cobra.Command {
	opts := &StopOptions{}
	cmd := &cobra.Command{
		Use:   "stop ID [--yes] [--output text|json]",
		Short: "Abort an execution",
		Long: heredoc(`
			Mark an execution stopped: messages of it that are still queued are
			dropped when a worker receives them, and nothing more runs. A step
			already running finishes, but its result is not followed.
			lfsm resume restarts it from its last committed step.

			Stopping is destructive: on a terminal lfsm asks first; otherwise
			(scripts, --output json) it needs --yes.
		`),
		Example: example(`
			lfsm stop 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e
			lfsm stop 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e --yes
		`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO, opts.CorrelationID = f.IOStreams, args[0]
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runStop(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runStop(ctx context.Context, opts *StopOptions) error {
	db, _, err := opts.Target.open(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	x, err := db.Get(ctx, opts.CorrelationID)
	if err != nil {
		return fmt.Errorf("stop %s: %w", opts.CorrelationID, err)
	}
	if !opts.Yes {
		ok, err := confirm(opts.IO, opts.Output, fmt.Sprintf("Stop %s execution %s (%s in %s)?", x.Machine, x.CorrelationID, x.Status, x.State))
		if err != nil || !ok {
			return err
		}
	}
	if err := stopExecution(ctx, db, opts.CorrelationID); err != nil {
		return err
	}
	return writeOperate(ctx, opts.IO, opts.Output, db, OperateResult{Operation: "stop", CorrelationID: opts.CorrelationID})
}

// stopExecution is what lfsm stop (and the console's Stop button) does.
func stopExecution(ctx context.Context, db opStore, id string) error {
	e, err := operatorEngine(nil, db)
	if err != nil {
		return err
	}
	return e.Stop(ctx, id)
}

// readLine reads one line from r a byte at a time, so that nothing after
// the line is consumed: a command that asks twice (deploy, then the offer to
// delete a failed stack) gets each answer.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return b.String(), nil
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			return b.String(), err
		}
	}
}

// errDeclined is returned when the user answers no to a confirmation.
var errDeclined = errors.New("not confirmed: nothing done")

// confirm asks question on a terminal and reports a yes. Without a terminal
// (or with JSON output, which never prompts) it is a usage error that asks
// for --yes.
func confirm(ios *IOStreams, output, question string) (bool, error) {
	if !ios.InIsTerminal || !ios.ErrOutIsTerminal || output == outputJSON {
		return false, usageErrorf("this is destructive and there is no terminal to confirm on: pass --yes")
	}
	fmt.Fprintf(ios.ErrOut, "%s [y/N] ", question)
	line, err := readLine(ios.In)
	if err != nil && line == "" {
		return false, errDeclined
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, errDeclined
}

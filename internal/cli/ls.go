package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/engine"
)

// LsOptions are the inputs of lfsm ls.
type LsOptions struct {
	IO      *IOStreams
	File    string
	DB      string
	Machine string
	Status  string
	Limit   int
	Output  string
}

// LsResult is what lfsm ls --output json prints.
type LsResult struct {
	FormatVersion string             `json:"format_version"`
	Executions    []engine.Execution `json:"executions"`
}

var statuses = []string{"", string(engine.StatusRunning), string(engine.StatusWaiting), string(engine.StatusDone),
	string(engine.StatusFailed), string(engine.StatusStopped)}

func newLsCmd(f *Factory, runF func(*LsOptions) error) *cobra.Command {
	opts := &LsOptions{}
	cmd := &cobra.Command{
		Use:     "ls [-m MACHINE] [--status STATUS] [--limit N] [--output text|json]",
		Aliases: []string{"list"},
		Short:   "List executions of the local store",
		Long: heredoc(`
			List executions, newest (most recently started) first: correlation id, machine,
			status, state, last committed step and when it last changed.
			-m and --status (running, waiting, done, failed, stopped) filter them.

			With --output json: one document {"format_version":"1","executions":[...]}.
		`),
		Example: example(`
			lfsm ls --status failed
			lfsm ls -m Example --limit 10 --output json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if err := checkEnum(f, "status", opts.Status, statuses); err != nil {
				return err
			}
			opts.IO = f.IOStreams
			if runF != nil {
				return runF(opts)
			}
			return runLs(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVarP(&opts.Machine, "machine", "m", "", "only executions of `MACHINE`")
	fl.StringVar(&opts.Status, "status", "", "only executions in `STATUS`: running|waiting|done|failed|stopped")
	fl.IntVar(&opts.Limit, "limit", 0, "list at most `N` (0: all)")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runLs(ctx context.Context, opts *LsOptions) error {
	db, err := openStore(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	page, err := db.List(ctx, engine.ListFilter{Machine: opts.Machine, Status: engine.Status(opts.Status), Limit: opts.Limit})
	if err != nil {
		return fmt.Errorf("list executions: %w", err)
	}
	xs := page.Executions
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, LsResult{FormatVersion: "1", Executions: xs})
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CORRELATION ID\tMACHINE\tSTATUS\tSTATE\tSTEP\tUPDATED")
	for _, x := range xs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", x.CorrelationID, x.Machine, x.Status, x.State, x.DoneStep,
			x.UpdatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

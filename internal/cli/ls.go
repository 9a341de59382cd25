package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/engine"
)

// lsPageSize is --limit's default: about a screenful.
const lsPageSize = 50

// lsStreamPage is how many executions lfsm ls --all reads per page.
const lsStreamPage = 1000

// LsOptions are the inputs of lfsm ls.
type LsOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target  target
	IO      *IOStreams
	File    string
	DB      string
	Machine string
	// MachineNote says where Machine came from when not from -m (the
	// environment), for the filter note; empty otherwise.
	MachineNote string
	Status      string
	State       string
	Limit       int
	Cursor      string
	All         bool
	Output      string
	// Dropped lists the messages the engine could not run instead.
	Dropped bool
}

// LsResult is what lfsm ls --output json prints.
type LsResult struct {
	FormatVersion string             `json:"format_version"`
	Filter        LsFilter           `json:"filter"`
	Executions    []engine.Execution `json:"executions"`
	// Next is the cursor of the next page (lfsm ls --cursor NEXT), empty when
	// this page is the last.
	Next string `json:"next"`
}

// LsFilter is the filter ls applied (empty fields: any).
type LsFilter struct {
	Machine string `json:"machine"`
	Status  string `json:"status"`
	State   string `json:"state"`
}

var statuses = []string{"", string(engine.StatusRunning), string(engine.StatusWaiting), string(engine.StatusDone),
	string(engine.StatusFailed), string(engine.StatusStopped)}

func newLsCmd(f *Factory, runF func(*LsOptions) error) *cobra.Command {
	opts := &LsOptions{}
	cmd := &cobra.Command{
		Use:     "ls [-m MACHINE] [--status STATUS] [--state STATE] [--limit N | --all] [--cursor C] [--output text|json]",
		Aliases: []string{"list"},
		Short:   "List executions of the local store",
		Long: heredoc(`
			List executions, newest (most recently started) first: correlation id,
			machine, status, state, last committed step and when it last changed.
			-m, --status (running, waiting, done, failed, stopped) and --state
			filter them; every machine is listed unless -m (or LFSM_MACHINE) names
			one: the machine setting of lfsm.yaml does not apply to ls.

			ls prints one page, the newest 50 by default (--limit N); when there
			are more it says how to list the next page (--cursor). --all lists
			every execution, reading the store a page at a time.

			With --output json: one document {"format_version":"1","filter":{...},
			"executions":[...],"next":"CURSOR"}; next is empty on the last page.

			--dropped lists the messages the engine could not run instead, newest
			first: when, why (not_json, non_finite_number, no_version,
			unknown_version, no_correlation_id, invalid_correlation_id,
			no_current_event, malformed), the correlation id and machine where the
			message named them, and its size; -m, --limit and --all apply. With
			--output json: {"format_version":"1","dropped":[...]}.
		`),
		Example: example(`
			lfsm ls --status failed
			lfsm ls -m Example --state Packed --limit 10 --output json
			lfsm ls --all --output json | jq -r '.executions[].correlation_id'
			lfsm ls --dropped
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if err := checkEnum(f, "status", opts.Status, statuses); err != nil {
				return err
			}
			if opts.Limit < 1 {
				return usageErrorf("invalid --limit %d%s: must be at least 1 (--all lists everything)", opts.Limit, f.sourceNote("limit"))
			}
			if opts.All && (cmd.Flags().Changed("limit") || opts.Cursor != "") {
				return usageErrorf("--all lists every execution: it takes no --limit or --cursor")
			}
			opts.MachineNote = f.sources["machine"] // set by the environment, not -m
			if opts.Dropped && (opts.Status != "" || opts.State != "" || opts.Cursor != "") {
				return usageErrorf("--status, --state and --cursor filter executions: they do not apply to --dropped")
			}
			opts.IO = f.IOStreams
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			if opts.Dropped {
				return runLsDropped(cmd.Context(), opts)
			}
			return runLs(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVarP(&opts.Machine, "machine", "m", "", "only executions of `MACHINE` (default: every machine)")
	ignoreFileSetting(fl, "machine")
	fl.StringVar(&opts.Status, "status", "", "only executions in `STATUS`: running|waiting|done|failed|stopped")
	fl.StringVar(&opts.State, "state", "", "only executions whose current state is `STATE`")
	fl.IntVar(&opts.Limit, "limit", lsPageSize, "list at most `N`, newest first")
	fl.StringVar(&opts.Cursor, "cursor", "", "continue a listing at `CURSOR` (printed with the previous page)")
	fl.BoolVar(&opts.All, "all", false, "list every execution")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	fl.BoolVar(&opts.Dropped, "dropped", false, "list the messages the engine could not run instead (malformed, bad correlation id, of a pruned execution)")
	return cmd
}

func runLs(ctx context.Context, opts *LsOptions) error {
	if opts.MachineNote != "" && opts.Output != outputJSON {
		fmt.Fprintf(opts.IO.ErrOut, "ls: only machine %s (set by %s)\n", opts.Machine, opts.MachineNote)
	}
	res := LsResult{FormatVersion: "1", Filter: LsFilter{Machine: opts.Machine, Status: opts.Status, State: opts.State}}
	path := dbPath(opts.DB, opts.File)
	if !opts.Target.isAWS() && storeMissing(opts.IO, path) {
		// No execution has run yet: the list is empty.
		res.Executions = []engine.Execution{}
		if opts.Output == outputJSON {
			return writeJSON(opts.IO.Out, res)
		}
		return lsTable(opts.IO.Out).Flush()
	}
	db, _, err := opts.Target.open(ctx, path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	filter := engine.ListFilter{Machine: opts.Machine, Status: engine.Status(opts.Status), State: opts.State,
		Limit: opts.Limit, Cursor: opts.Cursor}
	if opts.All {
		filter.Limit = lsStreamPage
		return streamLs(ctx, db, filter, opts, res)
	}
	page, err := db.List(ctx, filter)
	if errors.Is(err, engine.ErrBadCursor) {
		return usageErrorf("invalid --cursor: %w; pass the cursor the previous page printed, with the same filters", err)
	}
	if err != nil {
		return fmt.Errorf("list executions: %w", err)
	}
	res.Executions, res.Next = page.Executions, page.Next
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, res)
	}
	tw := lsTable(opts.IO.Out)
	lsRows(tw, page.Executions)
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(opts.IO.ErrOut, "more: lfsm ls --cursor %s (same filters), or --all\n", page.Next)
	}
	return nil
}

// streamLs writes every execution filter selects, a page at a time, so that
// memory stays bounded by one page whatever the store holds. JSON is still
// one document, written as it goes.
func streamLs(ctx context.Context, db engine.Store, filter engine.ListFilter, opts *LsOptions, res LsResult) error {
	var tw *tabwriter.Writer
	var enc *json.Encoder
	if opts.Output == outputJSON {
		head, err := json.Marshal(struct {
			FormatVersion string   `json:"format_version"`
			Filter        LsFilter `json:"filter"`
		}{res.FormatVersion, res.Filter})
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		fmt.Fprintf(opts.IO.Out, "%s,\"executions\":[", head[:len(head)-1])
		enc = json.NewEncoder(opts.IO.Out)
	} else {
		tw = lsTable(opts.IO.Out)
	}
	n := 0
	for {
		page, err := db.List(ctx, filter)
		if err != nil {
			return fmt.Errorf("list executions: %w", err)
		}
		if enc != nil {
			for _, x := range page.Executions {
				if n > 0 {
					io.WriteString(opts.IO.Out, ",")
				}
				if err := enc.Encode(x); err != nil {
					return fmt.Errorf("encode json: %w", err)
				}
				n++
			}
		} else {
			lsRows(tw, page.Executions)
			if err := tw.Flush(); err != nil { // columns are aligned within a page
				return err
			}
		}
		if page.Next == "" {
			break
		}
		filter.Cursor = page.Next
	}
	if enc != nil {
		_, err := io.WriteString(opts.IO.Out, "],\"next\":\"\"}\n")
		return err
	}
	return nil
}

func lsTable(w io.Writer) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CORRELATION ID\tMACHINE\tSTATUS\tSTATE\tSTEP\tUPDATED")
	return tw
}

func lsRows(tw *tabwriter.Writer, xs []engine.Execution) {
	for _, x := range xs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", x.CorrelationID, x.Machine, x.Status, x.State, x.DoneStep,
			x.UpdatedAt.Local().Format(time.DateTime))
	}
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
)

// TailOptions are the inputs of lfsm tail.
type TailOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target  target
	IO      *IOStreams
	File    string
	DB      string
	Machine string
	// MachineNote says where Machine came from when not from -m (the
	// environment), for the filter note; empty otherwise.
	MachineNote   string
	CorrelationID string
	Follow        bool
	Output        string
	// Poll is how often --follow looks for new entries (default 250 ms).
	Poll time.Duration
}

// TailResult is what lfsm tail --output json prints without --follow.
type TailResult struct {
	FormatVersion string              `json:"format_version"`
	Entries       []engine.HistoryRow `json:"entries"`
}

func newTailCmd(f *Factory, runF func(*TailOptions) error) *cobra.Command {
	opts := &TailOptions{}
	cmd := &cobra.Command{
		Use:   "tail [-m MACHINE] [--correlation-id ID] [--follow] [--output text|json]",
		Short: "Print the history of executions, one line per Lambda invocation",
		Long: heredoc(`
			Print history entries of the local store, oldest first: one line per
			Lambda invocation with the correlation id, machine, λ number, the
			transition, the actions that ran, how long it took and how it ended.
			-m and --correlation-id narrow it down; every machine is shown unless
			-m (or LFSM_MACHINE) names one: the machine setting of lfsm.yaml does
			not apply to tail.

			--follow keeps printing new entries as workers write them, until
			Ctrl-C (exit status 130).

			With --output json and no --follow: one document
			{"format_version":"1","entries":[...]}. With --output json --follow:
			NDJSON, one entry object per line as it arrives.
		`),
		Example: example(`
			lfsm tail -m Example
			lfsm tail --correlation-id 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e --follow
			lfsm tail --follow --output json | jq -c 'select(.outcome == "failed")'
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.MachineNote = f.sources["machine"] // set by the environment, not -m
			opts.IO = f.IOStreams
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runTail(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVarP(&opts.Machine, "machine", "m", "", "only entries of `MACHINE` (default: every machine)")
	ignoreFileSetting(fl, "machine")
	fl.StringVar(&opts.CorrelationID, "correlation-id", "", "only entries of the execution `ID`")
	fl.BoolVar(&opts.Follow, "follow", false, "keep printing new entries until interrupted")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runTail(ctx context.Context, opts *TailOptions) error {
	path := dbPath(opts.DB, opts.File)
	poll := opts.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	if !opts.Target.isAWS() && storeMissing(opts.IO, path) {
		if !opts.Follow {
			if opts.Output == outputJSON {
				return writeJSON(opts.IO.Out, TailResult{FormatVersion: "1", Entries: []engine.HistoryRow{}})
			}
			return nil
		}
		if err := waitForFile(ctx, path, poll); err != nil {
			return err
		}
	}
	db, _, err := opts.Target.open(ctx, path, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if opts.MachineNote != "" && opts.Output != outputJSON {
		fmt.Fprintf(opts.IO.ErrOut, "tail: only machine %s (set by %s)\n", opts.Machine, opts.MachineNote)
	}
	filter := engine.HistoryFilter{Machine: opts.Machine, CorrelationID: opts.CorrelationID}
	next, err := historyFeed(db, filter)
	if err != nil {
		return err
	}
	traces := map[string]*local.Trace{}
	w := &tailWriter{out: opts.IO.Out, json: opts.Output == outputJSON, traces: func(machine string) *local.Trace {
		if traces[machine] == nil {
			traces[machine] = traceFor(opts.File, machine)
		}
		return traces[machine]
	}}
	rows, err := next(ctx)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	if !opts.Follow {
		if w.json {
			return writeJSON(opts.IO.Out, TailResult{FormatVersion: "1", Entries: rows})
		}
		return w.write(rows)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := w.write(rows); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if rows, err = next(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("tail: %w", err)
		}
	}
}

// historyFeed returns a function that reads the history rows filter selects
// that it has not returned before: by the global id on a Tailer (the local
// stores), by the opaque cursor of a HistoryPager (the DynamoDB store, one
// execution at a time).
func historyFeed(db engine.Store, filter engine.HistoryFilter) (func(context.Context) ([]engine.HistoryRow, error), error) {
	if tl, ok := db.(engine.Tailer); ok {
		var last int64
		return func(ctx context.Context) ([]engine.HistoryRow, error) {
			rows, err := tl.HistorySince(ctx, last, filter)
			if n := len(rows); err == nil && n > 0 {
				last = rows[n-1].ID
			}
			return rows, err
		}, nil
	}
	if hp, ok := db.(engine.HistoryPager); ok {
		if filter.CorrelationID == "" {
			return nil, usageErrorf("tail on --target aws needs --correlation-id ID: the DynamoDB store pages one execution's history at a time (lfsm ls lists the executions)")
		}
		cursor := ""
		return func(ctx context.Context) ([]engine.HistoryRow, error) {
			rows, next, err := hp.HistoryPage(ctx, cursor, filter)
			if err == nil {
				cursor = next
			}
			return rows, err
		}, nil
	}
	return nil, fmt.Errorf("tail: this store cannot page its history")
}

// waitForFile polls until path exists or ctx ends.
func waitForFile(ctx context.Context, path string, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// tailWriter prints history rows as text lines or NDJSON.
type tailWriter struct {
	out    io.Writer
	json   bool
	traces func(machine string) *local.Trace
}

func (w *tailWriter) write(rows []engine.HistoryRow) error {
	for _, r := range rows {
		if r.Actions == nil {
			r.Actions = []string{}
		}
		if w.json {
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode json: %w", err)
			}
			if _, err := fmt.Fprintf(w.out, "%s\n", b); err != nil {
				return err
			}
			continue
		}
		if _, err := fmt.Fprintf(w.out, "%s %s step %d  %s\n", r.CorrelationID, r.Machine, r.Step,
			historyLine(w.traces(r.Machine), r.HistoryEntry)); err != nil {
			return err
		}
	}
	return nil
}

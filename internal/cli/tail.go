package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
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
			Print history entries of the store, oldest first: one line per
			Lambda invocation with the correlation id, machine, λ number, the
			transition, the actions that ran, how long it took and how it ended.
			-m and --correlation-id narrow it down; every machine is shown unless
			-m (or LFSM_MACHINE) names one: the machine setting of lfsm.yaml does
			not apply to tail.

			--follow keeps printing new entries as workers write them, until
			Ctrl-C (exit status 130).

			On --target aws (no history log across executions) tail reads the
			newest executions and the running or waiting ones, each by its own
			cursor, and merges their entries by time: pass -m on a large table.

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
// stores), by the opaque cursors of a HistoryPager (the DynamoDB store, one
// execution at a time: pagerFeed across executions).
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
			return pagerFeed(db, hp, filter, time.Now()), nil
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

// pagerFeed tails every execution (of filter.Machine) on a HistoryPager,
// which has no global history log, with no write of its own: the first call
// returns the history of the newest lsPageSize executions (List, as ls
// shows them) and of every running or waiting one; each later call pages,
// each by its own cursor, the executions List says are running or waiting,
// those created since started, and those that were running or waiting at
// the previous call (so that the last entries of one that finished between
// two calls are not lost). Rows are returned in time order.
func pagerFeed(db engine.Store, hp engine.HistoryPager, filter engine.HistoryFilter, started time.Time) func(context.Context) ([]engine.HistoryRow, error) {
	cursors := map[string]string{}
	live := map[string]bool{}
	first := true
	return func(ctx context.Context) ([]engine.HistoryRow, error) {
		ids := map[string]bool{}
		for id := range live {
			ids[id] = true
		}
		now := map[string]bool{}
		for _, st := range []engine.Status{engine.StatusRunning, engine.StatusWaiting} {
			if err := listEach(ctx, db, engine.ListFilter{Machine: filter.Machine, Status: st, Limit: lsPageSize}, func(e engine.Execution) bool {
				now[e.CorrelationID], ids[e.CorrelationID] = true, true
				return true
			}); err != nil {
				return nil, err
			}
		}
		n := 0
		if err := listEach(ctx, db, engine.ListFilter{Machine: filter.Machine, Limit: lsPageSize}, func(e engine.Execution) bool {
			if first {
				n++
				ids[e.CorrelationID] = true
				return n < lsPageSize
			}
			if e.CreatedAt.Before(started) {
				return false
			}
			ids[e.CorrelationID] = true
			return true
		}); err != nil {
			return nil, err
		}
		first = false
		rows := []engine.HistoryRow{}
		for id := range ids {
			f := filter
			f.CorrelationID = id
			got, next, err := hp.HistoryPage(ctx, cursors[id], f)
			if errors.Is(err, engine.ErrNotFound) {
				continue // pruned since it was listed
			}
			if err != nil {
				return nil, err
			}
			cursors[id] = next
			rows = append(rows, got...)
		}
		live = now
		slices.SortFunc(rows, func(a, b engine.HistoryRow) int {
			if c := a.Started.Compare(b.Started); c != 0 {
				return c
			}
			if c := strings.Compare(a.CorrelationID, b.CorrelationID); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
		return rows, nil
	}
}

// listEach calls fn for the executions f lists, newest first, page after
// page, until fn returns false or the listing ends.
func listEach(ctx context.Context, db engine.Store, f engine.ListFilter, fn func(engine.Execution) bool) error {
	for {
		page, err := db.List(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range page.Executions {
			if !fn(e) {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		f.Cursor = page.Next
	}
}

package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
)

// PruneOptions are the inputs of lfsm prune.
type PruneOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target    target
	IO        *IOStreams
	File      string
	DB        string
	OlderThan time.Duration
	Vacuum    bool
	Yes       bool
	Output    string
	// Now is the time the age is counted from (time.Now when zero).
	Now time.Time
}

// PruneResult is what lfsm prune --output json prints.
type PruneResult struct {
	FormatVersion string    `json:"format_version"`
	Before        time.Time `json:"before"`
	engine.PruneResult
	// Vacuumed: --vacuum rewrote the file.
	Vacuumed bool `json:"vacuumed"`
	// AutoVacuum: the file gives freed pages back as it is pruned.
	AutoVacuum bool `json:"auto_vacuum"`
	// FileBytesBefore and FileBytesAfter are the sizes of the database file
	// and its WAL.
	FileBytesBefore int64 `json:"file_bytes_before"`
	FileBytesAfter  int64 `json:"file_bytes_after"`
}

func newPruneCmd(f *Factory, runF func(*PruneOptions) error) *cobra.Command {
	opts := &PruneOptions{}
	var olderThan string
	cmd := &cobra.Command{
		Use:   "prune --older-than DURATION [--vacuum] [--yes] [--output text|json]",
		Short: "Delete finished executions from the local store",
		Long: heredoc(`
			Delete executions that finished (done, failed or stopped) and were
			last updated longer ago than DURATION (30d, 720h, 90m), with their
			history, and dropped-message records older than that. Each pruned
			id stays refused: a late message of it is dropped (lfsm ls
			--dropped shows it) and lfsm start cannot reuse it.

			Stores created by this lfsm shrink as they are pruned. A store
			created by an older lfsm keeps the freed space for new executions;
			--vacuum rewrites it smaller and makes later prunes shrink it
			(workers on the store wait while it runs).

			Pruning is destructive: on a terminal lfsm asks first; otherwise
			(scripts, --output json) it needs --yes. The retention setting
			(lfsm dev --retention, retention: in lfsm.yaml) makes workers prune
			as they run.

			With --output json: {"format_version":"1","before":...,"executions":N,
			"history":N,"dropped":N,"vacuumed":...,"auto_vacuum":...,
			"file_bytes_before":N,"file_bytes_after":N}.
		`),
		Example: example(`
			lfsm prune --older-than 30d
			lfsm prune --older-than 720h --vacuum --yes --output json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if olderThan == "" {
				return usageErrorf("prune needs --older-than DURATION (for example 30d): executions finished before then are deleted")
			}
			var err error
			if opts.OlderThan, err = config.ParseAge(olderThan); err != nil {
				return usageErrorf("invalid --older-than: %w", err)
			}
			opts.IO = f.IOStreams
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runPrune(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVar(&olderThan, "older-than", "", "delete executions finished longer ago than `DURATION` (30d, 720h, 90m)")
	fl.BoolVar(&opts.Vacuum, "vacuum", false, "rewrite the store without its free space")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runPrune(ctx context.Context, opts *PruneOptions) error {
	if opts.Target.isAWS() {
		return runPruneAWS(ctx, opts)
	}
	db, err := openStore(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := PruneResult{FormatVersion: "1", Before: now.Add(-opts.OlderThan).UTC()}
	if !opts.Yes {
		q := fmt.Sprintf("Delete every done, failed or stopped execution last updated before %s, with its history?",
			res.Before.Local().Format(time.DateTime))
		ok, err := confirm(opts.IO, opts.Output, q)
		if err != nil || !ok {
			return err
		}
	}
	res.FileBytesBefore = storeBytes(db)
	if res.PruneResult, err = db.Prune(ctx, engine.PruneRequest{Before: res.Before, Now: now}); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if opts.Vacuum {
		if err := db.Vacuum(ctx); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		res.Vacuumed = true
	}
	if res.AutoVacuum, err = db.AutoVacuum(ctx); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	res.FileBytesAfter = storeBytes(db)
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, res)
	}
	fmt.Fprintf(opts.IO.Out, "pruned %d executions (%d history entries, %d dropped-message records) last updated before %s\n",
		res.Executions, res.History, res.Dropped, res.Before.Local().Format(time.DateTime))
	fmt.Fprintf(opts.IO.Out, "store %s -> %s\n", mib(res.FileBytesBefore), mib(res.FileBytesAfter))
	if !res.AutoVacuum && res.Executions > 0 {
		fmt.Fprintln(opts.IO.ErrOut, "hint: this store keeps freed space for new executions; lfsm prune --vacuum gives it back")
	}
	return nil
}

// storeBytes is the size of the database file and its WAL (0 if unknown).
func storeBytes(db *sqlite.DB) int64 {
	var n int64
	for _, p := range []string{db.Path(), db.Path() + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// runPruneAWS prunes the DynamoDB store: the same selection and JSON, with
// no file sizes (file_bytes_* are 0) and nothing to vacuum.
func runPruneAWS(ctx context.Context, opts *PruneOptions) error {
	if opts.Vacuum {
		return usageErrorf("--vacuum rewrites a local SQLite store: it does not apply to --target aws")
	}
	db, _, err := opts.Target.open(ctx, "", true)
	if err != nil {
		return err
	}
	defer db.Close()
	p, ok := db.(engine.Pruner)
	if !ok {
		return fmt.Errorf("prune: this store cannot prune")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := PruneResult{FormatVersion: "1", Before: now.Add(-opts.OlderThan).UTC(), AutoVacuum: true}
	if !opts.Yes {
		q := fmt.Sprintf("Delete every done, failed or stopped execution last updated before %s, with its history?",
			res.Before.Local().Format(time.DateTime))
		ok, err := confirm(opts.IO, opts.Output, q)
		if err != nil || !ok {
			return err
		}
	}
	if res.PruneResult, err = p.Prune(ctx, engine.PruneRequest{Before: res.Before, Now: now}); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, res)
	}
	fmt.Fprintf(opts.IO.Out, "pruned %d executions (%d history entries, %d dropped-message records) last updated before %s\n",
		res.Executions, res.History, res.Dropped, res.Before.Local().Format(time.DateTime))
	return nil
}

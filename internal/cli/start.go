package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/engine"
)

// StartOptions are the inputs of lfsm start.
type StartOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target        target
	IO            *IOStreams
	WorkDir       string
	File          string
	DB            string
	Machine       string
	Context       string
	Count         int
	CorrelationID string
	Output        string
}

// StartResult is what lfsm start prints; its JSON form is versioned.
type StartResult struct {
	FormatVersion  string   `json:"format_version"`
	Machine        string   `json:"machine"`
	DB             string   `json:"db"`
	CorrelationIDs []string `json:"correlation_ids"`
}

// progressEvery is how often start reports progress when starting many
// and stderr is no terminal (a terminal gets a bar instead).
const progressEvery = 1000

// startBatch is how many executions start asks the engine for at once.
const startBatch = 100

// progressBar draws done of total in 20 cells.
func progressBar(done, total int) string {
	const cells = 20
	full := done * cells / max(total, 1)
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", cells-full) + "]"
}

func newStartCmd(f *Factory, runF func(*StartOptions) error) *cobra.Command {
	opts := &StartOptions{}
	cmd := &cobra.Command{
		Use:   "start -m MACHINE [--context JSON|@FILE] [--count N] [--correlation-id ID] [--output text|json]",
		Short: "Enqueue executions (on the local store, or the AWS one with --target aws)",
		Long: heredoc(`
			Start executions of a machine: record each one and enqueue its start
			message on the project's local store (.lfsm/lfsm.db, or --db). No user
			code runs here; a worker (lfsm dev) picks the messages up.

			The correlation ids are printed one per line; with --output json, one
			document {"format_version":"1","machine":...,"db":...,"correlation_ids":[...]}.
			--count N starts N executions with the same context (a progress bar
			on a terminal, else a line on stderr every 1000; on --target aws in
			batched calls, partial failures retried); --correlation-id names the
			execution and needs --count 1.
		`),
		Example: example(`
			# Start one execution, then process it
			lfsm start -m Example --context '{"arg1":1}'
			lfsm dev --until-idle

			# Start a thousand, with the context from a file
			lfsm start -m Example --context @order.json --count 1000
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			if opts.Count < 1 {
				return usageErrorf("invalid --count %d: must be at least 1", opts.Count)
			}
			if opts.CorrelationID != "" && opts.Count != 1 {
				return usageErrorf("--correlation-id names one execution: it needs --count 1")
			}
			if err := checkCorrelationID(opts.CorrelationID); err != nil {
				return err
			}
			opts.IO, opts.WorkDir = f.IOStreams, f.WorkDir
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runStart(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVarP(&opts.Machine, "machine", "m", "", "`MACHINE` to start")
	fl.StringVar(&opts.Context, "context", "", "initial context: a JSON object, or @FILE")
	fl.IntVar(&opts.Count, "count", 1, "number of executions to start")
	fl.StringVar(&opts.CorrelationID, "correlation-id", "", "correlation `ID` of the execution (default: a new random one)")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runStart(ctx context.Context, opts *StartOptions) error {
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
	path := dbPath(opts.DB, opts.File)
	db, name, err := opts.Target.open(ctx, path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	e, err := operatorEngine(s, db)
	if err != nil {
		return err
	}
	res := StartResult{FormatVersion: "1", Machine: m.Name, DB: name, CorrelationIDs: []string{}}
	text := opts.Output != outputJSON
	bar := opts.IO.ErrOutIsTerminal && opts.Count >= startBatch
	for done := 0; done < opts.Count && ctx.Err() == nil; {
		n := min(startBatch, opts.Count-done)
		reqs := make([]engine.StartRequest, n)
		for i := range reqs {
			c := uc
			if done+i < opts.Count-1 {
				c = cloneContext(uc) // the engine takes ownership of each
			}
			reqs[i] = engine.StartRequest{Machine: m.Name, Context: c, CorrelationID: opts.CorrelationID}
		}
		// In batches: on the AWS store, 25 creates and 10 start messages a
		// call; elsewhere one by one.
		ids, errs := e.StartMany(ctx, reqs)
		var first error
		for i, id := range ids {
			if errs[i] != nil {
				if first == nil {
					first = errs[i]
				}
				continue
			}
			res.CorrelationIDs = append(res.CorrelationIDs, id)
			if text {
				if _, err := fmt.Fprintln(opts.IO.Out, id); err != nil {
					return err
				}
			}
		}
		prev := done
		done += n
		if text || bar {
			switch {
			case bar:
				fmt.Fprintf(opts.IO.ErrOut, "\rstarting %s %d/%d", progressBar(done, opts.Count), done, opts.Count)
				if done == opts.Count || first != nil {
					fmt.Fprintln(opts.IO.ErrOut)
				}
			case opts.Count >= progressEvery && (done/progressEvery > prev/progressEvery || done == opts.Count):
				fmt.Fprintf(opts.IO.ErrOut, "started %d/%d\n", len(res.CorrelationIDs), opts.Count)
			}
		}
		if first != nil && ctx.Err() != nil {
			// Interrupted: the starts refused were not written at all (a
			// start whose write is in finishes, message included).
			break
		}
		if first != nil {
			if n := len(res.CorrelationIDs); n > 0 {
				fmt.Fprintf(opts.IO.ErrOut, "started %d of %d before the failure\n", n, opts.Count)
			}
			return first
		}
	}
	if !text {
		if err := writeJSON(opts.IO.Out, res); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(opts.IO.ErrOut, "started %d of %d before the interrupt\n", len(res.CorrelationIDs), opts.Count)
		return err
	}
	return nil
}

// cloneContext deep-copies a decoded JSON object.
func cloneContext(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneJSON(v)
	}
	return out
}

func cloneJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneContext(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneJSON(e)
		}
		return out
	}
	return v
}

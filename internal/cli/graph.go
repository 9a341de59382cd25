package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/graph"
)

// GraphOptions are the inputs of lfsm graph.
type GraphOptions struct {
	IO *IOStreams
	// WorkDir is where diagnostics' paths are made relative to.
	WorkDir string
	File    string
	Machine string
	Lambdas bool
	Output  string
	Out     string
}

func newGraphCmd(f *Factory, runF func(*GraphOptions) error) *cobra.Command {
	opts := &GraphOptions{}
	cmd := &cobra.Command{
		Use:   "graph [-f FILE] [-m MACHINE] [--lambdas] [--output FORMAT] [--out FILE]",
		Short: "Draw machines, or list what runs in each Lambda invocation",
		Long: heredoc(`
			Draw the machines of a spec as a UML-like state diagram: a start circle,
			an end double circle, states listing their entry, do and exit actions,
			edges labelled "event" or "event / action".

			Formats (--output):
			  dot      Graphviz source (the default)
			  svg      an SVG image (one machine: choose it with -m)
			  png      a PNG image (one machine; never written to a terminal)
			  mermaid  a Mermaid stateDiagram-v2, for Markdown
			  listing  which actions run in which Lambda invocation (λ1, λ2, ...)

			With --lambdas, edges carry the number of the Lambda invocation that
			takes them. Local transitions run inside the invocation that reached
			their source, so they get no number of their own.

			The spec is validated first; if it has errors they are printed to
			stderr and nothing is drawn (exit status 1).
		`),
		Example: example(`
			# The seed example's Lambda invocations
			lfsm graph -f examples/seed/fsm.yaml --lambdas --output listing

			# An SVG of one machine
			lfsm graph -m Example --lambdas --output svg --out example.svg

			# Graphviz source, rendered by dot
			lfsm graph -m Example | dot -Tpdf > example.pdf
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			formats := make([]string, len(graph.Formats))
			for i, g := range graph.Formats {
				formats[i] = string(g)
			}
			if err := checkEnum(f, "output", opts.Output, formats); err != nil {
				return err
			}
			opts.IO = f.IOStreams
			opts.WorkDir = f.WorkDir
			if runF != nil {
				return runF(opts)
			}
			return runGraph(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", config.DefaultSpecFile, "spec `FILE` to draw")
	fl.StringVarP(&opts.Machine, "machine", "m", "", "draw only `MACHINE` (default: all)")
	fl.BoolVar(&opts.Lambdas, "lambdas", false, "number edges with their Lambda invocation (λ)")
	fl.StringVar(&opts.Output, "output", string(graph.FormatDOT), "output `FORMAT`: dot|svg|png|mermaid|listing")
	fl.StringVar(&opts.Out, "out", "", "write to `FILE` instead of stdout")
	return cmd
}

func runGraph(ctx context.Context, opts *GraphOptions) error {
	format := graph.Format(opts.Output)
	if err := checkDestination(opts.IO, opts.Out, format.Binary()); err != nil {
		return err
	}
	s, err := loadValidSpec(opts.IO, opts.WorkDir, opts.File)
	if err != nil {
		return err
	}
	// svg and png build lfsm's Graphviz renderer into lfsm's cache on first
	// use, and say so on stderr.
	cacheDir, _ := build.DefaultCacheDir()
	if cacheDir != "" {
		cacheDir = filepath.Join(cacheDir, "graphviz")
	}
	pr := newProgress(opts.IO.ErrOut, "graph: ", opts.IO.ErrOutIsTerminal)
	defer pr.Stop()
	err = writeResult(opts.IO, opts.Out, format.Binary(), func(w io.Writer) error {
		return graph.Render(ctx, w, s, graph.Options{
			Machine:  opts.Machine,
			Lambdas:  opts.Lambdas,
			Format:   format,
			CacheDir: cacheDir,
			Logger:   slog.New(pr),
		})
	})
	pr.Stop()
	if errors.Is(err, graph.ErrMachineNeeded) {
		return &UsageError{Err: err}
	}
	return err
}

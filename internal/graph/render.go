package graph

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/lfsm/lfsm/internal/lambdanum"
	"github.com/lfsm/lfsm/internal/spec"
)

// Format is an output format of Render.
type Format string

// Formats Render writes.
const (
	FormatDOT     Format = "dot"
	FormatSVG     Format = "svg"
	FormatPNG     Format = "png"
	FormatMermaid Format = "mermaid"
	FormatListing Format = "listing"
)

// Formats lists every Format, in the order help text shows them.
var Formats = []Format{FormatDOT, FormatSVG, FormatPNG, FormatMermaid, FormatListing}

// Binary reports whether f is not text (and should not be written to a terminal).
func (f Format) Binary() bool {
	return f == FormatPNG
}

// Options says what Render draws and how.
type Options struct {
	// Machine names the machine to draw; "" draws all of them (dot, mermaid and
	// listing only: svg and png need a single machine).
	Machine string
	// Lambdas numbers the edges with their λ (REFERENCE.md §2).
	Lambdas bool
	// Format is the output format; "" means dot.
	Format Format
	// CacheDir keeps the Graphviz renderer (svg and png): it is built there on
	// first use, from the module proxy of project builds, and keeps its
	// compiled WebAssembly there. "" means build.DefaultCacheDir()/graphviz,
	// which is what lfsm passes.
	CacheDir string
	// Logger receives a progress line while the renderer is built (the first
	// svg or png render of an lfsm version takes a while); nil discards it.
	Logger *slog.Logger
}

// ErrMachineNeeded is returned by Render when an image format is asked for a spec
// with several machines and no Options.Machine.
var ErrMachineNeeded = errors.New("svg and png draw one machine: pass -m to choose one")

// UnknownMachineError reports an Options.Machine the spec does not define.
type UnknownMachineError = spec.UnknownMachineError

// Render writes the diagram(s) of s in opts.Format. svg/png need a single machine:
// with Machine=="" and more than one machine it returns an error saying to pass -m.
func Render(ctx context.Context, w io.Writer, s *spec.Spec, opts Options) error {
	machines, err := selectMachines(s, opts.Machine)
	if err != nil {
		return err
	}
	switch opts.Format {
	case FormatDOT, "":
		bw := bufio.NewWriter(w)
		for i, m := range machines {
			if err := ctx.Err(); err != nil {
				return err
			}
			if i > 0 {
				bw.WriteByte('\n')
			}
			writeDOT(bw, DOT(m, opts.Lambdas))
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write dot: %w", err)
		}
		return nil
	case FormatMermaid:
		return WriteMermaid(w, machines, opts.Lambdas)
	case FormatListing:
		bw := bufio.NewWriter(w)
		for i, m := range machines {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(machines) > 1 {
				if i > 0 {
					bw.WriteByte('\n')
				}
				fmt.Fprintf(bw, "# %s\n\n", m.Name)
			}
			writeListing(bw, lambdanum.Lambdas(m))
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write listing: %w", err)
		}
		return nil
	case FormatSVG, FormatPNG:
		if len(machines) != 1 {
			return ErrMachineNeeded
		}
		return renderImage(ctx, w, machines[0], opts)
	default:
		return fmt.Errorf("unknown graph format %q (want one of %q)", opts.Format, Formats)
	}
}

func selectMachines(s *spec.Spec, name string) ([]*spec.Machine, error) {
	if name == "" {
		if len(s.Machines) == 0 {
			return nil, errors.New("the spec defines no machine")
		}
		return s.Machines, nil
	}
	m, err := s.FindMachine(name)
	if err != nil {
		return nil, err
	}
	return []*spec.Machine{m}, nil
}

// renderImage lays out the DOT of m with Graphviz (lfsm's renderer, Graphviz
// compiled to WebAssembly, or a system Graphviz: see GraphvizEnv) and writes
// it as SVG, or draws the layout as PNG.
func renderImage(ctx context.Context, w io.Writer, m *spec.Machine, opts Options) error {
	// PNG is drawn by lfsm from the layout (xdot); SVG is Graphviz's, with its
	// text drawn in the label font's outlines (fixSVGText).
	format := "svg"
	if opts.Format == FormatPNG {
		format = "xdot"
	}
	out, err := layout(ctx, m, opts, format)
	if err != nil {
		return err
	}
	var img []byte
	if opts.Format == FormatPNG {
		d, err := parseXDot(out)
		if err != nil {
			return fmt.Errorf("machine %s: %w", m.Name, err)
		}
		var b bytes.Buffer
		if err := writePNG(&b, d); err != nil {
			return fmt.Errorf("draw machine %s: %w", m.Name, err)
		}
		img = b.Bytes()
	} else if img, err = fixSVGText(out); err != nil {
		return fmt.Errorf("draw machine %s: %w", m.Name, err)
	}
	if _, err := w.Write(img); err != nil {
		return fmt.Errorf("write %s: %w", opts.Format, err)
	}
	return nil
}

// layout has Graphviz lay out the DOT of m and render it in format (svg, xdot).
func layout(ctx context.Context, m *spec.Machine, opts Options, format string) ([]byte, error) {
	var dot bytes.Buffer
	bw := bufio.NewWriter(&dot)
	ast, ids := dotGraph(m, opts.Lambdas)
	writeDOT(bw, ast)
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write dot: %w", err)
	}
	l, err := chooseLayouter(opts)
	if err != nil {
		return nil, err
	}
	// go-graphviz's parser gives every node with an empty label its name as
	// label; the pseudo nodes are meant to be bare circles.
	out, err := l.layout(ctx, dot.Bytes(), format, []string{ids.startName, ids.endName})
	if err != nil {
		return nil, fmt.Errorf("lay out machine %s: %w", m.Name, err)
	}
	return out, nil
}

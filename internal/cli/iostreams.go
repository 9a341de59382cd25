package cli

import (
	"bytes"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IOStreams are the streams a command reads and writes. Results go to Out,
// logs, progress and errors to ErrOut.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer

	// OutIsTerminal reports whether Out is a terminal: binary output is refused
	// there, and human niceties (colour, source snippets) may be used.
	OutIsTerminal bool
	// ErrOutIsTerminal reports whether ErrOut is a terminal.
	ErrOutIsTerminal bool
	// InIsTerminal reports whether In is a terminal: destructive commands ask
	// for confirmation only then, and otherwise need --yes.
	InIsTerminal bool
}

// System returns the process's standard streams.
func System() *IOStreams {
	return &IOStreams{
		In:               os.Stdin,
		Out:              os.Stdout,
		ErrOut:           os.Stderr,
		OutIsTerminal:    isTerminal(os.Stdout),
		ErrOutIsTerminal: isTerminal(os.Stderr),
		InIsTerminal:     isTerminal(os.Stdin),
	}
}

func isTerminal(f *os.File) bool {
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// TestIOStreams returns streams backed by buffers, none of them a terminal.
// Set OutIsTerminal to exercise terminal behaviour.
func TestIOStreams() (ios *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

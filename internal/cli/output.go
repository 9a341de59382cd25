package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Output formats shared by commands that print a result.
const (
	outputText = "text"
	outputJSON = "json"
)

// textOrJSON are the --output values of commands whose result is a document.
var textOrJSON = []string{outputText, outputJSON}

// writeResult sends what write produces to the file named by out, or to
// ios.Out when out is "" or "-". A file is written atomically: nothing is left
// behind, and an existing file is untouched, when write fails. Binary output is
// refused when it would go to a terminal.
func writeResult(ios *IOStreams, out string, binary bool, write func(io.Writer) error) error {
	if err := checkDestination(ios, out, binary); err != nil {
		return err
	}
	if out == "" || out == "-" {
		return write(ios.Out)
	}
	return writeFileAtomic(out, write)
}

// checkDestination refuses binary output bound for a terminal. Commands call it
// before doing expensive work; writeResult calls it again.
func checkDestination(ios *IOStreams, out string, binary bool) error {
	if binary && (out == "" || out == "-") && ios.OutIsTerminal {
		return usageErrorf("refusing to write binary output to a terminal: use --out FILE or redirect stdout")
	}
	return nil
}

// writeFileAtomic writes path through a temporary file in the same directory
// that is renamed over path only once write and close succeeded.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeJSON writes v as one indented JSON document followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	return nil
}

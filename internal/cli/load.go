package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/lfsm/lfsm/internal/spec"
)

// loadSpec reads the spec at path and applies the validation rules. A missing
// file is an error with advice, not a diagnostic: there is no source to point
// into. Problems in the file are returned as sorted diagnostics.
func loadSpec(path string, vopts spec.ValidateOptions) (*spec.Spec, spec.Diagnostics, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("spec file %s not found (name another with -f FILE)", path)
		}
		return nil, nil, fmt.Errorf("load spec %s: %w", path, err)
	}
	s, diags := spec.Load(path)
	if s != nil {
		diags = append(diags, spec.Validate(s, vopts)...)
	}
	diags.Sort()
	return s, diags, nil
}

// loadValidSpec loads and validates the spec at path for commands that need a
// usable one (graph, export). When the spec has errors it prints them to
// ios.ErrOut and returns errSilent.
func loadValidSpec(ios *IOStreams, workDir, path string) (*spec.Spec, error) {
	s, diags, err := loadSpec(path, spec.ValidateOptions{})
	if err != nil {
		return nil, err
	}
	if diags.HasErrors() || s == nil {
		if err := spec.WriteText(ios.ErrOut, diags, workDir); err != nil {
			return nil, fmt.Errorf("write diagnostics: %w", err)
		}
		return nil, errSilent
	}
	return s, nil
}

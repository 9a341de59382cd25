package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load reads the spec at path and every file it imports, recursively. Imports are
// resolved relative to the importing file; an imported file's machines stand
// where its import entry does. A file imported more than once (not in a cycle)
// contributes its machines once. Load never stops at the first problem: the
// returned spec holds every machine that could be read, and the diagnostics
// (sorted) every problem found on the way. Run Validate on the result for the
// semantic rules.
func Load(path string) (*Spec, Diagnostics) {
	l := &loader{spec: &Spec{Root: path}, loaded: make(map[string]bool)}
	l.spec.Machines = l.load(path, nil)
	l.diags.Sort()
	return l.spec, l.diags
}

type loader struct {
	spec   *Spec
	diags  Diagnostics
	loaded map[string]bool
	// stack holds the files being loaded, outermost first, for cycle detection.
	stack []stackEntry
}

type stackEntry struct {
	key, name string
}

// fileKey identifies a file independently of how it was named.
func fileKey(name string) string {
	if abs, err := filepath.Abs(name); err == nil {
		return abs
	}
	return filepath.Clean(name)
}

// load reads one file and returns its machines with its imports expanded. from
// is the import entry that named it (nil for the root).
func (l *loader) load(name string, from *importEntry) []*Machine {
	key := fileKey(name)
	for i, e := range l.stack {
		if e.key == key {
			var chain []string
			for _, c := range l.stack[i:] {
				chain = append(chain, c.name)
			}
			chain = append(chain, name)
			l.diags = append(l.diags, diag(CodeImportCycle, from.rng,
				fmt.Sprintf("import cycle: %s", strings.Join(chain, " imports ")),
				"a file may not import itself, directly or through other files",
				"remove this import; move machines both files need into a third file that both import"))
			return nil
		}
	}
	if l.loaded[key] {
		return nil
	}
	src, err := os.ReadFile(name)
	if err != nil {
		l.readError(name, from, err)
		return nil
	}
	l.loaded[key] = true
	l.spec.Files = append(l.spec.Files, name)
	f, d := parseFile(name, src)
	l.diags = append(l.diags, d...)
	l.stack = append(l.stack, stackEntry{key: key, name: name})
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()
	var out []*Machine
	for _, e := range f.entries {
		if e.machine != nil {
			out = append(out, e.machine)
			continue
		}
		target := e.imp.path
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(name), filepath.FromSlash(target))
		}
		out = append(out, l.load(target, e.imp)...)
	}
	return out
}

func (l *loader) readError(name string, from *importEntry, err error) {
	notFound := errors.Is(err, fs.ErrNotExist)
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err
	}
	switch {
	case from == nil && notFound:
		l.diags = append(l.diags, diag(CodeFileNotFound, Range{Filename: name},
			fmt.Sprintf("spec file %s does not exist", name), "",
			"run in the directory that holds fsm.yaml, or name the spec with -f path/to/fsm.yaml"))
	case from == nil:
		l.diags = append(l.diags, diag(CodeReadError, Range{Filename: name},
			fmt.Sprintf("cannot read spec file %s: %v", name, err), "", "check that the path names a readable file"))
	case notFound:
		l.diags = append(l.diags, diag(CodeImportNotFound, from.rng,
			fmt.Sprintf("imported file %s does not exist", name),
			"import paths are relative to the file that holds the import",
			fmt.Sprintf("fix the path %q, relative to %s", from.path, displayDir(from.rng.Filename))))
	default:
		l.diags = append(l.diags, diag(CodeReadError, from.rng,
			fmt.Sprintf("cannot read imported file %s: %v", name, err), "", "check that the import names a readable file"))
	}
}

func displayDir(file string) string {
	d := filepath.Dir(file)
	if d == "." {
		return "this file's directory"
	}
	return d
}

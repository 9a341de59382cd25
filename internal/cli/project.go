package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

// projectDir is the project a spec belongs to: the Go module root at or above
// the spec's directory, else that directory. Builds run there and the local
// store lives in its .lfsm directory.
func projectDir(specFile string) string {
	dir, err := filepath.Abs(filepath.Dir(specFile))
	if err != nil {
		dir = filepath.Dir(specFile)
	}
	if root := build.FindModuleRoot(dir); root != "" {
		return root
	}
	return dir
}

// dbPath is the local store: db when set (--db, LFSM_DB, lfsm.yaml's db),
// else .lfsm/lfsm.db in the spec's project directory.
func dbPath(db, specFile string) string {
	if db != "" {
		return db
	}
	return filepath.Join(projectDir(specFile), filepath.FromSlash(local.DefaultDBPath))
}

// storeFlags adds the flags of commands that work on the local store.
func storeFlags(fl *pflag.FlagSet, file, db *string) {
	fl.StringVarP(file, "file", "f", config.DefaultSpecFile, "spec `FILE` (also locates the project and its store)")
	fl.StringVar(db, "db", "", "local store, a SQLite `FILE` (default .lfsm/lfsm.db in the project)")
}

// openStore opens the local store at path. With mustExist, a missing file is
// an error that says how to create one, rather than an empty new store.
func openStore(ctx context.Context, path string, mustExist bool) (*sqlite.DB, error) {
	if mustExist {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no local store at %s: start an execution first (lfsm start or lfsm run), or name the store with --db", path)
		}
	}
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return nil, fmt.Errorf("open local store: %w", err)
	}
	return db, nil
}

// storeMissing reports whether there is no local store at path yet, and if
// so says on stderr that there are no executions yet and how to make one:
// commands that list what the store holds then show an empty list.
func storeMissing(ios *IOStreams, path string) bool {
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	fmt.Fprintf(ios.ErrOut, "no executions yet: no local store at %s (lfsm start or lfsm run creates it; --db names another)\n", path)
	return true
}

// unlinked stands in for user actions in the lfsm binary, which links none.
// Operator calls (Start, Send, Stop, Resume) never run actions; if a message
// were ever handled with it, the step fails with this explanation.
type unlinked struct{ ref string }

func (u unlinked) Execute(context.Context, *fsm.Context) (string, error) {
	return "", fmt.Errorf("action %s is not linked into the lfsm command: run executions with lfsm run or lfsm dev", u.ref)
}

// operatorEngine returns an engine for operator calls over store: the
// machines of s (nil: none) compiled without user code.
func operatorEngine(s *spec.Spec, store opStore) (*engine.Engine, error) {
	var machines []*engine.Machine
	if s != nil {
		for _, sm := range s.Machines {
			m, err := engine.Compile(sm, func(ref string) (fsm.Action, error) { return unlinked{ref}, nil })
			if err != nil {
				return nil, fmt.Errorf("compile machine %s: %w", sm.Name, err)
			}
			machines = append(machines, m)
		}
	}
	return engine.New(engine.Options{Machines: machines, Store: store, Queue: store})
}

// checkCorrelationID refuses a --correlation-id the engine would refuse, as
// a usage error (empty means a new random id).
func checkCorrelationID(id string) error {
	if id == "" {
		return nil
	}
	if err := engine.ValidateCorrelationID(id); err != nil {
		return usageErrorf("invalid --correlation-id %q: %v", id, err)
	}
	return nil
}

// parseContext reads an initial user context: a JSON object, or @FILE.
func parseContext(arg string) (map[string]any, error) {
	if arg == "" {
		return map[string]any{}, nil
	}
	b := []byte(arg)
	src := "--context"
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, usageErrorf("invalid --context: %w", err)
		}
		src = "--context " + arg
	}
	// Validate without converting numbers (a RawMessage), then decode with
	// numbers as json.Number, which keeps their literals: the engine passes
	// them on as they are, so 12345678901234567891 and 1.0 do not become
	// 12345678901234567000 and 1.
	var raw json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := position(b, se.Offset)
			return nil, usageErrorf("invalid %s: not JSON: %v (line %d, column %d)", src, err, line, col)
		}
		return nil, usageErrorf("invalid %s: not JSON: %w", src, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, usageErrorf("invalid %s: not JSON: %w", src, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, usageErrorf("invalid %s: want a JSON object, got %s", src, jsonKind(v))
	}
	return m, nil
}

// position is the 1-based line and column of the byte a JSON decoder had
// just read when it stopped (its SyntaxError.Offset).
func position(b []byte, offset int64) (line, col int) {
	end := min(max(int(offset)-1, 0), len(b))
	line, col = 1, 1
	for _, c := range b[:end] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

// machineNames lists the machines of s, for error messages.
func machineNames(s *spec.Spec) string {
	names := make([]string, len(s.Machines))
	for i, m := range s.Machines {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// needMachine returns the machine of s named name. Without a name and with
// several machines it is a usage error; an unknown name is an
// *spec.UnknownMachineError (exit status 1, as everywhere).
func needMachine(s *spec.Spec, name string) (*spec.Machine, error) {
	if name == "" {
		if len(s.Machines) == 1 {
			return s.Machines[0], nil
		}
		return nil, usageErrorf("name a machine with -m (machines: %s)", machineNames(s))
	}
	return s.FindMachine(name)
}

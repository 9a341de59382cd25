package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPythonFramework checks that every spec written for the Python framework
// loads and validates with no errors, and pins its warnings (and, with action
// checks, its not-go-symbol errors) in golden files.
func TestPythonFramework(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "python-framework", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, d := loadAndValidate(path, ValidateOptions{})
			if d.HasErrors() {
				var b bytes.Buffer
				_ = WriteText(&b, d, "")
				t.Errorf("errors in a Python framework spec:\n%s", b.String())
			}
			got := render(t, s, d, "")
			_, withChecks := loadAndValidate(path, ValidateOptions{CheckActions: true})
			if !hasCode(withChecks, CodeNotGoSymbol) {
				t.Errorf("action checks report no not-go-symbol for dotted Python references")
			}
			got += "\nwith --check-actions:\n" + render(t, s, withChecks, "")
			golden(t, strings.TrimSuffix(path, ".yaml")+".golden", got)
		})
	}
}

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestJSONRoundTrip checks that a loaded spec survives json.Marshal and
// json.Unmarshal unchanged, which is how a build compiles a spec in.
func TestJSONRoundTrip(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "python-framework", "*.yaml"))
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s, _ := Load(path)
			if len(s.Machines) == 0 {
				t.Fatal("no machines loaded")
			}
			// Optional values must survive too.
			retries, steps := 0, 7
			s.Machines[0].MaxRetries, s.Machines[0].MaxSteps = &retries, &steps
			data, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var back Spec
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, &back); diff != "" {
				t.Errorf("round trip changed the spec (-before +after):\n%s", diff)
			}
			if got := back.Machines[0].EffectiveMaxRetries(); got != 0 {
				t.Errorf("max_retries 0 came back as %d", got)
			}
		})
	}
}

func TestParseGoRef(t *testing.T) {
	tests := []struct {
		ref        string
		pkg, ident string
		ok         bool
	}{
		{"example.com/shop/actions.ChargeCard", "example.com/shop/actions", "ChargeCard", true},
		{"github.com/a/b.v2.Do", "github.com/a/b.v2", "Do", true},
		{"net/http.Handler", "net/http", "Handler", true},
		{"example.com/shop/actions.Ünïcode", "example.com/shop/actions", "Ünïcode", true},
		{"example.com/shop/actions.chargeCard", "", "", false},
		{"examples.ecs.actions.RunTaskAction", "", "", false},
		{"Action1", "", "", false},
		{"example.com/shop/actions", "", "", false},
		{"example.com/shop/actions.", "", "", false},
		{"/abs/path.Action", "", "", false},
		{"example.com//actions.Action", "", "", false},
		{"example.com/../actions.Action", "", "", false},
		{"example.com/shop actions.Action", "", "", false},
		{"example.com/shop/actions.Charge-Card", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			pkg, ident, ok := ParseGoRef(tt.ref)
			if pkg != tt.pkg || ident != tt.ident || ok != tt.ok {
				t.Errorf("ParseGoRef(%q) = %q, %q, %v; want %q, %q, %v", tt.ref, pkg, ident, ok, tt.pkg, tt.ident, tt.ok)
			}
		})
	}
}

func TestWriteTextAndReport(t *testing.T) {
	cwd := filepath.FromSlash("/src/project")
	abs := filepath.Join(cwd, "specs", "orders.yaml")
	at := func(file string, line, col int) Range {
		return Range{Filename: file, Start: Pos{Line: line, Column: col}, End: Pos{Line: line, Column: col + 1}}
	}
	tests := []struct {
		name          string
		d             Diagnostics
		text          string
		errors, warns int
	}{
		{"empty", nil, "no problems\n", 0, 0},
		{"one of each", Diagnostics{
			diag(CodeUnreachableState, at(abs, 31, 5), `state "archived" is unreachable from "new"`, "", "add a transition"),
			diag(CodeUnknownTarget, at(abs, 14, 9), `transition "ship" targets unknown state "shiped"`, "", `did you mean "shipped"?`),
		}, filepath.Join("specs", "orders.yaml") + `:14:9: error: transition "ship" targets unknown state "shiped" [unknown-target]
  hint: did you mean "shipped"?
` + filepath.Join("specs", "orders.yaml") + `:31:5: warning: state "archived" is unreachable from "new" [unreachable-state]
  hint: add a transition

1 error, 1 warning
`, 1, 1},
		{"plurals and file-level", Diagnostics{
			diag(CodeFileNotFound, Range{Filename: "fsm.yaml"}, "spec file fsm.yaml does not exist", "", "name it with -f"),
			diag(CodeNoMachines, at("b.yaml", 1, 1), "the machines list is empty", "detail line", "add one"),
			diag(CodeNoDoAction, at("a.yaml", 2, 1), `non-final state "A" has no do action`, "", "add one"),
			diag(CodeNoDoAction, at("a.yaml", 3, 1), `non-final state "B" has no do action`, "", "add one"),
		}, `a.yaml:2:1: warning: non-final state "A" has no do action [no-do-action]
  hint: add one
a.yaml:3:1: warning: non-final state "B" has no do action [no-do-action]
  hint: add one
b.yaml:1:1: error: the machines list is empty [no-machines]
  detail line
  hint: add one
fsm.yaml: error: spec file fsm.yaml does not exist [file-not-found]
  hint: name it with -f

2 errors, 2 warnings
`, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := append(Diagnostics(nil), tt.d...)
			d.Sort()
			var b bytes.Buffer
			if err := WriteText(&b, d, cwd); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.text, b.String()); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
			e, w := d.Count()
			if e != tt.errors || w != tt.warns {
				t.Errorf("Count() = %d, %d; want %d, %d", e, w, tt.errors, tt.warns)
			}
			if d.HasErrors() != (tt.errors > 0) {
				t.Errorf("HasErrors() = %v", d.HasErrors())
			}
			err := d.Err()
			var de *DiagnosticsError
			switch {
			case tt.errors == 0 && err != nil:
				t.Errorf("Err() = %v, want nil", err)
			case tt.errors > 0 && (!errors.As(err, &de) || len(de.Diagnostics) != tt.errors || strings.Count(err.Error(), "\n") != tt.errors-1):
				t.Errorf("Err() = %v, want a DiagnosticsError listing %d errors", err, tt.errors)
			}

			r := NewReport(tt.d)
			data, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back map[string]any
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if back["format_version"] != "1" || back["valid"] != (tt.errors == 0) ||
				back["error_count"] != float64(tt.errors) || back["warning_count"] != float64(tt.warns) {
				t.Errorf("report header wrong: %s", data)
			}
			if list, ok := back["diagnostics"].([]any); !ok || len(list) != len(tt.d) {
				t.Errorf("diagnostics = %v, want a list of %d (never null)", back["diagnostics"], len(tt.d))
			}
		})
	}
}

// TestSchemaMatchesParser keeps the JSON Schema and the parser's keys in step.
func TestSchemaMatchesParser(t *testing.T) {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		return sorted(out)
	}
	for _, tt := range []struct {
		name string
		got  []string
		want []string
	}{
		{"top", keys(s.Properties), topKeys},
		{"machine", keys(s.Defs["machine"].Properties), machineKeys},
		{"import", keys(s.Defs["import"].Properties), importKeys},
		{"state", keys(s.Defs["state"].Properties), stateKeys},
		{"transition", keys(s.Defs["transition"].Properties), transitionKeys},
	} {
		if diff := cmp.Diff(sorted(tt.want), tt.got); diff != "" {
			t.Errorf("%s keys differ (-parser +schema):\n%s", tt.name, diff)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}

// TestDocsCoverRules checks that docs/validate.md documents every rule code.
func TestDocsCoverRules(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "validate.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Rules() {
		if !bytes.Contains(doc, []byte("`"+r.Code+"`")) {
			t.Errorf("docs/validate.md does not document %s", r.Code)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"name", "initial", "final", "entry_action", "do_action", "exit_action", "transitions"}
	tests := []struct{ word, want string }{
		{"inital", "initial"},
		{"Name", "name"},
		{"transition", "transitions"},
		{"doaction", "do_action"},
		{"x", ""},
		{"colour", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, known); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

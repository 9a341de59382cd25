package spec

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files and txtar want sections")

// loadAndValidate is what `lfsm validate` does: Load, then Validate, sorted.
func loadAndValidate(path string, opts ValidateOptions) (*Spec, Diagnostics) {
	s, d := Load(path)
	d = append(d, Validate(s, opts)...)
	d.Sort()
	return s, d
}

// render is the golden form of a result: the files read, the machines in order,
// then the text report.
func render(t *testing.T, s *Spec, d Diagnostics, cwd string) string {
	t.Helper()
	var b bytes.Buffer
	var names []string
	for _, m := range s.Machines {
		names = append(names, m.Name)
	}
	fmt.Fprintf(&b, "files: %s\nmachines: %s\n\n", strings.Join(s.Files, " "), strings.Join(names, " "))
	if err := WriteText(&b, d, cwd); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRules runs every testdata/rules/*.txtar archive: its files are written to a
// temporary directory, the spec is loaded and validated there, and the report
// is compared with the archive's "want" file. An archive named after a rule
// code (optionally with a "-suffix") must trigger that code. Comment lines:
// "check-actions" turns on action checks; "load NAME" loads NAME instead of
// fsm.yaml.
func TestRules(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "rules", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	covered := make(map[string]bool)
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".txtar")
		code := codeOfCase(name)
		if code != "" {
			covered[code] = true
		}
		t.Run(name, func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var opts ValidateOptions
			root := "fsm.yaml"
			sc := bufio.NewScanner(bytes.NewReader(ar.Comment))
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == "check-actions":
					opts.CheckActions = true
				case strings.HasPrefix(line, "load "):
					root = strings.TrimPrefix(line, "load ")
				}
			}
			dir := t.TempDir()
			wantIdx := -1
			for i, f := range ar.Files {
				if f.Name == "want" {
					wantIdx = i
					continue
				}
				p := filepath.Join(dir, filepath.FromSlash(f.Name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f.Data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Chdir(dir)
			s, d := loadAndValidate(root, opts)
			checkRanges(t, d)
			got := render(t, s, d, dir)

			if code != "" && !hasCode(d, code) {
				t.Errorf("archive named for %s does not trigger it", code)
			}
			if name == "valid" && len(d) != 0 {
				t.Errorf("valid spec has diagnostics")
			}
			if *update {
				if wantIdx < 0 {
					ar.Files = append(ar.Files, txtar.File{Name: "want"})
					wantIdx = len(ar.Files) - 1
				}
				ar.Files[wantIdx].Data = []byte(got)
				// path is relative to the package directory, not the temp dir.
				t.Chdir(pkgDir)
				if err := os.WriteFile(path, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if wantIdx < 0 {
				t.Fatal("archive has no want file; run go test -update")
			}
			if diff := cmp.Diff(string(ar.Files[wantIdx].Data), got); diff != "" {
				t.Errorf("report mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for _, r := range Rules() {
		if !covered[r.Code] {
			t.Errorf("rule %s has no testdata/rules/%s.txtar", r.Code, r.Code)
		}
	}
}

var pkgDir = func() string {
	d, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return d
}()

// codeOfCase returns the rule code a case name is about ("unknown-key-2" ->
// "unknown-key"), or "".
func codeOfCase(name string) string {
	best := ""
	for _, r := range Rules() {
		if (name == r.Code || strings.HasPrefix(name, r.Code+"-")) && len(r.Code) > len(best) {
			best = r.Code
		}
	}
	return best
}

func hasCode(d Diagnostics, code string) bool {
	for _, x := range d {
		if x.Code == code {
			return true
		}
	}
	return false
}

// checkRanges asserts the invariants every diagnostic keeps, whatever the input.
func checkRanges(t *testing.T, d Diagnostics) {
	t.Helper()
	for _, x := range d {
		if x.Summary == "" || x.Summary[len(x.Summary)-1] == '.' || strings.ToLower(x.Summary[:1]) != x.Summary[:1] {
			t.Errorf("summary %q: want lowercase start, no trailing period", x.Summary)
		}
		if x.Hint == "" {
			t.Errorf("%s: no hint", x)
		}
		if severityOf(x.Code) != x.Severity {
			t.Errorf("%s: severity %s, registered %s", x, x.Severity, severityOf(x.Code))
		}
		if x.Range.Filename == "" {
			t.Errorf("%s: no filename", x)
		}
	}
}

package graph

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func ref(s string) *spec.ActionRef { return &spec.ActionRef{Ref: s} }

func tr(target spec.StateName, event spec.EventName, local bool) *spec.Transition {
	return &spec.Transition{Target: target, Event: event, Local: local}
}

// loadSpec loads a spec from testdata/specs, failing the test on any error.
func loadSpec(t testing.TB, name string) *spec.Spec {
	t.Helper()
	s, diags := spec.Load(filepath.Join("testdata", "specs", name))
	if diags.HasErrors() {
		t.Fatalf("load %s: %v", name, diags.Err())
	}
	return s
}

// specFiles lists the specs under testdata/specs.
func specFiles(t testing.TB) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join("testdata", "specs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) == 0 {
		t.Fatal("no specs under testdata/specs")
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = filepath.Base(m)
	}
	return names
}

// golden compares got with testdata/golden/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from golden file (-want +got):\n%s", path, diff)
	}
}

// TestGolden renders every machine of every spec under testdata/specs in each text
// format, and each spec as a whole where a format draws all machines.
func TestGolden(t *testing.T) {
	for _, file := range specFiles(t) {
		s := loadSpec(t, file)
		dir := strings.TrimSuffix(file, ".yaml")
		render := func(t *testing.T, opts Options) []byte {
			t.Helper()
			var buf bytes.Buffer
			if err := Render(t.Context(), &buf, s, opts); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		}
		for _, m := range s.Machines {
			t.Run(dir+"/"+m.Name, func(t *testing.T) {
				golden(t, dir+"/"+m.Name+".dot", render(t, Options{Machine: m.Name, Format: FormatDOT}))
				golden(t, dir+"/"+m.Name+".lambdas.dot", render(t, Options{Machine: m.Name, Format: FormatDOT, Lambdas: true}))
				golden(t, dir+"/"+m.Name+".mmd", render(t, Options{Machine: m.Name, Format: FormatMermaid, Lambdas: true}))
				golden(t, dir+"/"+m.Name+".listing", render(t, Options{Machine: m.Name, Format: FormatListing}))
				asl, err := ASL(m, "arn:aws:lambda:us-east-1:123456789012:function:lfsm")
				if err != nil {
					t.Fatal(err)
				}
				golden(t, dir+"/"+m.Name+".asl.json", asl)
			})
		}
		if len(s.Machines) > 1 {
			t.Run(dir+"/all", func(t *testing.T) {
				golden(t, dir+"/all.dot", render(t, Options{Format: FormatDOT, Lambdas: true}))
				golden(t, dir+"/all.mmd", render(t, Options{Format: FormatMermaid}))
				golden(t, dir+"/all.listing", render(t, Options{Format: FormatListing}))
			})
		}
	}
}

// TestSeedListing checks the listing of the seed's Example machine against the
// "Lambda Calls" listing of the seed document, the contract. The document's text
// has a blank line after each λ heading and trailing spaces, so lines are
// compared with blank lines dropped and trailing spaces trimmed.
func TestSeedListing(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "seed_lambda_calls.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, listing, ok := strings.Cut(string(raw), "FSM->Lambda\n")
	if !ok {
		t.Fatal("seed_lambda_calls.txt has no FSM->Lambda line")
	}
	var buf bytes.Buffer
	if err := Render(t.Context(), &buf, loadSpec(t, "seed_example.yaml"), Options{Format: FormatListing}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lines(listing), lines(buf.String())); diff != "" {
		t.Errorf("listing differs from the seed (-seed +got):\n%s", diff)
	}
	// The listing itself separates λs by exactly one blank line.
	for block := range strings.SplitSeq(strings.TrimSuffix(buf.String(), "\n"), "\n\n") {
		if !strings.HasPrefix(block, "λ") || strings.Contains(block, "\n\n") {
			t.Errorf("block %q does not start with a λ line", block)
		}
	}
}

func lines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimRight(l, " \t\r"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/spec"
)

func TestSplitGoRef(t *testing.T) {
	tests := []struct {
		ref, pkg, ident string
		ok              bool
	}{
		{"example.com/shop/actions.ChargeCard", "example.com/shop/actions", "ChargeCard", true},
		{"example.com/shop/actions.helper", "example.com/shop/actions", "helper", true},
		{"gopkg.in/yaml.v3.Node", "gopkg.in/yaml.v3", "Node", true},
		{"path.to.Action1", "", "", false},
		{"example.com/shop/actions", "", "", false},
		{"example.com/shop/actions.", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			pkg, ident, ok := splitGoRef(tt.ref)
			if pkg != tt.pkg || ident != tt.ident || ok != tt.ok {
				t.Errorf("splitGoRef(%q) = %q, %q, %v; want %q, %q, %v", tt.ref, pkg, ident, ok, tt.pkg, tt.ident, tt.ok)
			}
		})
	}
}

func TestCheckActionsKinds(t *testing.T) {
	p := sharedShop(t)
	s, diags := spec.Load(filepath.Join(p.dir, "fsm.yaml"))
	if hasErrors(diags) {
		t.Fatalf("load spec: %v", diags)
	}
	refs, diags := checkActions(t.Context(), p.dir, p.env, s)
	if len(diags) > 0 {
		t.Fatalf("unexpected diagnostics: %s", renderDiags(p.dir, diags))
	}
	a := "example.com/shop/actions."
	want := map[string]RefKind{
		a + "Action1": RefValue, a + "Action2": RefFunc, a + "Action3": RefVar,
		a + "Action4": RefPointer, a + "Action5": RefFunc, a + "Action6": RefVarPointer,
		a + "Action7": RefFunc, a + "Action8": RefFunc, a + "Action9": RefValue,
	}
	if d := cmp.Diff(want, refs); d != "" {
		t.Errorf("refs (-want +got):\n%s", d)
	}
}

func TestCheckActionsDiagnostics(t *testing.T) {
	p := sharedShop(t)
	s, diags := spec.Load(filepath.Join(p.dir, "fsm-bad.yaml"))
	if hasErrors(diags) {
		t.Fatalf("load spec: %s", renderDiags(p.dir, diags))
	}
	refs, diags := checkActions(t.Context(), p.dir, p.env, s)
	if len(refs) != 0 {
		t.Errorf("refs = %v, want none", refs)
	}
	got := renderDiags(p.dir, diags)
	golden := filepath.Join("testdata", "check.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("diagnostics (-want +got):\n%s", d)
	}
}

// renderDiags prints diagnostics as lfsm validate does, with paths relative to
// dir. Details are shown for wrong types only: the others quote the go
// command, whose words are not ours to pin.
func renderDiags(dir string, diags spec.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "%s:%d:%d: %s: %s [%s]\n", filepath.ToSlash(rel(dir, d.Range.Filename)),
			d.Range.Start.Line, d.Range.Start.Column, d.Severity, d.Summary, d.Code)
		if d.Code == CodeWrongActionType && d.Detail != "" {
			fmt.Fprintf(&b, "  detail: %s\n", d.Detail)
		}
		if d.Hint != "" {
			fmt.Fprintf(&b, "  hint: %s\n", d.Hint)
		}
	}
	return b.String()
}

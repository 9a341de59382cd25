package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/spec"
)

func TestGenerateGolden(t *testing.T) {
	dir := t.TempDir()
	if err := extractTxtar("testdata/shop.txtar", dir); err != nil {
		t.Fatal(err)
	}
	s, diags := spec.Load(filepath.Join(dir, "fsm.yaml"))
	if hasErrors(diags) {
		t.Fatalf("load: %v", diags)
	}
	a := "example.com/shop/actions."
	refs := map[string]RefKind{
		a + "Action1": RefValue, a + "Action2": RefFunc, a + "Action3": RefVar,
		a + "Action4": RefPointer, a + "Action5": RefFunc, a + "Action6": RefVarPointer,
		a + "Action7": RefFunc, a + "Action8": RefFunc, a + "Action9": RefValue,
	}
	got, err := Generate(relativize(s, dir), ModuleInfo{Path: "example.com/shop", Refs: refs})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), filepath.ToSlash(dir)) {
		t.Errorf("generated code holds the machine-specific path %s", dir)
	}
	golden := filepath.Join("testdata", "main.go.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("generated main (-want +got):\n%s", d)
	}
}

func TestGenerateAliases(t *testing.T) {
	ref := func(r string) *spec.ActionRef { return &spec.ActionRef{Ref: r} }
	s := &spec.Spec{Machines: []*spec.Machine{{Name: "M", States: []*spec.State{{
		Name: "A", Initial: true, Final: true,
		EntryAction: ref("example.com/b/actions.X"),
		DoAction:    ref("example.com/a/actions.Y"),
		ExitAction:  ref("example.com/host.Z"),
	}}}}}
	refs := map[string]RefKind{
		"example.com/b/actions.X": RefFunc, "example.com/a/actions.Y": RefPointer, "example.com/host.Z": RefVar,
	}
	got, err := Generate(s, ModuleInfo{Refs: refs})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`actions "example.com/a/actions"`,
		`actions2 "example.com/b/actions"`,
		`host2 "example.com/host"`,
		`"example.com/a/actions.Y": &actions.Y{},`,
		`"example.com/b/actions.X": fsm.ActionFunc(actions2.X),`,
		`"example.com/host.Z":      host2.Z,`,
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("generated code lacks %s:\n%s", want, got)
		}
	}
	if _, err := Generate(s, ModuleInfo{Refs: map[string]RefKind{}}); err == nil {
		t.Error("Generate with unchecked refs: no error")
	}
}

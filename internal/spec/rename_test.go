package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const renameOld = `machines:
- name: Order
  states:
  - name: New
    initial: true
    do_action: x.Do
    transitions:
    - {target: Packing, event: go}
  - name: Packing
    do_action: x.Do
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
- name: Invoice
  states:
  - {name: Open, initial: true, final: true}
`

const renameNew = `machines:
- name: Order
  states:
  - name: New
    initial: true
    do_action: x.Do
    transitions:
    - {target: Boxing, event: proceed}
  - name: Boxing
    do_action: x.Do
    transitions:
    - {target: Shipped, event: packed}
  - name: Shipped
    final: true
- name: Refund
  states:
  - {name: Open, initial: true, final: true}
`

func writeRenameFiles(t *testing.T, renames string) (dir string, next *Spec) {
	t.Helper()
	dir = t.TempDir()
	for name, src := range map[string]string{"fsm.v1.yaml": renameOld, "fsm.yaml": renameNew, "renames.yaml": renames} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	next, d := Load(filepath.Join(dir, "fsm.yaml"))
	if d.HasErrors() {
		t.Fatal(d.Err())
	}
	return dir, next
}

func TestLoadRenames(t *testing.T) {
	dir, next := writeRenameFiles(t, `from: fsm.v1.yaml
machines:
  Order:
    states:
      Packing: Boxing
    events:
      go: proceed
`)
	r, d := LoadRenames(filepath.Join(dir, "renames.yaml"), next)
	if len(d) != 0 {
		t.Fatalf("diagnostics: %v", d)
	}
	m := r.Machine("Order")
	if m == nil || m.States["Packing"] != "Boxing" || m.Events["go"] != "proceed" || len(m.States) != 1 || len(m.Events) != 1 {
		t.Fatalf("Order's rename: %+v", m)
	}
	if r.From == nil || r.From.Machine("Invoice") == nil {
		t.Fatal("the from spec was not loaded")
	}
	if m.Range.Start.Line != 3 || m.Range.Start.Column != 3 {
		t.Errorf("Order's range starts at %+v, want 3:3", m.Range.Start)
	}
}

// Every mistake at once, at file:line:col.
func TestLoadRenamesDiagnostics(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"names", `from: fsm.v1.yaml
machines:
  Order:
    states:
      Packing: Boxed
      Pakcing: Boxing
      pseudo_init: New
    events:
      gone: proceed
      go: procede
  Invoice:
    states: {Open: Open}
  Shipment: {}
`, []string{
			`renames.yaml:5:16: error: state "Boxed" is not in machine "Order" of the new spec DIR/fsm.yaml [rename-unknown-target]`,
			`renames.yaml:6:7: error: state "Pakcing" is not in machine "Order" of the from spec DIR/fsm.v1.yaml [rename-unknown-source]`,
			`renames.yaml:7:7: error: pseudo_init is the same in every spec and is not renamed [rename-reserved-name]`,
			`renames.yaml:9:7: error: event "gone" is not in machine "Order" of the from spec DIR/fsm.v1.yaml [rename-unknown-source]`,
			`renames.yaml:10:11: error: event "procede" is not in machine "Order" of the new spec DIR/fsm.yaml [rename-unknown-target]`,
			`renames.yaml:11:3: error: machine "Invoice" is not in the new spec DIR/fsm.yaml [rename-removed-machine]`,
			`renames.yaml:13:3: error: machine "Shipment" is not in the new spec DIR/fsm.yaml [rename-removed-machine]`,
			`renames.yaml:13:3: error: machine "Shipment" is not in the from spec DIR/fsm.v1.yaml [rename-unknown-machine]`,
		}},
		{"shape", `from: nope.yaml
machine:
  Order: []
`, []string{
			`renames.yaml:1:1: error: the rename map has no machines [missing-field]`,
			`renames.yaml:1:7: error: from spec nope.yaml does not load: DIR/nope.yaml: spec file DIR/nope.yaml does not exist [rename-from-spec]`,
			`renames.yaml:2:1: error: unknown key "machine" in the rename map [unknown-key]`,
		}},
		{"types", `from: fsm.v1.yaml
machines:
  Order:
    states: [Packing, Boxing]
    events:
      go: [proceed]
    colour: red
`, []string{
			`renames.yaml:4:13: error: states of machine "Order" must map old names to new ones, not a list [wrong-type]`,
			`renames.yaml:6:11: error: a event rename of machine "Order" must be old: new names, not a list [wrong-type]`,
			`renames.yaml:7:5: error: unknown key "colour" in machine "Order" of the rename map [unknown-key]`,
		}},
		{"syntax", "from: [\n", []string{
			`renames.yaml:1:1: error: invalid YAML: did not find expected node content [yaml-syntax]`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, next := writeRenameFiles(t, tt.src)
			r, d := LoadRenames(filepath.Join(dir, "renames.yaml"), next)
			if r != nil {
				t.Error("a map with errors was returned")
			}
			var got []string
			for _, x := range d {
				s := strings.ReplaceAll(x.String(), filepath.Join(dir, "renames.yaml"), "renames.yaml")
				got = append(got, strings.ReplaceAll(s, dir, "DIR"))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRenameRulesAreDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range RenameRules() {
		if !strings.Contains(string(doc), "`"+r.Code+"`") {
			t.Errorf("docs/deploy.md does not document %s", r.Code)
		}
	}
}

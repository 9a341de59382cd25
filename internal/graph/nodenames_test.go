package graph

import (
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/spec"
)

// TestNodeNames: each state's node name is the <title> Graphviz gives its
// node, also for names DOT cannot quote as they are and names that collide.
func TestNodeNames(t *testing.T) {
	src := `machines:
- name: M
  states:
  - name: 'say "hi"'
    initial: true
    transitions:
    - {target: 'say _hi_', event: go}
  - name: 'say _hi_'
    transitions:
    - {target: pseudo_init, event: go}
  - name: pseudo_init
    final: true
`
	s, diags := spec.Parse("m.yaml", []byte(src))
	if s == nil || diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	got := NodeNames(s.Machines[0])
	want := map[spec.StateName]string{`say "hi"`: "say _hi_", "say _hi_": "say _hi__", "pseudo_init": "pseudo_init"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q: node %q, want %q", k, got[k], v)
		}
	}
	if start := StartNodeName(s.Machines[0]); start != "pseudo_init_" {
		t.Errorf("start node %q, want pseudo_init_ (a state has the name)", start)
	}
	var b strings.Builder
	if err := WriteDOT(&b, DOT(s.Machines[0], false)); err != nil {
		t.Fatal(err)
	}
	for _, v := range got {
		if !strings.Contains(b.String(), `"`+v+`" [`) {
			t.Errorf("node %q not in the DOT:\n%s", v, b.String())
		}
	}
}

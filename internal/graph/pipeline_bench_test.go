package graph

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/lfsm/lfsm/internal/spec"
)

// largeYAML writes m as fsm.yaml text, so a benchmark can time the whole path a
// user's `lfsm validate` + `lfsm graph` takes: parse, validate, render.
func largeYAML(m *spec.Machine) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "machines:\n- name: %s\n  states:\n", m.Name)
	for _, s := range m.States {
		fmt.Fprintf(&b, "  - name: %s\n", s.Name)
		if s.Initial {
			b.WriteString("    initial: true\n")
		}
		if s.Final {
			b.WriteString("    final: true\n")
		}
		fmt.Fprintf(&b, "    entry_action: %s\n    do_action: %s\n    exit_action: %s\n",
			s.EntryAction.Ref, s.DoAction.Ref, s.ExitAction.Ref)
		b.WriteString("    transitions:\n")
		for _, t := range s.Transitions {
			fmt.Fprintf(&b, "    - target: %s\n      event: %s\n", t.Target, t.Event)
			if t.Local {
				b.WriteString("      local: true\n")
			}
		}
	}
	return b.Bytes()
}

// BenchmarkValidateAndGraphLarge is the end-to-end figure: a spec of
// 10,000 states and 30,000 transitions parsed from YAML, validated with every
// rule, and rendered as DOT with λ numbers, once per op.
func BenchmarkValidateAndGraphLarge(b *testing.B) {
	src := largeYAML(largeMachine(10000))
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		s, diags := spec.Parse("fsm.yaml", src)
		diags = append(diags, spec.Validate(s, spec.ValidateOptions{})...)
		if diags.HasErrors() {
			b.Fatalf("generated spec has errors: %v", diags.Err())
		}
		if err := Render(b.Context(), io.Discard, s, Options{Format: FormatDOT, Lambdas: true}); err != nil {
			b.Fatal(err)
		}
	}
}

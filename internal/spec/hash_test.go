package spec

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestMachineHash(t *testing.T) {
	const base = `machines:
- name: M
  states:
  - name: A
    initial: true
    do_action: example.com/x.Do
    transitions:
    - {target: B, event: ok}
    - {target: C, event: no}
  - name: B
    final: true
  - name: C
    final: true
`
	hash := func(t *testing.T, src string) string {
		t.Helper()
		s, diags := Parse("fsm.yaml", []byte(src))
		if s == nil || diags.HasErrors() {
			t.Fatalf("parse: %v", diags)
		}
		h := s.Machines[0].Hash()
		if len(h) != HashLength {
			t.Fatalf("hash %q has %d characters, want %d", h, len(h), HashLength)
		}
		return h
	}
	want := hash(t, base)
	same := map[string]string{
		"comments and layout":  "# orders\n" + strings.ReplaceAll(base, "    - {target: B, event: ok}", "    # the happy path\n    - target: B\n      event: ok"),
		"defaults written out": strings.Replace(base, "- name: M\n", "- name: M\n  max_retries: 5\n  max_steps: 10000\n  retry_delay: 1\n  max_retry_delay: 60\n", 1),
		"extension key":        strings.Replace(base, "- name: M\n", "- name: M\n  x-owner: team\n", 1),
	}
	for name, src := range same {
		if got := hash(t, src); got != want {
			t.Errorf("%s: hash %s, want %s (unchanged)", name, got, want)
		}
	}
	differs := map[string]string{
		"action":           strings.Replace(base, "x.Do", "x.Do2", 1),
		"transition order": strings.Replace(base, "    - {target: B, event: ok}\n    - {target: C, event: no}", "    - {target: C, event: no}\n    - {target: B, event: ok}", 1),
		"local":            strings.Replace(base, "{target: B, event: ok}", "{target: B, event: ok, local: true}", 1),
		"max_retries":      strings.Replace(base, "- name: M\n", "- name: M\n  max_retries: 0\n", 1),
		"retry_delay":      strings.Replace(base, "- name: M\n", "- name: M\n  retry_delay: 2\n", 1),
		"max_retry_delay":  strings.Replace(base, "- name: M\n", "- name: M\n  max_retry_delay: 3600\n", 1),
		"final flag":       strings.Replace(base, "  - name: C\n    final: true\n", "  - name: C\n    final: true\n    exit_action: example.com/x.Bye\n", 1),
	}
	for name, src := range differs {
		if got := hash(t, src); got == want {
			t.Errorf("%s changed but the hash did not (%s)", name, got)
		}
	}

	// A project binary compiles the spec in as JSON: the hash survives it.
	s, _ := Parse("fsm.yaml", []byte(base))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Machines[0].Hash(); got != want {
		t.Errorf("hash after the JSON round trip %s, want %s", got, want)
	}
}

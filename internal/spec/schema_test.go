package spec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// compiledSchema compiles Schema() with a real JSON Schema validator, the way
// an editor's yaml-language-server would use it.
func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("fsm.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("fsm.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

// yamlInstance decodes YAML into the JSON data model the validator checks.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("to json: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestSchemaAcceptsValidSpecs: every spec lfsm accepts without errors must
// also pass the editor schema, or users get red squiggles on good files.
func TestSchemaAcceptsValidSpecs(t *testing.T) {
	s := compiledSchema(t)
	files, _ := filepath.Glob(filepath.Join("testdata", "python-framework", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*", "fsm.yaml"))
	files = append(files, more...)
	files = append(files, filepath.Join("..", "..", "examples", "reference", "billing", "fsm.yaml"))
	if len(files) < 7 {
		t.Fatalf("found only %d specs: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, diags := Load(f); diags.HasErrors() {
				t.Fatalf("lfsm rejects it: %v", diags.Err())
			}
			if err := s.Validate(yamlInstance(t, src)); err != nil {
				t.Errorf("schema rejects a spec lfsm accepts:\n%v", err)
			}
		})
	}
}

// TestSchemaRejectsInvalidSpecs: the mistakes an editor can catch as you type.
func TestSchemaRejectsInvalidSpecs(t *testing.T) {
	s := compiledSchema(t)
	tests := map[string]string{
		"no machines":               "other: 1\n",
		"empty machines":            "machines: []\n",
		"unknown machine key":       "machines:\n- name: M\n  stats: []\n",
		"unknown state key":         "machines:\n- name: M\n  states:\n  - name: A\n    initial: true\n    final: true\n    do_acton: x/y.Z\n",
		"initial not bool":          "machines:\n- name: M\n  states:\n  - name: A\n    initial: yes please\n    final: true\n",
		"negative max_retries":      "machines:\n- name: M\n  max_retries: -1\n  states:\n  - name: A\n    initial: true\n    final: true\n",
		"transition without target": "machines:\n- name: M\n  states:\n  - name: A\n    initial: true\n    final: true\n    transitions:\n    - event: go\n",
		"unknown transition key":    "machines:\n- name: M\n  states:\n  - name: A\n    initial: true\n    final: true\n    transitions:\n    - target: A\n      event: go\n      locale: true\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(yamlInstance(t, []byte(src))); err == nil {
				t.Errorf("schema accepts:\n%s", src)
			}
		})
	}
}

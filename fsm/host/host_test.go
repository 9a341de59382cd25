package host

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/spec"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	b, err := json.Marshal(&spec.Spec{Machines: []*spec.Machine{{Name: "Example"}, {Name: "Other"}}})
	if err != nil {
		t.Fatal(err)
	}
	return Config{Spec: string(b)}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no command", nil, exitUsage, "", "usage:"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{"machines", []string{"machines"}, exitOK, "Example\nOther\n", ""},
		{"run without machine", []string{"run"}, exitUsage, "", "run needs -m MACHINE"},
		{"run bad output", []string{"run", "-m", "Example", "--output", "yaml"}, exitUsage, "", "--output is text or json"},
		{"run bad context", []string{"run", "-m", "Example", "--context", "[1]"}, exitUsage, "", "--context: not a JSON object"},
		{"run bad correlation id", []string{"run", "-m", "Example", "--correlation-id", "id\xff\xfe"}, exitUsage, "",
			`--correlation-id "id\xff\xfe": invalid correlation id: byte 0xff at offset 2`},
		{"run unknown flag", []string{"run", "--nope"}, exitUsage, "", "flag provided but not defined"},
		{"run unknown machine", []string{"run", "-m", "Exampel"}, exitFailure, "", `no machine "Exampel" in the spec (machines: Example, Other); did you mean "Example"?`},
		{"run bad log format", []string{"run", "-m", "Example", "--log-format", "yaml"}, exitUsage, "", `invalid --log-format "yaml": want one of text, json`},
		{"worker bad log format", []string{"worker", "--log-format", "xml"}, exitUsage, "", `invalid --log-format "xml"`},
		{"worker bad steps", []string{"worker", "--steps", "some"}, exitUsage, "", `invalid --steps "some": want all, sampled or none`},
		{"worker bad workers", []string{"worker", "--workers", "0"}, exitUsage, "", "--workers >= 1"},
		{"run bad chaos", []string{"run", "-m", "Example", "--chaos", "Comit=0.5"}, exitUsage, "", `chaos key "Comit": unknown operation; valid keys are default, Ack`},
		{"worker chaos seed alone", []string{"worker", "--chaos-seed", "1"}, exitUsage, "", "--chaos-seed needs --chaos"},
		{"worker bad retention", []string{"worker", "--retention", "forever"}, exitUsage, "", `--retention: invalid age "forever"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), testConfig(t), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if tt.stdout != "" && stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
		})
	}
}

func TestCompiledSpecMustDecode(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(t.Context(), Config{Spec: "{"}, []string{"machines"}, &bytes.Buffer{}, &stderr); code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
}

// TestParseContextKeepsNumbers: the project binary's --context keeps
// numbers as their literals (json.Number), which the engine writes as they
// are: 12345678901234567891 used to become 12345678901234567000, 1.0 became 1.
func TestParseContextKeepsNumbers(t *testing.T) {
	m, err := parseContext(`{"id": 12345678901234567891, "price": 1.0, "big": 1e999}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": json.Number("12345678901234567891"), "price": json.Number("1.0"), "big": json.Number("1e999")}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	for _, bad := range []string{`{"a":1} x`, `[1]`, `{"a":NaN}`} {
		if _, err := parseContext(bad); err == nil {
			t.Errorf("parseContext(%s) succeeded", bad)
		}
	}
}

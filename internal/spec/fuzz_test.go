package spec

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/tools/txtar"
)

// FuzzParse checks that Parse and Validate never panic and that every
// diagnostic carries a valid range into the input, whatever the input.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "python-framework", "*.yaml"))
	for _, p := range seeds {
		if src, err := os.ReadFile(p); err == nil {
			f.Add(src)
		}
	}
	archives, _ := filepath.Glob(filepath.Join("testdata", "rules", "*.txtar"))
	for _, p := range archives {
		ar, err := txtar.ParseFile(p)
		if err != nil {
			continue
		}
		for _, file := range ar.Files {
			if strings.HasSuffix(file.Name, ".yaml") {
				f.Add(file.Data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, d := Parse("in.yaml", src)
		d = append(d, Validate(s, ValidateOptions{CheckActions: true})...)
		sv := newSource("in.yaml", src)
		for _, x := range d {
			if err := checkRange(sv, x.Range); err != nil {
				t.Errorf("%s: %v", x, err)
			}
			if x.Summary == "" || x.Hint == "" || x.Code == "" {
				t.Errorf("%s: empty summary, hint or code", x)
			}
		}
		var b bytes.Buffer
		if err := WriteText(&b, d, ""); err != nil {
			t.Fatal(err)
		}
	})
}

// checkRange reports why r is not a valid range of the source, or nil.
func checkRange(sv *source, r Range) error {
	if r.Filename != sv.name {
		return fmt.Errorf("filename %q, want %q", r.Filename, sv.name)
	}
	for _, p := range []Pos{r.Start, r.End} {
		if p.Line < 1 || p.Column < 1 || p.Byte < 0 || p.Byte > len(sv.src) || p.Line > len(sv.lines) {
			return fmt.Errorf("position %+v outside the %d-byte, %d-line input", p, len(sv.src), len(sv.lines))
		}
		start := sv.lines[p.Line-1]
		if p.Byte < start || p.Byte > sv.lineEnd(p.Line) {
			return fmt.Errorf("position %+v: byte not on its line", p)
		}
		if col := utf8.RuneCount(sv.src[start:p.Byte]) + 1; col != p.Column {
			return fmt.Errorf("position %+v: byte is at column %d", p, col)
		}
	}
	if r.End.Byte < r.Start.Byte {
		return fmt.Errorf("end %+v before start %+v", r.End, r.Start)
	}
	return nil
}

// largeSpec generates a machine with states states, each with three
// transitions (30,000 for 10,000 states), as YAML.
func largeSpec(states int) []byte {
	var b bytes.Buffer
	b.WriteString("machines:\n- name: Large\n  max_retries: 3\n  states:\n")
	for i := range states {
		fmt.Fprintf(&b, "  - name: S%d\n", i)
		if i == 0 {
			b.WriteString("    initial: true\n")
		}
		if i == states-1 {
			b.WriteString("    final: true\n")
		}
		fmt.Fprintf(&b, "    entry_action: example.com/big/actions.Enter%d\n", i%50)
		fmt.Fprintf(&b, "    do_action: example.com/big/actions.Do%d\n", i%50)
		b.WriteString("    transitions:\n")
		next, back, skip := (i+1)%states, (i+states-1)%states, (i+7)%states
		fmt.Fprintf(&b, "    - target: S%d\n      event: next\n", next)
		fmt.Fprintf(&b, "    - target: S%d\n      event: back\n      local: true\n", back)
		fmt.Fprintf(&b, "    - target: S%d\n      event: skip\n      action: example.com/big/actions.Skip\n", skip)
	}
	return b.Bytes()
}

func TestLargeSpec(t *testing.T) {
	src := largeSpec(200)
	s, d := Parse("large.yaml", src)
	d = append(d, Validate(s, ValidateOptions{CheckActions: true})...)
	// The "back" transitions form one local cycle through every state.
	if len(d) != 1 || d[0].Code != CodeLocalCycle {
		t.Fatalf("want one local-cycle warning, got %v", d)
	}
	if n := len(s.Machines[0].States); n != 200 {
		t.Errorf("states = %d", n)
	}
}

// BenchmarkValidateLarge parses and validates a 10,000-state, 30,000-transition
// spec.
func BenchmarkValidateLarge(b *testing.B) {
	src := largeSpec(10000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		s, d := Parse("large.yaml", src)
		d = append(d, Validate(s, ValidateOptions{CheckActions: true})...)
		if len(d) != 1 {
			b.Fatalf("want one diagnostic, got %d", len(d))
		}
	}
	reportCPU(b, cpu)
}

// processCPU returns the CPU time (user + system) the process has used. On a
// shared machine it says more about the cost of an operation than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds a cpu-ns/op metric: process CPU time (all threads, GC
// included) since start, per iteration.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 && start > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkValidateOnly measures Validate alone on the same spec, to show the
// analyses are a small part of the cost.
func BenchmarkValidateOnly(b *testing.B) {
	s, _ := Parse("large.yaml", largeSpec(10000))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		Validate(s, ValidateOptions{CheckActions: true})
	}
	reportCPU(b, cpu)
}

// BenchmarkYAMLDecodeLarge is the floor under BenchmarkValidateLarge: decoding
// the same bytes into a yaml.Node tree, with no walk and no rules.
func BenchmarkYAMLDecodeLarge(b *testing.B) {
	src := largeSpec(10000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		var n yaml.Node
		if err := yaml.Unmarshal(src, &n); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummarizeRealStream runs go test -json on a module with passing,
// failing and skipped tests, subtests, and a package that does not compile,
// and checks what is printed and counted.
func TestSummarizeRealStream(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"a/a_test.go": `package a

import "testing"

func TestPass(t *testing.T) { t.Log("quiet when passing") }
func TestFail(t *testing.T) { t.Error("loud when failing") }
func TestSkip(t *testing.T) { t.Skip("not here") }
func TestTable(t *testing.T) {
	t.Run("one", func(t *testing.T) {})
	t.Run("two", func(t *testing.T) {})
	t.Run("two-x", func(t *testing.T) { t.Run("deep", func(t *testing.T) {}) })
}
`,
		"b/b_test.go": "package b\n\nimport \"testing\"\n\nfunc TestBroken(t *testing.T) { undefined() }\n",
		"c/c.go":      "package c\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	stream, _ := cmd.Output() // go test fails: that is the point
	var out bytes.Buffer
	c, err := summarize(bytes.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	// TestPass, TestTable/one, /two, /two-x/deep pass; TestFail and package b fail.
	if c.passed != 4 || c.failed != 2 {
		t.Errorf("counts %+v, want 4 passed, 2 failed\n%s", c, out.String())
	}
	text := out.String()
	for _, want := range []string{"loud when failing", "--- FAIL: TestFail", "FAIL\texample.com/m/a", "undefined: undefined", "example.com/m/c"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	for _, unwanted := range []string{"quiet when passing", "TestPass", "--- PASS", "TestTable"} {
		if strings.Contains(text, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, text)
		}
	}
}

func TestReadTotal(t *testing.T) {
	p := filepath.Join(t.TempDir(), "counts")
	if err := os.WriteFile(p, []byte("3 0\n10 2\n0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := readTotal(p)
	if err != nil || c != (counts{13, 2}) {
		t.Errorf("readTotal = %+v, %v; want 13 passed, 2 failed", c, err)
	}
}

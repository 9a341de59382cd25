package build

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// drawing lists the import path prefixes of drawing code, which a project
// binary must not link: the renderer, the DOT library and Graphviz's
// WebAssembly runtime (whose package init compiled Graphviz, about 1 s of CPU
// and 6 MB written to $TMPDIR, at every start of every binary that linked it).
var drawing = []string{
	ModulePath + "/internal/graph",
	"github.com/awalterschulze/gographviz",
	"github.com/goccy/go-graphviz",
	"github.com/tetratelabs/wazero",
	"github.com/fogleman/gg",
	"github.com/golang/freetype",
	"golang.org/x/image",
}

// TestProjectBinaryLinksNoDrawing lists the packages of a generated main.
func TestProjectBinaryLinksNoDrawing(t *testing.T) {
	p, _ := builtShop(t)
	out, err := runGo(t.Context(), p.dir, p.env, "list", "-deps", "-f", "{{.ImportPath}}", "./"+GenDir)
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		for _, d := range drawing {
			if strings.HasPrefix(dep, d) {
				t.Errorf("the project binary links %s (drawing code)", dep)
			}
		}
	}
}

// TestProjectBinaryStartWritesNothing starts a built project binary with empty
// temporary, cache and home directories, which must stay empty.
func TestProjectBinaryStartWritesNothing(t *testing.T) {
	_, res := builtShop(t)
	tmp, cache, home := t.TempDir(), t.TempDir(), t.TempDir()
	cmd := exec.CommandContext(t.Context(), res.Binary, "machines")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "XDG_CACHE_HOME="+cache, "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s machines: %v\n%s", res.Binary, err, &stderr)
	}
	if got := stdout.String(); got != "Example\n" {
		t.Errorf("machines printed %q, want %q", got, "Example\n")
	}
	for _, dir := range []string{tmp, cache, home} {
		assertEmpty(t, dir)
	}
}

// assertEmpty fails the test for every file or directory found under dir.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			t.Errorf("start wrote %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

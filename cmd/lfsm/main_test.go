package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildLFSM builds this command into a temporary directory.
func buildLFSM(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	bin := filepath.Join(t.TempDir(), "lfsm")
	out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// emptyDirs are fresh temporary, cache and home directories for one process,
// as a CI job, a container or a Lambda cold start has them.
type emptyDirs struct{ tmp, cache, home, lfsmCache string }

func newEmptyDirs(t *testing.T) emptyDirs {
	return emptyDirs{tmp: t.TempDir(), cache: t.TempDir(), home: t.TempDir(), lfsmCache: filepath.Join(t.TempDir(), "lfsm")}
}

func (d emptyDirs) env() []string {
	return append(os.Environ(), "TMPDIR="+d.tmp, "XDG_CACHE_HOME="+d.cache, "HOME="+d.home, "LFSM_CACHE_DIR="+d.lfsmCache)
}

// written lists what exists under dir, but dir itself.
func written(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if os.IsNotExist(err) && p == dir {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if p != dir {
			got = append(got, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func runLFSM(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = env
	cmd.Dir = filepath.Join("..", "..")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lfsm %s: %v\n%s", strings.Join(args, " "), err, &stderr)
	}
	return stdout.String()
}

// TestStartWritesNothing starts lfsm with empty temporary and cache
// directories: a command that draws nothing must leave them empty (lfsm used
// to link go-graphviz, whose package init compiled Graphviz's WebAssembly
// into $TMPDIR/go-graphviz at every start).
func TestStartWritesNothing(t *testing.T) {
	bin := buildLFSM(t)
	d := newEmptyDirs(t)
	if out := runLFSM(t, bin, d.env(), "version"); !strings.HasPrefix(out, "lfsm ") {
		t.Errorf("lfsm version printed %q", out)
	}
	runLFSM(t, bin, d.env(), "graph", "-f", "examples/seed/fsm.yaml", "--output", "listing")
	for _, dir := range []string{d.tmp, d.cache, d.home, d.lfsmCache} {
		if got := written(t, dir); len(got) > 0 {
			t.Errorf("lfsm wrote %q", got)
		}
	}
}

// TestRenderCache checks where an SVG render keeps the compiled Graphviz
// module: in lfsm's cache directory, never in $TMPDIR; and that a cache
// directory lfsm cannot use costs only the compile.
func TestRenderCache(t *testing.T) {
	bin := buildLFSM(t)
	svg := []string{"graph", "-f", "examples/seed/fsm.yaml", "-m", "Example", "--output", "svg"}

	d := newEmptyDirs(t)
	if out := runLFSM(t, bin, d.env(), svg...); !strings.Contains(out, "<svg") {
		t.Errorf("graph --output svg printed no svg:\n%s", out)
	}
	if got := written(t, d.tmp); len(got) > 0 {
		t.Errorf("render wrote to TMPDIR: %q", got)
	}
	if got := written(t, filepath.Join(d.lfsmCache, "graphviz")); len(got) == 0 {
		t.Errorf("render kept nothing in %s", filepath.Join(d.lfsmCache, "graphviz"))
	}

	// A cache path that is a file cannot hold a directory.
	bad := newEmptyDirs(t)
	if err := os.WriteFile(bad.lfsmCache, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := runLFSM(t, bin, bad.env(), svg...); !strings.Contains(out, "<svg") {
		t.Errorf("graph --output svg with an unusable cache printed no svg:\n%s", out)
	}
	if got := written(t, bad.tmp); len(got) > 0 {
		t.Errorf("render wrote to TMPDIR: %q", got)
	}
}

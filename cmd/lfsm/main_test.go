package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	stdout, stderr, err := runLFSMResult(t, bin, env, args...)
	if err != nil {
		t.Fatalf("lfsm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
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

// TestLinksNoGraphviz checks that the lfsm binary does not link go-graphviz
// or wazero (whose package inits compile Graphviz's WebAssembly at every
// start): svg and png run lfsm's Graphviz renderer as a separate program.
func TestLinksNoGraphviz(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/lfsm/lfsm/internal/graph") {
		t.Fatalf("go list -deps does not list internal/graph: %q", deps)
	}
	for _, dep := range deps {
		for _, bad := range []string{"github.com/goccy/go-graphviz", "github.com/tetratelabs/wazero", "github.com/lfsm/lfsm/internal/graph/gvrender"} {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("lfsm links %s", dep)
			}
		}
	}
}

// hostGoEnv returns the go command's cache and proxy settings as KEY=VALUE,
// so that a renderer build under empty home and cache directories reuses the
// host's module and build caches instead of downloading.
func hostGoEnv(t *testing.T) []string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "env", "-json", "GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS", "GONOSUMDB", "GOTOOLCHAIN").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatalf("go env: %v", err)
	}
	var kv []string
	for k, v := range env {
		if v != "" {
			kv = append(kv, k+"="+v)
		}
	}
	return kv
}

// runLFSMResult runs lfsm and returns its stdout, its stderr and its error.
func runLFSMResult(t *testing.T, bin string, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = env
	cmd.Dir = filepath.Join("..", "..")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestRenderCache checks that the first svg render builds lfsm's Graphviz
// renderer into lfsm's cache directory (saying so on stderr) and keeps its
// compiled WebAssembly there, never in $TMPDIR; that a later render reuses
// it; and that a cache directory lfsm cannot use fails with an error saying
// how to fix it, writing nothing to $TMPDIR.
func TestRenderCache(t *testing.T) {
	bin := buildLFSM(t)
	svg := []string{"graph", "-f", "examples/seed/fsm.yaml", "-m", "Example", "--output", "svg"}
	const building = "graph: building the Graphviz renderer (first render only)"

	d := newEmptyDirs(t)
	env := append(d.env(), hostGoEnv(t)...)
	out, stderr, err := runLFSMResult(t, bin, env, svg...)
	if err != nil {
		t.Fatalf("lfsm %s: %v\n%s", strings.Join(svg, " "), err, stderr)
	}
	if !strings.Contains(out, "<svg") {
		t.Errorf("graph --output svg printed no svg:\n%s", out)
	}
	if strings.Count(stderr, building) != 1 {
		t.Errorf("first render's stderr = %q, want one line %q", stderr, building)
	}
	if got := written(t, d.tmp); len(got) > 0 {
		t.Errorf("render wrote to TMPDIR: %q", got)
	}
	gv := filepath.Join(d.lfsmCache, "graphviz")
	helpers, _ := filepath.Glob(filepath.Join(gv, "gvrender-*"))
	if len(helpers) != 1 {
		t.Fatalf("renderers in %s: %q, want one", gv, helpers)
	}
	if m, _ := filepath.Glob(filepath.Join(gv, "tmp", "go-graphviz", "*")); len(m) == 0 {
		t.Errorf("render kept no compiled WebAssembly in %s", filepath.Join(gv, "tmp", "go-graphviz"))
	}
	before, err := os.Stat(helpers[0])
	if err != nil {
		t.Fatal(err)
	}

	png := []string{"graph", "-f", "examples/seed/fsm.yaml", "-m", "Example", "--output", "png", "--out", filepath.Join(t.TempDir(), "x.png")}
	if _, stderr, err := runLFSMResult(t, bin, env, png...); err != nil || stderr != "" {
		t.Errorf("second render: err %v, stderr %q; want neither (the renderer is built)", err, stderr)
	}
	after, err := os.Stat(helpers[0])
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("second render rebuilt the renderer (%v)", err)
	}

	// A cache path that is a file cannot hold a directory.
	bad := newEmptyDirs(t)
	if err := os.WriteFile(bad.lfsmCache, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = runLFSMResult(t, bin, append(bad.env(), hostGoEnv(t)...), svg...)
	if err == nil || !strings.Contains(stderr, "LFSM_CACHE_DIR") || !strings.Contains(stderr, "LFSM_GRAPHVIZ=dot") {
		t.Errorf("render with an unusable cache: err %v, stderr %q; want a failure naming LFSM_CACHE_DIR and LFSM_GRAPHVIZ=dot", err, stderr)
	}
	if got := written(t, bad.tmp); len(got) > 0 {
		t.Errorf("render wrote to TMPDIR: %q", got)
	}
}

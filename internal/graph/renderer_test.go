package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/spec"
)

// sharedCache is the lfsm cache directory of this test binary
// ($LFSM_CACHE_DIR, which Options{} renders use): the Graphviz renderer is
// built there once, by TestMain's first render, and every image test reuses
// it.
var sharedCache string

// firstRender is what TestMain's first render saw: the helper path, what it
// logged, and its error.
var firstRender struct {
	bin  string
	logs []string
	err  error
}

// TestMain shares one cache directory, so that the renderer is built once
// per test binary. Before the first render it leaves a broken helper (a file
// that is no executable) where the helper goes: the first render must find it
// unusable and build a good one in its place.
func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lfsm-graph-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sharedCache = dir
	os.Setenv(build.CacheDirEnv, dir)
	os.Unsetenv(GraphvizEnv)
	if _, err := exec.LookPath("go"); err == nil {
		firstRender.err = renderFirst()
	}
	return m.Run()
}

func renderFirst() error {
	b, err := newBuiltin(Options{})
	if err != nil {
		return err
	}
	firstRender.bin = b.bin
	if err := os.MkdirAll(filepath.Dir(b.bin), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(b.bin, []byte("not a program\n"), 0o755); err != nil {
		return err
	}
	rec := &recorder{}
	s := &spec.Spec{Machines: []*spec.Machine{{Name: "M", States: []*spec.State{{Name: "A", Initial: true, Final: true}}}}}
	var out bytes.Buffer
	err = Render(context.Background(), &out, s, Options{Format: FormatSVG, Logger: slog.New(rec)})
	firstRender.logs = rec.messages()
	if err == nil && !bytes.Contains(out.Bytes(), []byte("<svg")) {
		err = fmt.Errorf("first render wrote no svg: %q", out.Bytes())
	}
	return err
}

// recorder is a slog.Handler that keeps the messages logged at info and up.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func needGo(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH: the renderer cannot be built")
	}
}

// TestRendererBuiltOnce checks that the first render replaced the broken
// helper with a built one (saying so once), and that later renders reuse it.
func TestRendererBuiltOnce(t *testing.T) {
	needGo(t)
	if firstRender.err != nil {
		t.Fatalf("first render: %v", firstRender.err)
	}
	if want := []string{BuildingRendererMsg}; !slices.Equal(firstRender.logs, want) {
		t.Errorf("first render logged %q, want %q", firstRender.logs, want)
	}
	before, err := os.Stat(firstRender.bin)
	if err != nil {
		t.Fatal(err)
	}
	if before.Size() < 1<<20 {
		t.Errorf("helper %s is %d bytes: the broken one was not rebuilt", firstRender.bin, before.Size())
	}
	rec := &recorder{}
	var out bytes.Buffer
	if err := Render(t.Context(), &out, loadSpec(t, "seed_example.yaml"), Options{Format: FormatPNG, Logger: slog.New(rec)}); err != nil {
		t.Fatal(err)
	}
	if got := rec.messages(); len(got) > 0 {
		t.Errorf("second render logged %q, want nothing (the helper is built)", got)
	}
	after, err := os.Stat(firstRender.bin)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("second render replaced the helper")
	}
	// Its compiled WebAssembly is kept in lfsm's cache, not in $TMPDIR.
	if m, _ := filepath.Glob(filepath.Join(sharedCache, "graphviz", "tmp", "go-graphviz", "*")); len(m) == 0 {
		t.Errorf("no compilation cache under %s", filepath.Join(sharedCache, "graphviz", "tmp"))
	}
	// Only the helper and its tmp are left: the build's work files are gone.
	ents, err := os.ReadDir(filepath.Join(sharedCache, "graphviz"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{filepath.Base(firstRender.bin), "tmp"}; !slices.Equal(names, want) {
		t.Errorf("graphviz cache holds %q, want %q", names, want)
	}
}

// TestRendererChoice checks LFSM_GRAPHVIZ and what happens without a Go
// toolchain: a system dot is used when there is one, else the error names
// both ways out.
func TestRendererChoice(t *testing.T) {
	s := loadSpec(t, "seed_example.yaml")
	empty := t.TempDir()
	render := func(t *testing.T) error {
		return Render(t.Context(), new(bytes.Buffer), s, Options{Format: FormatSVG, CacheDir: t.TempDir()})
	}
	t.Run("no go, no dot", func(t *testing.T) {
		t.Setenv("PATH", empty)
		err := render(t)
		if !errors.Is(err, ErrNoGraphviz) || !strings.Contains(err.Error(), "install Go") || !strings.Contains(err.Error(), "Graphviz") {
			t.Errorf("Render error = %v, want ErrNoGraphviz naming both fixes", err)
		}
	})
	t.Run("dot asked, none there", func(t *testing.T) {
		t.Setenv("PATH", empty)
		t.Setenv(GraphvizEnv, "dot")
		if err := render(t); err == nil || !strings.Contains(err.Error(), "install Graphviz") {
			t.Errorf("Render error = %v, want one saying to install Graphviz", err)
		}
	})
	t.Run("builtin asked, no go", func(t *testing.T) {
		t.Setenv("PATH", empty)
		t.Setenv(GraphvizEnv, "builtin")
		if err := render(t); err == nil || !strings.Contains(err.Error(), "no go command") {
			t.Errorf("Render error = %v, want one saying there is no go command", err)
		}
	})
	t.Run("unknown choice", func(t *testing.T) {
		t.Setenv(GraphvizEnv, "magic")
		if err := render(t); err == nil || !strings.Contains(err.Error(), `"magic"`) {
			t.Errorf("Render error = %v, want one naming the value", err)
		}
	})
	t.Run("system dot", func(t *testing.T) {
		dot, err := exec.LookPath("dot")
		if err != nil {
			t.Skip("no dot on PATH (Debian: apt-get install graphviz)")
		}
		// Only dot on PATH: no go command, so no renderer can be built.
		bin := t.TempDir()
		if err := os.Symlink(dot, filepath.Join(bin, "dot")); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin)
		var out bytes.Buffer
		if err := Render(t.Context(), &out, s, Options{Format: FormatSVG, Lambdas: true, CacheDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		texts := svgTexts(t, out.Bytes())
		if !slices.Contains(texts, "FirstState") || slices.Contains(texts, "pseudo_init") {
			t.Errorf("system dot's svg has texts %q, want the states and bare pseudo nodes", texts)
		}
	})
}

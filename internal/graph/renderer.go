package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/modfile"

	"github.com/lfsm/lfsm"
	"github.com/lfsm/lfsm/internal/build"
)

// GraphvizEnv names the environment variable that chooses how svg and png are
// laid out: "builtin" (the renderer lfsm builds on first use, Graphviz
// compiled to WebAssembly: the same layout on every machine), "dot" (a system
// Graphviz on PATH, whose layout may differ by version), or unset/"auto"
// (builtin when a Go toolchain is on PATH, else dot when one is there).
const GraphvizEnv = "LFSM_GRAPHVIZ"

// rendererPackage is the helper's package path in the lfsm module.
const rendererPackage = lfsm.ModulePath + "/internal/graph/gvrender"

// rendererModule is the module path of the throwaway module the helper is
// built in (.invalid: it can never be fetched).
const rendererModule = "lfsm.invalid/gvrender"

// BuildingRendererMsg is the progress message logged while the renderer is
// built, the first time lfsm renders svg or png.
const BuildingRendererMsg = "building the Graphviz renderer (first render only)…"

// ErrNoGraphviz is returned by Render for svg and png when neither a Go
// toolchain (to build the renderer) nor a system Graphviz is on PATH.
var ErrNoGraphviz = errors.New("svg and png need Graphviz: install Go (lfsm then builds its own renderer on first use) or Graphviz (its dot command)")

// layouter lays out DOT in a Graphviz format (svg, xdot).
type layouter interface {
	layout(ctx context.Context, dot []byte, format string, bare []string) ([]byte, error)
}

// chooseLayouter picks the renderer as GraphvizEnv says.
func chooseLayouter(opts Options) (layouter, error) {
	mode := strings.ToLower(strings.TrimSpace(os.Getenv(GraphvizEnv)))
	_, goErr := exec.LookPath("go")
	dotPath, dotErr := exec.LookPath("dot")
	switch mode {
	case "", "auto":
		if goErr == nil {
			return newBuiltin(opts)
		}
		if dotErr == nil {
			return systemDot{path: dotPath}, nil
		}
		return nil, ErrNoGraphviz
	case "builtin":
		if goErr != nil {
			return nil, fmt.Errorf("%s=builtin: lfsm builds its Graphviz renderer with Go, and no go command is on PATH: install Go, or Graphviz and set %s=dot", GraphvizEnv, GraphvizEnv)
		}
		return newBuiltin(opts)
	case "dot":
		if dotErr != nil {
			return nil, fmt.Errorf("%s=dot: no dot command on PATH: install Graphviz, or unset %s to use the renderer lfsm builds with Go", GraphvizEnv, GraphvizEnv)
		}
		return systemDot{path: dotPath}, nil
	default:
		return nil, fmt.Errorf("%s=%q: want builtin, dot or auto", GraphvizEnv, mode)
	}
}

// systemDot is the Graphviz installed on the machine. Its parser leaves
// label="" empty, so the bare nodes need no fix-up.
type systemDot struct{ path string }

func (d systemDot) layout(ctx context.Context, dot []byte, format string, _ []string) ([]byte, error) {
	out, err := runLayout(ctx, exec.CommandContext(ctx, d.path, "-T"+format), dot)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.path, err)
	}
	return out, nil
}

// builtin is the gvrender helper (internal/graph/gvrender), built on first
// use into dir from the lfsm source this binary embeds.
type builtin struct {
	dir string // Options.CacheDir: the helper binaries and their tmp
	bin string // the helper for this lfsm's source
	log *slog.Logger
}

func newBuiltin(opts Options) (*builtin, error) {
	dir := opts.CacheDir
	if dir == "" {
		cache, err := build.DefaultCacheDir()
		if err != nil {
			return nil, fmt.Errorf("svg and png keep their renderer in lfsm's cache directory: %w", err)
		}
		dir = filepath.Join(cache, "graphviz")
	}
	version, err := build.Version()
	if err != nil {
		return nil, err
	}
	// The version's revision is a hash of the embedded source: an upgraded
	// lfsm builds its own renderer.
	key := version[strings.LastIndexByte(version, '-')+1:]
	name := fmt.Sprintf("gvrender-%s-%s-%s", key, runtime.GOOS, runtime.GOARCH)
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &builtin{dir: dir, bin: filepath.Join(dir, name), log: log}, nil
}

// errBrokenHelper marks a helper that could not run at all (missing,
// truncated, not executable), as opposed to one that reported an error.
var errBrokenHelper = errors.New("graphviz renderer did not run")

func (b *builtin) layout(ctx context.Context, dot []byte, format string, bare []string) ([]byte, error) {
	if err := b.ensure(ctx, false); err != nil {
		return nil, err
	}
	out, err := b.run(ctx, dot, format, bare)
	if errors.Is(err, errBrokenHelper) && ctx.Err() == nil {
		// A helper left broken (a full disk, a crash, a manual edit): build
		// it again, once.
		b.log.Debug("rebuilding the graphviz renderer", "err", err)
		if err := b.ensure(ctx, true); err != nil {
			return nil, err
		}
		out, err = b.run(ctx, dot, format, bare)
	}
	return out, err
}

func (b *builtin) run(ctx context.Context, dot []byte, format string, bare []string) ([]byte, error) {
	// go-graphviz keeps wazero's compilation cache in $TMPDIR/go-graphviz:
	// give it a directory of lfsm's cache, never the user's TMPDIR.
	tmp := filepath.Join(b.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("graphviz renderer: %w (set %s to a writable directory)", err, build.CacheDirEnv)
	}
	cmd := exec.CommandContext(ctx, b.bin, append([]string{format}, bare...)...)
	cmd.Env = append(withoutEnv(os.Environ(), "TMPDIR"), "TMPDIR="+tmp)
	out, err := runLayout(ctx, cmd, dot)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, fmt.Errorf("%w: %s: %w", errBrokenHelper, b.bin, err)
	}
	if err != nil && !strings.HasPrefix(string(ee.Stderr), "gvrender: ") {
		// It ran, but not as gvrender (killed, crashed, another program).
		return nil, fmt.Errorf("%w: %s: %w", errBrokenHelper, b.bin, err)
	}
	return out, err
}

// runLayout runs cmd with dot on stdin and returns its stdout; a failure
// carries its stderr (also in the *exec.ExitError).
func runLayout(ctx context.Context, cmd *exec.Cmd, dot []byte) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(dot), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ee.Stderr = stderr.Bytes()
			return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}

// ensure builds the helper unless it is there (or always, with force). The
// binary is built in a temporary directory beside it and renamed into place,
// so that concurrent first renders each build a whole one and the last
// rename wins.
func (b *builtin) ensure(ctx context.Context, force bool) (err error) {
	if !force {
		if fi, err := os.Stat(b.bin); err == nil && fi.Mode().IsRegular() {
			return nil
		}
	}
	b.log.Info(BuildingRendererMsg)
	unusable := func(err error) error {
		return fmt.Errorf("build the graphviz renderer in %s: %w (set %s to a writable directory, or install Graphviz and set %s=dot)", b.dir, err, build.CacheDirEnv, GraphvizEnv)
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return unusable(err)
	}
	work, err := os.MkdirTemp(b.dir, ".build-*")
	if err != nil {
		return unusable(err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(work)) }()
	if err := writeRendererModule(work); err != nil {
		return unusable(err)
	}
	// The module proxy of project builds (build.DefaultProxyDir).
	_, proxyURL, err := build.EnsureProxy("")
	if err != nil {
		return unusable(err)
	}
	env, err := build.Env(ctx, work, proxyURL)
	if err != nil {
		return err
	}
	gotmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(gotmp, 0o755); err != nil {
		return unusable(err)
	}
	// The go command's work files stay in lfsm's cache too.
	env = append(withoutEnv(env, "GOTMPDIR"), "GOTMPDIR="+gotmp)
	out := filepath.Join(work, filepath.Base(b.bin))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, rendererPackage)
	cmd.Dir, cmd.Env = work, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("build the graphviz renderer (go build %s): %w\n%s", rendererPackage, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(out, b.bin); err != nil {
		return unusable(err)
	}
	return nil
}

// writeRendererModule writes the module the helper is built in: it requires
// the lfsm version this binary embeds (go-graphviz comes at the version
// lfsm's go.mod requires) and starts from lfsm's go.sum, so that only lfsm,
// served by the embedded proxy, is missing from it.
func writeRendererModule(dir string) error {
	lmod, err := fs.ReadFile(lfsm.Source, "go.mod")
	if err != nil {
		return err
	}
	f, err := modfile.ParseLax("go.mod", lmod, nil)
	if err != nil {
		return fmt.Errorf("embedded go.mod: %w", err)
	}
	version, err := build.Version()
	if err != nil {
		return err
	}
	var gomod strings.Builder
	fmt.Fprintf(&gomod, "module %s\n\n", rendererModule)
	if f.Go != nil {
		fmt.Fprintf(&gomod, "go %s\n\n", f.Go.Version)
	}
	fmt.Fprintf(&gomod, "require %s %s\n", lfsm.ModulePath, version)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod.String()), 0o644); err != nil {
		return err
	}
	sum, err := fs.ReadFile(lfsm.Source, "go.sum")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644)
}

// withoutEnv drops the variable key from env.
func withoutEnv(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != key {
			out = append(out, kv)
		}
	}
	return out
}

package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goSettings are the user's go env values that lfsm extends.
type goSettings struct {
	GOPROXY   string
	GONOSUMDB string
	GOFLAGS   string
	GOVERSION string
}

// userGoEnv asks the go command for the user's settings, as seen from dir.
func userGoEnv(ctx context.Context, dir string) (goSettings, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "-json", "GOPROXY", "GONOSUMDB", "GOFLAGS", "GOVERSION")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return goSettings{}, fmt.Errorf("go env: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var s goSettings
	if err := json.Unmarshal(out, &s); err != nil {
		return goSettings{}, fmt.Errorf("go env: %w", err)
	}
	return s, nil
}

// Env returns the environment for go commands that must resolve lfsm from the
// module proxy at proxyURL: the process environment, with
//
//	GOPROXY=<proxyURL>,<user's GOPROXY>
//	GONOSUMDB=github.com/lfsm/lfsm,<user's GONOSUMDB>
//	GOFLAGS=<user's GOFLAGS without -mod> -mod=mod -trimpath -buildvcs=false
//	GOWORK=off
//
// The lfsm module is in no checksum database, hence GONOSUMDB; every other
// module is verified as usual. Workspaces are turned off because -mod=mod is
// not allowed in workspace mode.
func Env(ctx context.Context, dir, proxyURL string) ([]string, error) {
	u, err := userGoEnv(ctx, dir)
	if err != nil {
		return nil, err
	}
	return mergeEnv(os.Environ(), u, proxyURL), nil
}

// mergeEnv is Env's work. An empty proxyURL means the project's go.mod
// replaces lfsm: then GOPROXY and GONOSUMDB stay the user's and -mod=readonly
// replaces -mod=mod, so that no go command rewrites go.mod or go.sum.
func mergeEnv(base []string, u goSettings, proxyURL string) []string {
	goproxy, nosum, mod := u.GOPROXY, u.GONOSUMDB, "-mod=readonly"
	if proxyURL != "" {
		goproxy, nosum, mod = proxyURL, ModulePath, "-mod=mod"
		if u.GOPROXY != "" {
			goproxy += "," + u.GOPROXY
		}
		if u.GONOSUMDB != "" {
			nosum += "," + u.GONOSUMDB
		}
	}
	var flags []string
	for _, f := range strings.Fields(u.GOFLAGS) {
		if f == "-mod" || strings.HasPrefix(f, "-mod=") || strings.HasPrefix(f, "--mod=") ||
			strings.HasPrefix(f, "-trimpath") || strings.HasPrefix(f, "-buildvcs") {
			continue
		}
		flags = append(flags, f)
	}
	flags = append(flags, mod, "-trimpath", "-buildvcs=false")
	set := map[string]string{
		"GOPROXY":   goproxy,
		"GONOSUMDB": nosum,
		"GOFLAGS":   strings.Join(flags, " "),
		"GOWORK":    "off",
	}
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range []string{"GOFLAGS", "GONOSUMDB", "GOPROXY", "GOWORK"} {
		if set[k] != "" {
			env = append(env, k+"="+set[k])
		}
	}
	return env
}

// runGo runs the go command in dir with env and returns its stdout; a failure
// carries the command's stderr.
func runGo(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	return runGoLog(ctx, nil, dir, env, args...)
}

// runGoLog is runGo, and reports each module the go command downloads
// ("go: downloading M V" on its stderr) to log as a "downloading" record
// with a module attribute, as it happens: the first build of a project
// spends about a minute there.
func runGoLog(ctx context.Context, log *slog.Logger, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if log != nil {
		cmd.Stderr = &downloadWatcher{buf: &stderr, log: log, ctx: ctx}
	}
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// downloadWatcher keeps what the go command writes to stderr and logs the
// modules it downloads, line by line.
type downloadWatcher struct {
	buf     *bytes.Buffer
	log     *slog.Logger
	ctx     context.Context
	pending []byte
}

func (w *downloadWatcher) Write(p []byte) (int, error) {
	w.buf.Write(p)
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.pending[:i])
		w.pending = w.pending[i+1:]
		if m, ok := strings.CutPrefix(line, "go: downloading "); ok {
			w.log.LogAttrs(w.ctx, slog.LevelInfo, "downloading", slog.String("module", strings.TrimSpace(m)))
		}
	}
}

// GoEnvOptions configure GoEnv.
type GoEnvOptions struct {
	// Dir is the project root: the directory holding the user's go.mod.
	Dir string
	// CacheDir is the module proxy directory (default DefaultProxyDir()).
	CacheDir string
	// Logger receives a progress line when go.mod has to be updated (nil:
	// discard).
	Logger *slog.Logger
}

// GoEnv returns the environment in which the go command resolves the
// project's lfsm requirement the way Build does: on any machine, with an
// empty module cache and no access to a proxy that has lfsm (which none has).
// Unless go.mod replaces lfsm, it lays out the module proxy (EnsureProxy)
// and, when go.mod does not require the version this lfsm serves, requires
// it (go get, as Build and lfsm init do); the environment is then Env's.
// With a replace, and in the lfsm module itself, it is the user's, with
// -mod=readonly.
func GoEnv(ctx context.Context, opts GoEnvOptions) ([]string, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("project directory: %w", err)
	}
	um, err := readGoMod(dir)
	if err != nil {
		return nil, err
	}
	user, err := userGoEnv(ctx, dir)
	if err != nil {
		return nil, err
	}
	if um.replace != "" || um.path == ModulePath {
		// lfsm comes from where go.mod says, or this is lfsm itself.
		return mergeEnv(os.Environ(), user, ""), nil
	}
	version, proxyURL, err := EnsureProxy(opts.CacheDir)
	if err != nil {
		return nil, err
	}
	env := mergeEnv(os.Environ(), user, proxyURL)
	if um.lfsmVersion != version {
		if opts.Logger != nil {
			opts.Logger.Info("requiring lfsm in go.mod", "module", ModulePath, "version", version)
		}
		if err := requireVersion(ctx, dir, env, um, version); err != nil {
			return nil, fmt.Errorf("require %s in %s: %w", ModulePath, um.path, err)
		}
		if _, err := runGoLog(ctx, opts.Logger, dir, env, "get", FSMPackage+"@"+version); err != nil {
			return nil, fmt.Errorf("require %s in %s: %w", ModulePath, um.path, err)
		}
	}
	return env, nil
}

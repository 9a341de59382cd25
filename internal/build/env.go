package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
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
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test binary act as the lfsm command inside test scripts,
// running the same code as cmd/lfsm's main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"lfsm": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			err := Execute(ctx, System(), os.Args[1:])
			stop()
			os.Exit(ExitCode(err))
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script. $REPO is the
// repository root, for scripts that use the bundled examples.
func TestScripts(t *testing.T) {
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	goEnv := hostGoEnv(t)
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("REPO", repo)
			// Scripts that build projects share the host's Go caches, so the
			// module cache and compiled dependencies are reused.
			for k, v := range goEnv {
				env.Setenv(k, v)
			}
			env.Setenv("LFSM_CACHE_DIR", filepath.Join(env.WorkDir, ".lfsm-cache"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":   cmdExits,
			"onejson": cmdOneJSON,
		},
	})
}

// hostGoEnv returns the go command's cache and proxy settings, or nothing
// when there is no go command.
func hostGoEnv(t *testing.T) map[string]string {
	out, err := exec.Command("go", "env", "-json", "GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GOFLAGS", "GONOSUMDB", "GOTOOLCHAIN").Output()
	if err != nil {
		t.Logf("no go command: scripts that build projects skip (%v)", err)
		return nil
	}
	var env map[string]string
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatalf("go env: %v", err)
	}
	for k, v := range env {
		if v == "" {
			delete(env, k)
		}
	}
	return env
}

// cmdExits runs a command like exec and checks its exit status:
//
//	exits 2 lfsm validate --bogus
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! exits")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: exits STATUS COMMAND [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad status %q", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// cmdOneJSON checks that the last command's stdout is exactly one JSON
// document (and, negated, that it is not).
func cmdOneJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 0 {
		ts.Fatalf("usage: onejson")
	}
	dec := json.NewDecoder(strings.NewReader(ts.ReadFile("stdout")))
	dec.UseNumber() // any valid number, 1e999 too
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("more than one JSON document")
		}
	}
	switch {
	case err != nil && !neg:
		ts.Fatalf("stdout is not one JSON document: %v", err)
	case err == nil && neg:
		ts.Fatalf("stdout is one JSON document")
	}
}

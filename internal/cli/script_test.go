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
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lfsm/lfsm/internal/backend/awstest"
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
			awsEnv(env)
			// UNIQUE names resources on the shared emulators (tables and
			// queues outlive a script).
			env.Setenv("UNIQUE", strings.TrimPrefix(awstest.Name("u"), "u-"))
			return nil
		},
		Condition: awsCondition,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":     cmdExits,
			"onejson":   cmdOneJSON,
			"docout":    cmdDocOut,
			"awstarget": cmdAWSTarget,
			"queued":    cmdQueued,
			"publish":   cmdPublish,
			"cfnstack":  cmdCFNStack,
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

// cmdDocOut checks that the last command printed what a doc page shows for
// it: every transcript in a fenced block of FILE that starts with the line
// "$ COMMAND" (a trailing # comment aside) must match the command's stdout
// followed by its stderr, line by line. In the doc's lines "..." stands for
// anything; durations and 32-hex correlation ids match any duration or id,
// and runs of spaces any run of spaces.
//
//	docout $REPO/docs/run.md 'lfsm build'
func cmdDocOut(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: docout FILE COMMAND")
	}
	got := strings.Split(strings.TrimRight(ts.ReadFile("stdout")+ts.ReadFile("stderr"), "\n"), "\n")
	transcripts := docTranscripts(ts.ReadFile(args[0]), args[1])
	if len(transcripts) == 0 {
		ts.Fatalf("%s shows no transcript of $ %s", args[0], args[1])
	}
	for _, want := range transcripts {
		if len(want) != len(got) {
			ts.Fatalf("%s shows %d lines for $ %s:\n%s\nthe command printed %d:\n%s", args[0], len(want), args[1],
				strings.Join(want, "\n"), len(got), strings.Join(got, "\n"))
		}
		for i := range want {
			if !docLineRE(want[i]).MatchString(got[i]) {
				ts.Fatalf("%s, $ %s, line %d: shows\n\t%s\nthe command printed\n\t%s", args[0], args[1], i+1, want[i], got[i])
			}
		}
	}
}

// docTranscripts returns the output lines shown after each "$ command" line
// in the fenced blocks of doc, up to the next "$ " line or the block's end.
func docTranscripts(doc, command string) [][]string {
	var out [][]string
	var cur []string
	in, capturing := false, false
	flush := func() {
		if capturing {
			out = append(out, cur)
		}
		cur, capturing = nil, false
	}
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			flush()
			in = !in
			continue
		}
		if !in {
			continue
		}
		if c, ok := strings.CutPrefix(line, "$ "); ok {
			flush()
			if i := strings.Index(c, " #"); i >= 0 {
				c = c[:i]
			}
			capturing = strings.TrimSpace(c) == command
			continue
		}
		if capturing {
			cur = append(cur, line)
		}
	}
	return out
}

// docToken finds what a doc line's pattern generalises: an elision, a
// duration (0.2ms, 2.1s, 1m2s), a correlation id, a run of spaces.
var docToken = regexp.MustCompile(`\.\.\.|\b\d+(\.\d+)?(ns|µs|ms|s|m\d+(\.\d+)?s|h\d+m\d+(\.\d+)?s)\b|\b[0-9a-f]{32}\b| +`)

// docLineRE turns a line of a doc transcript into a pattern (see cmdDocOut).
func docLineRE(line string) *regexp.Regexp {
	line = strings.TrimRight(line, " ")
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range docToken.FindAllStringIndex(line, -1) {
		b.WriteString(regexp.QuoteMeta(line[last:m[0]]))
		switch tok := line[m[0]:m[1]]; {
		case tok == "...":
			b.WriteString(".*")
		case strings.TrimLeft(tok, " ") == "":
			b.WriteString(" +")
		case len(tok) == 32 && strings.Trim(tok, "0123456789abcdef") == "":
			b.WriteString("[0-9a-f]{32}")
		default:
			b.WriteString(`\d+(\.\d+)?(ns|µs|ms|s|m\d+(\.\d+)?s|h\d+m\d+(\.\d+)?s)`)
		}
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(line[last:]))
	b.WriteString(" *$")
	return regexp.MustCompile(b.String())
}

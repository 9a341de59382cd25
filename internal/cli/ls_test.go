package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
)

// lsStore writes a store with n executions of machine A (a0 oldest) and one of
// machine B (b0, the newest), each with one history entry, and returns its path.
func lsStore(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "lfsm.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(id, machine string, at time.Time) {
		if err := db.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: machine, State: "S0", CreatedAt: at}); err != nil {
			t.Fatal(err)
		}
		l, err := db.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: id, Machine: machine, Now: at, Expires: at.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Commit(t.Context(), engine.Commit{CorrelationID: id, Machine: machine, Fence: l.Fence, Outcome: engine.OutcomeDone,
			State: "End", History: engine.HistoryEntry{From: "S0", Event: "go", To: "End", Outcome: engine.OutcomeDone, Started: at}, Now: at})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		add(fmt.Sprintf("a%d", i), "A", t0.Add(time.Duration(i)*time.Second))
	}
	add("b0", "B", t0.Add(time.Hour))
	return path
}

// runCLI runs lfsm with args in dir (holding files) and returns the exit code,
// stdout and stderr.
func runCLI(t *testing.T, files map[string]string, args ...string) (int, string, string) {
	t.Helper()
	f, ios := testFactory(t, files)
	root := NewRootCmd(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(t.Context())
	printError(ios, cmd, err)
	return ExitCode(err), ios.Out.(*bytes.Buffer).String(), ios.ErrOut.(*bytes.Buffer).String()
}

func clearEnv(t *testing.T) {
	for _, k := range []string{"LFSM_OUTPUT", "LFSM_MACHINE", "LFSM_CONFIG", "LFSM_FILE", "LFSM_DB"} {
		t.Setenv(k, "")
	}
}

func lsIDs(t *testing.T, out string) (ids []string, next string) {
	t.Helper()
	var res LsResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("ls --output json printed %q: %v", out, err)
	}
	if res.FormatVersion != "1" || res.Executions == nil {
		t.Errorf("ls --output json = %s, want format_version 1 and an executions array", out)
	}
	for _, e := range res.Executions {
		ids = append(ids, e.CorrelationID)
	}
	return ids, res.Next
}

// TestLsEveryMachine: lfsm.yaml's machine (lfsm init writes one) does not
// filter ls or tail; -m does, and LFSM_MACHINE does with a note.
func TestLsEveryMachine(t *testing.T) {
	clearEnv(t)
	db := lsStore(t, t.TempDir(), 2)
	files := map[string]string{config.FileName: "machine: A\n"}
	code, out, errOut := runCLI(t, files, "ls", "--db", db)
	if code != 0 || !strings.Contains(out, "b0") || !strings.Contains(out, "a1") {
		t.Errorf("ls with lfsm.yaml machine A: exit %d\n%s%s\nwant every machine", code, out, errOut)
	}
	code, out, errOut = runCLI(t, files, "tail", "--db", db)
	if code != 0 || !strings.Contains(out, "b0 B step") || !strings.Contains(out, "a0 A step") {
		t.Errorf("tail with lfsm.yaml machine A: exit %d\n%s%s\nwant every machine", code, out, errOut)
	}
	code, out, _ = runCLI(t, files, "ls", "--db", db, "-m", "B", "--output", "json")
	if ids, _ := lsIDs(t, out); code != 0 || !cmp.Equal(ids, []string{"b0"}) {
		t.Errorf("ls -m B = %v, want [b0]", ids)
	}
	t.Setenv("LFSM_MACHINE", "B")
	for _, cmd := range []string{"ls", "tail"} {
		code, out, errOut = runCLI(t, files, cmd, "--db", db)
		if code != 0 || strings.Contains(out, "a0") || !strings.Contains(errOut, cmd+": only machine B (set by LFSM_MACHINE)") {
			t.Errorf("%s with LFSM_MACHINE=B: exit %d\n%s%s\nwant b0 only and a note", cmd, code, out, errOut)
		}
	}
}

// TestLsPages follows ls's cursors and lists with --all.
func TestLsPages(t *testing.T) {
	clearEnv(t)
	db := lsStore(t, t.TempDir(), 60)
	want := []string{"b0"}
	for i := 59; i >= 0; i-- {
		want = append(want, fmt.Sprintf("a%d", i))
	}

	// The default page is a screenful, with a hint for the next one.
	code, out, errOut := runCLI(t, nil, "ls", "--db", db)
	if lines := strings.Count(out, "\n"); code != 0 || lines != lsPageSize+1 || !strings.Contains(errOut, "more: lfsm ls --cursor ") {
		t.Errorf("ls: exit %d, %d lines, stderr %q: want a header, %d rows and a hint", code, lines, errOut, lsPageSize)
	}

	// A page that ends exactly at the last execution says there is no more.
	if code, _, errOut := runCLI(t, nil, "ls", "--db", db, "--limit", "61"); code != 0 || errOut != "" {
		t.Errorf("ls --limit 61 of 61: exit %d, stderr %q: want no hint", code, errOut)
	}

	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		args := []string{"ls", "--db", db, "--limit", "25", "--output", "json"}
		if cursor != "" {
			args = append(args, "--cursor", cursor)
		}
		code, out, errOut := runCLI(t, nil, args...)
		if code != 0 {
			t.Fatalf("ls %v: exit %d: %s", args, code, errOut)
		}
		ids, next := lsIDs(t, out)
		got = append(got, ids...)
		if next == "" || pages > 5 {
			break
		}
		cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ls pages followed by --cursor (-want +got):\n%s", diff)
	}

	code, out, _ = runCLI(t, nil, "ls", "--db", db, "--all", "--output", "json")
	if ids, next := lsIDs(t, out); code != 0 || !cmp.Equal(want, ids) || next != "" {
		t.Errorf("ls --all --output json = %v, next %q: want all 61", ids, next)
	}
	code, out, _ = runCLI(t, nil, "ls", "--db", db, "--all")
	if lines := strings.Count(out, "\n"); code != 0 || lines != 62 {
		t.Errorf("ls --all: %d lines, want a header and 61 rows", lines)
	}
	code, out, _ = runCLI(t, nil, "ls", "--db", db, "--state", "End", "-m", "B", "--output", "json")
	if ids, _ := lsIDs(t, out); code != 0 || !cmp.Equal(ids, []string{"b0"}) {
		t.Errorf("ls --state End -m B = %v", ids)
	}
	code, out, _ = runCLI(t, nil, "ls", "--db", db, "--state", "S0", "--output", "json")
	if ids, _ := lsIDs(t, out); code != 0 || len(ids) != 0 {
		t.Errorf("ls --state S0 = %v, want none", ids)
	}

	for _, args := range [][]string{
		{"--cursor", "bogus"},
		{"--all", "--limit", "3"},
		{"--limit", "0"},
	} {
		code, _, errOut := runCLI(t, nil, append([]string{"ls", "--db", db}, args...)...)
		if code != ExitUsage {
			t.Errorf("ls %v: exit %d (%s), want a usage error", args, code, errOut)
		}
	}
}

package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPrune(t *testing.T) {
	clearEnv(t)
	db := lsStore(t, t.TempDir(), 60) // finished in January 2026

	for _, args := range [][]string{
		{"prune"},
		{"prune", "--older-than", "soon"},
		{"prune", "--older-than", "-1h"},
		{"prune", "--older-than", "30d"}, // no terminal, no --yes
	} {
		if code, _, errOut := runCLI(t, nil, append(args, "--db", db)...); code != ExitUsage {
			t.Errorf("%v: exit %d (%s), want a usage error", args, code, errOut)
		}
	}
	// Nothing is that old.
	code, out, errOut := runCLI(t, nil, "prune", "--db", db, "--older-than", "36500d", "--yes")
	if code != 0 || !strings.HasPrefix(out, "pruned 0 executions") {
		t.Fatalf("prune --older-than 36500d: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, nil, "prune", "--db", db, "--older-than", "1h", "--yes", "--output", "json")
	if code != 0 {
		t.Fatalf("prune: exit %d: %s", code, errOut)
	}
	var res PruneResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("prune --output json printed %q: %v", out, err)
	}
	if res.FormatVersion != "1" || res.Executions != 61 || res.History != 61 || !res.AutoVacuum || res.FileBytesAfter > res.FileBytesBefore {
		t.Errorf("prune --output json = %+v, want 61 executions and history entries, a store that did not grow", res)
	}
	code, out, _ = runCLI(t, nil, "ls", "--db", db, "--output", "json")
	if ids, _ := lsIDs(t, out); code != 0 || len(ids) != 0 {
		t.Errorf("ls after prune = %v, want nothing", ids)
	}
	code, _, errOut = runCLI(t, nil, "inspect", "a0", "--db", db)
	if code != ExitFailure || !strings.Contains(errOut, "execution was pruned") || !strings.Contains(errOut, "hint: lfsm prune deleted it") {
		t.Errorf("inspect of a pruned execution: exit %d\n%s", code, errOut)
	}
	code, out, errOut = runCLI(t, nil, "prune", "--db", db, "--older-than", "1h", "--yes", "--vacuum")
	if code != 0 || !strings.HasPrefix(out, "pruned 0 executions") {
		t.Errorf("prune --vacuum: exit %d\n%s%s", code, out, errOut)
	}
}

package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// Environment of the lease helper process (see init).
const (
	leaseHelperEnv = "LFSM_SQLITE_TEST_LEASER" // the database path
	leaseStepsEnv  = "LFSM_SQLITE_TEST_STEPS"
)

const (
	leaseIDs   = 3
	leaseSteps = 30
	// leaseTimeout is short, and holders sleep up to twice it before they
	// commit, so leases expire and are taken over across processes.
	leaseTimeout = 15 * time.Millisecond
)

// init turns the test binary into a lease helper before TestMain runs, so the
// helper needs no case in TestMain.
func init() {
	path := os.Getenv(leaseHelperEnv)
	if path == "" {
		return
	}
	if err := leaserMain(path, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func leaserMain(path string, out *os.File) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	return leaseAll(ctx, db, func(line string) { fmt.Fprintln(w, line) })
}

// leaseAll walks every execution's steps in order as a worker would: acquire
// the step (waiting while another holds it), sleep a random while (sometimes
// past the lease), then commit; a step done by someone else is skipped. It
// reports each commit that succeeded, and each refused ("lost ...").
func leaseAll(ctx context.Context, db *sqlite.DB, committed func(line string)) error {
	for i := range leaseIDs {
		id := fmt.Sprintf("c%d", i)
		for step := 0; step < leaseSteps; {
			now := time.Now()
			l, err := db.Acquire(ctx, engine.AcquireRequest{CorrelationID: id, Machine: "M", Step: step,
				Now: now, Expires: now.Add(leaseTimeout)})
			switch {
			case errors.Is(err, engine.ErrDuplicate):
				step++
				continue
			case errors.Is(err, engine.ErrLeaseHeld):
				time.Sleep(time.Millisecond)
				continue
			case err != nil:
				return err
			}
			time.Sleep(time.Duration(rand.Int64N(int64(2 * leaseTimeout))))
			at := time.Now()
			err = db.Commit(ctx, engine.Commit{CorrelationID: id, Machine: "M", Step: step, Fence: l.Fence,
				Outcome: engine.OutcomeNext, Status: engine.StatusRunning, State: "S", Event: "e",
				Checkpoint: []byte("m"), History: engine.HistoryEntry{Step: step, Fence: l.Fence, Outcome: engine.OutcomeNext}, Now: at})
			switch {
			case errors.Is(err, engine.ErrFenceLost):
				// Taken over: try the step again (it is done, or ours again).
				committed(fmt.Sprintf("lost %s %d %d", id, step, l.Fence))
			case err != nil:
				return err
			default:
				committed(fmt.Sprintf("%s %d %d", id, step, l.Fence))
				step++
			}
		}
	}
	return nil
}

// TestLeasesAcrossProcesses: three processes (two helpers and this one) run
// the same steps of the same executions on one file, with leases that expire
// while their holders sleep. Acquire and Commit must be atomic across
// processes: every step is committed exactly once, by one fence, and the
// history holds each step once.
func TestLeasesAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "lfsm.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	for i := range leaseIDs {
		id := fmt.Sprintf("c%d", i)
		if err := db.Create(t.Context(), engine.Execution{CorrelationID: id, Machine: "M", CreatedAt: time.Now()}); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}

	const helpers = 2
	type result struct {
		out []byte
		err error
	}
	results := make(chan result, helpers)
	for range helpers {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), leaseHelperEnv+"="+path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		go func() {
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("helper: %w: %s", err, stderr.Bytes())
			}
			results <- result{out, err}
		}()
	}
	var lines []string
	if err := leaseAll(t.Context(), db, func(l string) { lines = append(lines, l) }); err != nil {
		t.Fatalf("this process: %v", err)
	}
	counts := []int{len(lines)}
	for range helpers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		more := strings.Split(strings.TrimSpace(string(r.out)), "\n")
		if len(more) == 1 && more[0] == "" {
			more = nil
		}
		counts = append(counts, len(more))
		lines = append(lines, more...)
	}
	t.Logf("reports of this process and the helpers: %v", counts)

	commits := map[string]int{}
	lost := 0
	for _, l := range lines {
		f := strings.Fields(l)
		if f[0] == "lost" {
			lost++
			continue
		}
		commits[f[0]+" "+f[1]]++
	}
	t.Logf("commits refused after a takeover: %d", lost)
	for i := range leaseIDs {
		id := fmt.Sprintf("c%d", i)
		for s := range leaseSteps {
			if n := commits[fmt.Sprintf("%s %d", id, s)]; n != 1 {
				t.Errorf("%s step %d committed %d times, want once", id, s, n)
			}
		}
		h, err := db.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != leaseSteps {
			t.Errorf("%s: %d history entries, want %d", id, len(h), leaseSteps)
		}
		for j, e := range h {
			if e.Step != j || j > 0 && e.Fence <= h[j-1].Fence {
				t.Errorf("%s history[%d] = step %d fence %d; want step %d, fences increasing", id, j, e.Step, e.Fence, j)
				break
			}
		}
		x, err := db.Get(t.Context(), id)
		if err != nil || x.DoneStep != leaseSteps-1 {
			t.Errorf("%s: done %d, %v; want %d", id, x.DoneStep, err, leaseSteps-1)
		}
	}
}

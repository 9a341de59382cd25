package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// Environment of the helper process that TestMain turns the test binary into.
const (
	helperEnv = "LFSM_SQLITE_TEST_HELPER" // "receiver"
	dbEnv     = "LFSM_SQLITE_TEST_DB"
	doneEnv   = "LFSM_SQLITE_TEST_DONE" // file that exists once all messages are sent
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "receiver" {
		if err := receiverMain(os.Getenv(dbEnv), os.Getenv(doneEnv), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// receiverMain opens the shared file, receives and acks until the sender is
// done and nothing is left to receive, and writes each payload it acked on a
// line of out.
func receiverMain(path, donePath string, out *os.File) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db, err := sqlite.Open(ctx, path, sqlite.Options{PollInterval: 5 * time.Millisecond})
	if err != nil {
		return err
	}
	defer db.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	return receiveAll(ctx, db, donePath, func(p string) { fmt.Fprintln(w, p) })
}

// receiveAll receives with a visibility timeout far longer than the test, so a
// second delivery of any message is a double delivery, and acks each message.
func receiveAll(ctx context.Context, db *sqlite.DB, donePath string, got func(payload string)) error {
	for {
		_, statErr := os.Stat(donePath)
		senderDone := statErr == nil
		ds, err := db.Receive(ctx, 4, time.Hour, 20*time.Millisecond)
		if err != nil {
			return err
		}
		if len(ds) == 0 && senderDone {
			return nil
		}
		for _, d := range ds {
			if d.Attempts != 1 {
				return fmt.Errorf("%s delivered with Attempts %d: delivered twice", d.Payload, d.Attempts)
			}
			if err := db.Ack(ctx, d.Receipt); err != nil {
				return err
			}
			got(string(d.Payload))
		}
	}
}

// TestProcessesShareTheFile runs two helper processes and a receiver in this
// process against one file while this process keeps sending: every message is
// received and acked exactly once, and none is lost.
func TestProcessesShareTheFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "lfsm.db")
	donePath := filepath.Join(dir, "sent")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()

	const n, helpers = 600, 2
	send := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := db.Send(t.Context(), engine.OutMessage{Key: "k", Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
	}
	send(0, n/2)

	type result struct {
		out []byte
		err error
	}
	results := make(chan result, helpers)
	for range helpers {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=receiver", dbEnv+"="+path, doneEnv+"="+donePath)
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

	var (
		mu   sync.Mutex
		mine []string
		wg   sync.WaitGroup
		rerr error
	)
	wg.Go(func() {
		rerr = receiveAll(t.Context(), db, donePath, func(p string) {
			mu.Lock()
			mine = append(mine, p)
			mu.Unlock()
		})
	})
	send(n/2, n)
	writeFile(t, donePath, "")
	wg.Wait()
	if rerr != nil {
		t.Fatalf("receiver in the test process: %v", rerr)
	}

	seen := map[string]int{}
	for _, p := range mine {
		seen[p]++
	}
	counts := []int{len(mine)}
	for range helpers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		lines := strings.Fields(string(r.out))
		counts = append(counts, len(lines))
		for _, p := range lines {
			seen[p]++
		}
	}
	t.Logf("messages acked by this process and the helpers: %v", counts)
	for i := range n {
		p := fmt.Sprintf("m%d", i)
		if seen[p] != 1 {
			t.Errorf("%s acked %d times, want once", p, seen[p])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct payloads acked, want %d", len(seen), n)
	}
	left, err := db.QueueLen(t.Context())
	if err != nil || left != 0 {
		t.Errorf("QueueLen = %d, %v; want 0", left, err)
	}
}

package sqlite

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lfsm/lfsm/internal/engine"
)

// BenchmarkList measures lfsm ls over a store of 100,000 finished
// executions (300-byte checkpoints): the first page (50, ls's default), a
// rare-status page that reads the whole index, and every execution streamed
// a page of 1,000 at a time (ls --all). Peak RSS is the process's so far:
// run one sub-benchmark per process for its own figure.
func BenchmarkList(b *testing.B) {
	const n = 100000
	d, err := Open(b.Context(), filepath.Join(b.TempDir(), "list.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	_, err = d.db.ExecContext(b.Context(), `INSERT INTO executions (correlation_id, machine, status, state, checkpoint, created_at, updated_at)
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?1)
SELECT printf('%032x', n), iif(n % 2, 'A', 'B'), 'done', 'End', randomblob(300), n * 1000000, n * 1000000 FROM c`, n)
	if err != nil {
		b.Fatal(err)
	}
	rss := func(b *testing.B) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
			b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
		}
	}
	b.Run("first-page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			page, err := d.List(b.Context(), engine.ListFilter{Limit: 50})
			if err != nil || len(page.Executions) != 50 {
				b.Fatal(len(page.Executions), err)
			}
		}
		rss(b)
	})
	b.Run("first-page-machine", func(b *testing.B) {
		for b.Loop() {
			page, err := d.List(b.Context(), engine.ListFilter{Machine: "B", Limit: 50})
			if err != nil || len(page.Executions) != 50 {
				b.Fatal(len(page.Executions), err)
			}
		}
		rss(b)
	})
	b.Run("rare-status", func(b *testing.B) {
		for b.Loop() {
			page, err := d.List(b.Context(), engine.ListFilter{Status: engine.StatusFailed, Limit: 50})
			if err != nil || len(page.Executions) != 0 {
				b.Fatal(len(page.Executions), err)
			}
		}
		rss(b)
	})
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			f := engine.ListFilter{Limit: 1000}
			got := 0
			for {
				page, err := d.List(b.Context(), f)
				if err != nil {
					b.Fatal(err)
				}
				got += len(page.Executions)
				if page.Next == "" {
					break
				}
				f.Cursor = page.Next
			}
			if got != n {
				b.Fatalf("listed %d, want %d", got, n)
			}
		}
		rss(b)
	})
	b.Run("count-machine", func(b *testing.B) {
		for b.Loop() {
			rows, err := d.Count(b.Context(), "A")
			if err != nil || len(rows) != 1 || rows[0].N != n/2 {
				b.Fatal(rows, err)
			}
		}
		rss(b)
	})
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			rows, err := d.Count(b.Context(), "")
			if err != nil || len(rows) != 1 || rows[0].N != n {
				b.Fatal(rows, err)
			}
		}
		rss(b)
	})
}

package ui

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lfsm/lfsm/internal/backend/sqlite"
	"github.com/lfsm/lfsm/internal/engine"
)

// BenchmarkFirstPaint opens the executions page of a SQLite store of 10,000
// executions in headless chromium, a fresh load each time (the assets are
// not cached: no-store), and reports the milliseconds from navigation to
// the table drawn (ms-to-table: the page's performance mark after its first
// page of 50 rows and the status counts arrived) and to the first
// contentful paint (ms-fcp). scripts/bench-ui.sh runs it.
func BenchmarkFirstPaint(b *testing.B) {
	path := chromium(b)
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "lfsm.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := loadOrders(b)
	m, err := engine.Compile(s.Machines[0], engine.SimulateActions(s.Machines[0], engine.SimulateOptions{}))
	if err != nil {
		b.Fatal(err)
	}
	e, err := engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: db, Queue: db})
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	rs := make([]engine.StartRequest, n)
	for i := range rs {
		rs[i] = engine.StartRequest{Machine: "Orders", Context: map[string]any{"order": i}}
	}
	if _, errs := e.StartMany(ctx, rs); slices.ContainsFunc(errs, func(err error) bool { return err != nil }) {
		b.Fatalf("start: %v", errs)
	}
	srv, err := New(Options{Store: db, Operator: e, Spec: s, Target: "local"})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	bctx := browserAt(b, path)

	var table, fcp []float64
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new query each time: a full load, not a hash change.
		if err := chromedp.Do(bctx, chromedp.Navigate(fmt.Sprintf("%s/?load=%d#/executions", hs.URL, i))); err != nil {
			b.Fatal(err)
		}
		v, err := chromedp.Run(bctx, chromedp.Poll[[]float64](`(() => {
			const t = performance.getEntriesByName("lfsm-executions")[0];
			const p = performance.getEntriesByName("first-contentful-paint")[0];
			return t && p && document.querySelectorAll("#executions tr[data-id]").length === 50 && [t.startTime, p.startTime];
		})()`, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(10*time.Millisecond)))
		if err != nil {
			b.Fatal(err)
		}
		table, fcp = append(table, v[0]), append(fcp, v[1])
	}
	b.ReportMetric(median(table), "ms-to-table")
	b.ReportMetric(median(fcp), "ms-fcp")
	b.ReportMetric(slices.Max(table), "ms-to-table-max")
	b.Log(fmt.Sprintf("%d executions; ms to table: %v", n, table))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

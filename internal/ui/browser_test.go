package ui

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lfsm/lfsm/internal/engine"
)

var update = flag.Bool("update", false, "rewrite the screenshots of docs/ui.md")

// chromium finds Debian's chromium: the test skips without it, except under
// CI=true, where it fails (.ci/run installs it).
func chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH: CI installs it (apt-get install --no-install-recommends chromium)")
	}
	t.Skip("no chromium on PATH (apt-get install --no-install-recommends chromium)")
	return ""
}

// browser starts a headless chromium with a fresh profile.
func browser(t testing.TB) context.Context {
	t.Helper()
	return browserAt(t, chromium(t))
}

func browserAt(t testing.TB, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// screenshot keeps the page as a test artifact and, with -update, as the
// picture of docs/ui.md.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if *update {
		dir := filepath.Join("..", "..", "docs", "ui")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func poll[T any](t *testing.T, ctx context.Context, what, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("view").innerText.slice(0, 2000) + "\n" + (window.lfsmErrors || []).join("\n")`))
		badges, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('.count-badge')].map(g => g.dataset.state + ":" + [...g.querySelectorAll('a')].map(a => a.dataset.status + "=" + a.querySelector("text").textContent).join(",")).sort().join(" ")`))
		t.Fatalf("%s: %v\nbadges: %s\npage:\n%s", what, err, badges, page)
	}
	return v
}

// TestBrowser drives the console in a real headless chromium: executions
// started locally (some waiting) show as counts on the diagram, the table
// filters by state, and a waiting execution sent an event from its page
// finishes there without a reload.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t)
	f.clock.t = time.Now().Add(-10 * time.Minute) // retries below move it by about 3 minutes
	f.start(t, "done", map[string]any{"route": "auto"})
	f.start(t, "waiting", map[string]any{"route": "needs_approval", "order": 42})
	f.start(t, "failed", map[string]any{"route": "broken"})
	f.start(t, "stopped", map[string]any{"route": "needs_approval"})
	f.start(t, "large", map[string]any{"route": "needs_approval", "blob": strings.Repeat("x", 3*MaxContextBytes)})
	f.start(t, "waiting2", map[string]any{"route": "needs_approval", "order": 43})
	f.start(t, "waiting3", map[string]any{"route": "needs_approval", "order": 44})
	f.start(t, "done2", map[string]any{"route": "auto"})
	f.drain(t)
	if err := f.engine.Stop(t.Context(), f.ids["stopped"]); err != nil {
		t.Fatal(err)
	}
	f.start(t, "running", map[string]any{"route": "auto"})
	// 4 waiting in Approval and 1 stopped there; the running one, not yet
	// started, is drawn on the start circle until the worker below runs it.

	s := newServer(t, f, func(o *Options) {
		o.CountEvery = 200 * time.Millisecond
		o.Clock = time.Now
		o.GraphCacheDir = graphCache
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	// Machines: the diagram, with the counts drawn on its nodes.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#/machines")); err != nil {
		t.Fatal(err)
	}
	poll[bool](t, ctx, "the not yet started execution on the start circle",
		`!!document.querySelector('.count-badge[data-state="pseudo_init"] a[data-status="running"]')`)
	wctx, stop := context.WithCancel(t.Context())
	worker := make(chan error, 1)
	go func() {
		worker <- engine.RunWorker(wctx, f.backend, f.engine, engine.WorkerOptions{RepairEvery: -1, Wait: 50 * time.Millisecond})
	}()
	t.Cleanup(func() { stop(); <-worker })
	badges := poll[string](t, ctx, "counts on the diagram", `(() => {
		const b = document.querySelector('.count-badge[data-state="Approval"] a[data-status="waiting"]');
		const d = document.querySelector('.count-badge[data-state="Shipped"] a[data-status="done"]');
		return b && d && d.querySelector("text").textContent === "3" && [...document.querySelectorAll('.count-badge')].map(g =>
			g.dataset.state + ":" + [...g.querySelectorAll('a')].map(a => a.dataset.status + "=" + a.querySelector("text").textContent).join(",")).sort().join(" ");
	})()`)
	if want := "Approval:stopped=1,waiting=4 New:failed=1 Shipped:done=3"; badges != want {
		t.Errorf("badges %q, want %q", badges, want)
	}
	// The badges sit on the state's node in the drawing.
	onNode := poll[bool](t, ctx, "badge position", `(() => {
		const node = [...document.querySelectorAll('g.node')].find(g => g.querySelector('title').textContent === "Approval").getBBox();
		const b = document.querySelector('.count-badge[data-state="Approval"]').getBBox();
		return b.y + b.height <= node.y + 2 && b.y + b.height >= node.y - 12 && b.x >= node.x - 1 && b.x + b.width <= node.x + node.width + 1;
	})()`)
	if !onNode {
		t.Error("badge not above its node")
	}
	screenshot(t, ctx, "machines.png")

	// Executions: filtered by state.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#/executions"),
		chromedp.WaitVisible(chromedp.CSS(`#executions tr[data-id]`)),
		chromedp.SetValue(chromedp.CSS("#f-state"), "Approval"),
		chromedp.Click(chromedp.CSS("#f-apply")),
	); err != nil {
		t.Fatal(err)
	}
	rows := poll[string](t, ctx, "filtered table", `location.hash.includes("state=Approval") &&
		document.querySelectorAll('#executions tr[data-id]').length === 5 &&
		[...document.querySelectorAll('#executions td.state')].map(td => td.textContent).join(",")`)
	if rows != strings.Repeat("Approval,", 4)+"Approval" {
		t.Errorf("states in the filtered table: %s", rows)
	}
	screenshot(t, ctx, "executions.png")

	// The waiting execution: send it approve, confirm, watch it finish.
	id := f.ids["waiting"]
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#executions tr[data-id="%s"] td.id a`, id))),
		chromedp.WaitVisible(chromedp.CSS("#x-send")),
	); err != nil {
		t.Fatal(err)
	}
	events := poll[string](t, ctx, "events offered", `[...document.querySelectorAll('#x-event option')].map(o => o.value).join(",")`)
	if events != "approve,reject" {
		t.Errorf("events offered %q", events)
	}
	if status := poll[string](t, ctx, "status", `document.querySelector('#x-status').textContent`); status != "waiting" {
		t.Errorf("status %q", status)
	}
	screenshot(t, ctx, "execution.png")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#x-event"), "approve"),
		chromedp.Click(chromedp.CSS("#x-send")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-yes")),
	); err != nil {
		t.Fatal(err)
	}
	question := poll[string](t, ctx, "confirmation", `document.querySelector('#confirm').open && document.querySelector('#confirm-text').textContent`)
	if !strings.Contains(question, "approve") || !strings.Contains(question, id) {
		t.Errorf("confirmation %q", question)
	}
	if x, _ := f.backend.Get(t.Context(), id); x.Status != engine.StatusWaiting {
		t.Fatalf("sent before the confirmation: %s", x.Status)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#confirm-yes"))); err != nil {
		t.Fatal(err)
	}
	poll[bool](t, ctx, "finished on the page", `document.querySelector('#x-status') && document.querySelector('#x-status').textContent === "done" &&
		document.querySelector('#x-state').textContent === "Shipped"`)
	if ok := poll[bool](t, ctx, "no reload", `window.notReloaded === true`); !ok {
		t.Error("the page reloaded")
	}
	timeline := poll[string](t, ctx, "timeline", `document.querySelector('#x-history').innerText`)
	if !strings.Contains(timeline, "approve") || !strings.Contains(timeline, "Shipped.exit_action") {
		t.Errorf("timeline:\n%s", timeline)
	}
	screenshot(t, ctx, "finished.png")
	if x, _ := f.backend.Get(t.Context(), id); x.Status != engine.StatusDone || x.State != "Shipped" {
		t.Errorf("store: %s in %s", x.Status, x.State)
	}

	// Stop another waiting one, then resume it: back to waiting.
	other := f.ids["waiting2"]
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#/execution/"+other),
		chromedp.WaitVisible(chromedp.CSS("#x-stop")), chromedp.Click(chromedp.CSS("#x-stop")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-yes")), chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS("#x-resume")),
	); err != nil {
		t.Fatal(err)
	}
	if x, _ := f.backend.Get(t.Context(), other); x.Status != engine.StatusStopped {
		t.Errorf("after Stop: %s", x.Status)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#x-resume")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-yes")), chromedp.Click(chromedp.CSS("#confirm-yes")),
		chromedp.WaitVisible(chromedp.CSS("#x-send")),
	); err != nil {
		t.Fatal(err)
	}
	if x, _ := f.backend.Get(t.Context(), other); x.Status != engine.StatusWaiting {
		t.Errorf("after Resume: %s", x.Status)
	}

	// A large context is cut, and "Show all" shows all of it.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/#/execution/"+f.ids["large"]),
		chromedp.WaitVisible(chromedp.CSS("#x-context-all"))); err != nil {
		t.Fatal(err)
	}
	cut := poll[int](t, ctx, "cut context", `document.querySelector('#x-context').textContent.length`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#x-context-all"))); err != nil {
		t.Fatal(err)
	}
	all := poll[int](t, ctx, "whole context", fmt.Sprintf(`document.querySelector('#x-context').textContent.length > %d && document.querySelector('#x-context').textContent.length`, cut))
	if cut > MaxContextBytes+10 || all < 3*MaxContextBytes {
		t.Errorf("context shown: %d bytes cut, %d in all", cut, all)
	}
}

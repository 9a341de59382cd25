package cli

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestProgressLines: off a terminal every step and every download is one
// line, and nothing is redrawn.
func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "build: ", false)
	log := slog.New(p)
	log.Info("requiring lfsm in go.mod (the first build downloads what it needs)", "version", "v0")
	log.Info("downloading", "module", "modernc.org/sqlite v1.0.0")
	log.Info("compiling (about a minute)", "out", ".lfsm/bin/shop")
	log.Debug("built", "binary", ".lfsm/bin/shop")
	p.Stop()
	want := "build: requiring lfsm in go.mod (the first build downloads what it needs) version=v0\n" +
		"build: downloading modernc.org/sqlite v1.0.0\n" +
		"build: compiling (about a minute) out=.lfsm/bin/shop\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

// TestProgressSpinner: on a terminal each step is a line, and a spinner line
// below it shows the step, the module being downloaded and the elapsed time,
// redrawn in place; Stop clears it. The clock is injected, and ticks are
// driven by hand.
func TestProgressSpinner(t *testing.T) {
	var buf syncBuffer
	p := newProgress(&buf, "build: ", true)
	p.Stop() // no ticker: this test ticks
	now := time.Unix(0, 0)
	p = &progress{w: &buf, prefix: "build: ", tty: true, now: func() time.Time { return now },
		stop: make(chan struct{}), done: make(chan struct{})}
	close(p.done)
	log := slog.New(p)
	log.Info("requiring lfsm in go.mod (the first build downloads what it needs)")
	now = now.Add(3 * time.Second)
	log.Info("downloading", "module", "modernc.org/libc v1.2.3")
	now = now.Add(2 * time.Second)
	p.tick()
	log.Info("compiling (about a minute)")
	now = now.Add(61 * time.Second)
	p.tick()
	p.mu.Lock()
	p.stopped = true
	p.clear()
	p.mu.Unlock()
	got := strings.ReplaceAll(buf.String(), "\r\x1b[K", "<CR>")
	want := "build: requiring lfsm in go.mod (the first build downloads what it needs)\n" +
		"<CR>⠋ build: requiring lfsm in go.mod 0s" +
		"<CR>⠋ build: requiring lfsm in go.mod: downloading modernc.org/libc v1.2.3 (1 module so far) 3s" +
		"<CR>⠙ build: requiring lfsm in go.mod: downloading modernc.org/libc v1.2.3 (1 module so far) 5s" +
		"<CR>build: compiling (about a minute)\n" +
		"<CR>⠙ build: compiling 0s" +
		"<CR>⠹ build: compiling 1m1s" +
		"<CR>"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("terminal progress (-want +got):\n%s", diff)
	}
}

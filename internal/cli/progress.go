package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// progress shows what a long command (a build) is doing, on stderr. It is a
// slog.Handler: every info record is a step ("compiling ..."), except
// "downloading" records (one per module the go command fetches).
//
// Off a terminal every step is a line, "build: compiling ...", and so is
// every download, so a CI log says what each minute went to. On a terminal
// the steps are lines too, and below the current one a spinner line with the
// step's elapsed time (and the module being downloaded) is redrawn in place
// until the next step or Stop, so that a minute of compiling does not look
// like a hang.
type progress struct {
	w      io.Writer
	prefix string
	tty    bool
	now    func() time.Time

	mu        sync.Mutex
	step      string    // the current step's message
	started   time.Time // when it started
	download  string    // the module last downloaded in it
	downloads int       // how many
	frame     int
	drawn     bool // a spinner line is on screen
	stopped   bool

	stop chan struct{}
	done chan struct{}
}

// spinnerFrames are drawn in turn, one per tick.
var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// spinnerTick is how often the spinner line is redrawn.
const spinnerTick = 100 * time.Millisecond

// newProgress returns a progress writing to w with prefix ("build: "). On a
// terminal it redraws the spinner until Stop.
func newProgress(w io.Writer, prefix string, tty bool) *progress {
	p := &progress{w: w, prefix: prefix, tty: tty, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if !tty {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(spinnerTick)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.tick()
			}
		}
	}()
	return p
}

// Stop ends the spinner and clears its line. It is safe to call twice.
func (p *progress) Stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	p.clear()
	p.mu.Unlock()
	if p.tty {
		close(p.stop)
	}
	<-p.done
}

// tick redraws the spinner line.
func (p *progress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.step == "" {
		return
	}
	p.frame = (p.frame + 1) % len(spinnerFrames)
	p.draw()
}

// draw writes the spinner line over the previous one (mu held).
func (p *progress) draw() {
	what := p.step
	if i := strings.Index(what, " ("); i > 0 {
		what = what[:i] // the step's line already says the rest
	}
	if p.download != "" {
		what = fmt.Sprintf("%s: downloading %s (%s so far)", what, p.download, plural(p.downloads, "module"))
	}
	elapsed := p.now().Sub(p.started).Truncate(time.Second)
	fmt.Fprintf(p.w, "\r\x1b[K%s %s%s %s", spinnerFrames[p.frame], p.prefix, what, elapsed)
	p.drawn = true
}

// clear erases the spinner line (mu held).
func (p *progress) clear() {
	if p.drawn {
		io.WriteString(p.w, "\r\x1b[K")
		p.drawn = false
	}
}

func (p *progress) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (p *progress) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(cmp.Or(p.prefix, "build: "))
	b.WriteString(r.Message)
	module := ""
	write := func(a slog.Attr) bool {
		if a.Key == "module" {
			module = a.Value.String()
		}
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	r.Attrs(write)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	if r.Message == "downloading" {
		if !p.tty {
			_, err := fmt.Fprintf(p.w, "%sdownloading %s\n", cmp.Or(p.prefix, "build: "), module)
			return err
		}
		p.download = module
		p.downloads++
		p.draw()
		return nil
	}
	p.clear()
	b.WriteByte('\n')
	if _, err := io.WriteString(p.w, b.String()); err != nil {
		return err
	}
	p.step, p.started, p.download, p.downloads = r.Message, p.now(), "", 0
	if p.tty {
		p.draw()
	}
	return nil
}

func (p *progress) WithAttrs(as []slog.Attr) slog.Handler {
	// Progress is written by one build at a time: a copy shares the screen
	// state through the original.
	return &attrProgress{p: p, attrs: as}
}

func (p *progress) WithGroup(string) slog.Handler { return p }

// attrProgress is a progress with attributes added to every record.
type attrProgress struct {
	p     *progress
	attrs []slog.Attr
}

func (a *attrProgress) Enabled(ctx context.Context, l slog.Level) bool { return a.p.Enabled(ctx, l) }

func (a *attrProgress) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(a.attrs...)
	return a.p.Handle(ctx, r)
}

func (a *attrProgress) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrProgress{p: a.p, attrs: append(a.attrs[:len(a.attrs):len(a.attrs)], as...)}
}

func (a *attrProgress) WithGroup(string) slog.Handler { return a }

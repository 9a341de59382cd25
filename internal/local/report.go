package local

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// StepMode says which of a worker's steps a StepReporter prints.
type StepMode string

// Step modes.
const (
	// StepsAll prints a λ line for every step: off a terminal, or with -v.
	StepsAll StepMode = "all"
	// StepsSampled prints at most MaxLinesPerSecond λ lines a second (every
	// failed step still), and keeps a live summary line below them: on a
	// terminal, which must not become the bottleneck at thousands of λ/s.
	StepsSampled StepMode = "sampled"
	// StepsNone prints nothing but the final summary.
	StepsNone StepMode = "none"
)

// StepModes lists the valid modes.
func StepModes() []StepMode { return []StepMode{StepsAll, StepsSampled, StepsNone} }

// DefaultMaxLinesPerSecond bounds the λ lines of StepsSampled.
const DefaultMaxLinesPerSecond = 20

// statusEvery is how often StepsSampled redraws its summary line at most.
const statusEvery = 100 * time.Millisecond

// StepReporterOptions configure NewStepReporter.
type StepReporterOptions struct {
	// Out receives the λ lines (and, with StepsSampled, the live summary
	// line, redrawn in place: Out must be a terminal then).
	Out  io.Writer
	Mode StepMode
	// MaxLinesPerSecond is StepsSampled's bound (default
	// DefaultMaxLinesPerSecond).
	MaxLinesPerSecond int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// StepReporter prints what a worker does, a λ line per step as lfsm tail
// prints history ("ID Machine step N  λ2   A -(done)-> B   actions   0.2ms"),
// and counts steps and how executions ended. Its Handled method is an
// engine.WorkerOptions.OnHandled: safe for concurrent use.
type StepReporter struct {
	opts   StepReporterOptions
	traces map[string]*Trace

	mu         sync.Mutex
	start      time.Time
	steps      int
	done       int
	failed     int
	retries    int
	errors     int // deliveries left for redelivery
	hidden     int // lines StepsSampled did not print
	windowAt   time.Time
	windowN    int
	statusAt   time.Time
	statusLine bool // a summary line is on screen
}

// NewStepReporter returns a StepReporter for the machines of s.
func NewStepReporter(s *spec.Spec, opts StepReporterOptions) *StepReporter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxLinesPerSecond <= 0 {
		opts.MaxLinesPerSecond = DefaultMaxLinesPerSecond
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	r := &StepReporter{opts: opts, traces: map[string]*Trace{}, start: opts.Now()}
	for _, m := range s.Machines {
		r.traces[m.Name] = NewTrace(m)
	}
	return r
}

// Handled records one handled delivery (engine.WorkerOptions.OnHandled).
func (r *StepReporter) Handled(d engine.Delivery, res engine.Result, err error, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errors++
		r.status()
		return
	}
	if res.Dropped != "" {
		return
	}
	r.steps++
	switch res.Outcome {
	case engine.OutcomeDone:
		r.done++
	case engine.OutcomeFailed:
		r.failed++
	case engine.OutcomeRetry:
		r.retries++
	}
	if r.show(res) {
		r.clearStatus()
		fmt.Fprintln(r.opts.Out, r.line(d, res, took))
	} else if r.opts.Mode == StepsSampled {
		r.hidden++
	}
	r.status()
}

// show decides whether the step gets a line (mu held).
func (r *StepReporter) show(res engine.Result) bool {
	switch r.opts.Mode {
	case StepsAll:
		return true
	case StepsNone:
		return false
	}
	if res.Outcome == engine.OutcomeFailed {
		return true
	}
	now := r.opts.Now()
	if now.Sub(r.windowAt) >= time.Second {
		r.windowAt, r.windowN = now, 0
	}
	if r.windowN >= r.opts.MaxLinesPerSecond {
		return false
	}
	r.windowN++
	return true
}

// line renders a step as lfsm tail does. The message is decoded again only
// for the lines that are printed.
func (r *StepReporter) line(d engine.Delivery, res engine.Result, took time.Duration) string {
	l := Lambda{Step: res.Step, Actions: res.Actions, Outcome: res.Outcome, Retries: res.Retries, Duration: took, To: res.State}
	if res.Err != nil {
		l.Error = res.Err.Error()
	}
	trace := r.traces[res.Machine]
	if trace == nil {
		trace = &Trace{}
	}
	if msg, err := engine.DecodeMessage(d.Payload); err == nil {
		l.From, l.Event = msg.System.CurrentState, msg.System.CurrentEvent
		if n, to, ok := trace.Find(l.From, l.Event); ok {
			l.Number, l.To = n, to
		}
	}
	return fmt.Sprintf("%s %s step %d  %s", res.CorrelationID, res.Machine, res.Step, trace.Line(l))
}

// status redraws the live summary line of StepsSampled, at most every
// statusEvery (mu held).
func (r *StepReporter) status() {
	if r.opts.Mode != StepsSampled {
		return
	}
	now := r.opts.Now()
	if r.statusLine && now.Sub(r.statusAt) < statusEvery {
		return
	}
	r.statusAt = now
	fmt.Fprintf(r.opts.Out, "\r\x1b[K%s", r.summary(now))
	r.statusLine = true
}

// clearStatus erases the summary line before a λ line (mu held).
func (r *StepReporter) clearStatus() {
	if r.statusLine {
		io.WriteString(r.opts.Out, "\r\x1b[K")
		r.statusLine = false
	}
}

// summary is the live summary: steps, their rate, how executions ended.
func (r *StepReporter) summary(now time.Time) string {
	s := fmt.Sprintf("%d λ", r.steps)
	if el := now.Sub(r.start); el >= time.Second {
		s += fmt.Sprintf(" (%.0f/s)", float64(r.steps)/el.Seconds())
	}
	s += fmt.Sprintf(", %d done, %d failed", r.done, r.failed)
	if r.retries > 0 {
		s += fmt.Sprintf(", %d retried", r.retries)
	}
	if r.errors > 0 {
		s += fmt.Sprintf(", %d left for redelivery", r.errors)
	}
	if r.hidden > 0 {
		s += fmt.Sprintf("; %d λ lines not shown (-v shows every one)", r.hidden)
	}
	return s
}

// Close erases the live summary line and returns the final summary, for
// the worker's last line: "3000 λ in 3.2s, 1000 done, 0 failed".
func (r *StepReporter) Close() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearStatus()
	now := r.opts.Now()
	s := fmt.Sprintf("%d λ in %s, %d done, %d failed", r.steps, formatDuration(now.Sub(r.start)), r.done, r.failed)
	if r.retries > 0 {
		s += fmt.Sprintf(", %d retried", r.retries)
	}
	if r.errors > 0 {
		s += fmt.Sprintf(", %d left for redelivery", r.errors)
	}
	if r.hidden > 0 {
		s += fmt.Sprintf("; %d λ lines not shown (-v shows every one)", r.hidden)
	}
	return s
}

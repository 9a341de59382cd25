package local

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambdanum"
	"github.com/lfsm/lfsm/internal/spec"
)

// FormatVersion is the version of RunResult's JSON form.
const FormatVersion = "1"

// Lambda is one invocation (one message handled) of a run.
type Lambda struct {
	// Number is the λ number of the machine's graph (lfsm graph --lambdas);
	// 0 when the step matches no λ (an unknown event, for one).
	Number int    `json:"number"`
	Step   int    `json:"step"`
	From   string `json:"from"`
	Event  string `json:"event"`
	To     string `json:"to"`
	// Actions are the actions that ran, as "State.entry_action".
	Actions []string       `json:"actions"`
	Outcome engine.Outcome `json:"outcome"`
	Retries int            `json:"retries"`
	Error   string         `json:"error,omitempty"`
	// Duration is how long handling the message took.
	Duration time.Duration `json:"duration_ns"`
}

// RunResult is the outcome of Run; its JSON form is versioned (FormatVersion).
type RunResult struct {
	FormatVersion string        `json:"format_version"`
	Machine       string        `json:"machine"`
	CorrelationID string        `json:"correlation_id"`
	Status        engine.Status `json:"status"`
	State         string        `json:"state"`
	Error         string        `json:"error,omitempty"`
	Lambdas       []Lambda      `json:"lambdas"`
	// Context is the user context as last stored.
	Context  map[string]any `json:"context"`
	Duration time.Duration  `json:"duration_ns"`
}

// Trace renders the λ lines of one machine's runs, in columns sized from the
// machine's graph so that lines printed one by one still line up:
//
//	λ1  pseudo_init -> FirstState   FirstState.entry_action, FirstState.do_action   0.4ms
type Trace struct {
	lambdas []lambdanum.Lambda
	edgeW   int
	actW    int
}

// NewTrace prepares a Trace for m.
func NewTrace(m *spec.Machine) *Trace {
	t := &Trace{lambdas: lambdanum.Lambdas(m)}
	for _, l := range t.lambdas {
		t.edgeW = max(t.edgeW, len(edge(string(l.From), string(l.Event), string(l.To))))
		var acts []string
		for _, s := range l.Actions {
			acts = append(acts, s.String())
		}
		t.actW = max(t.actW, len(strings.Join(acts, ", ")))
	}
	return t
}

// EndLine returns the line of the end λ that runs no invocation when l
// finished its execution in a final state without exit action, so that a run
// shows the λ the diagram and the listing show, and says why it did not run:
//
//	λ5   ThirdState -> pseudo_final   (no invocation)
//
// ok is false for any other λ.
func (t *Trace) EndLine(l Lambda) (line string, ok bool) {
	if l.Outcome != engine.OutcomeDone || l.Event == spec.PseudoFinal {
		return "", false
	}
	for _, end := range t.lambdas {
		if end.NoInvocation && string(end.From) == l.To {
			num := fmt.Sprintf("λ%d", end.Number)
			return fmt.Sprintf("%-4s %-*s   (no invocation)", num, t.edgeW, edge(string(end.From), string(end.Event), string(end.To))), true
		}
	}
	return "", false
}

// Find returns the λ of a message in state from carrying event, and the state
// it leads to; ok is false when the graph has no such λ.
func (t *Trace) Find(from, event string) (number int, to string, ok bool) {
	for _, l := range t.lambdas {
		if string(l.Event) != event {
			continue
		}
		if string(l.From) == from || (event == spec.PseudoInit && l.From == lambdanum.Start) {
			return l.Number, string(l.To), true
		}
	}
	return 0, "", false
}

// Line renders one λ as a line of text, without a newline.
func (t *Trace) Line(l Lambda) string {
	num := "λ?"
	if l.Number > 0 {
		num = fmt.Sprintf("λ%d", l.Number)
	}
	acts := strings.Join(l.Actions, ", ")
	if acts == "" {
		acts = "(no actions)"
	}
	line := fmt.Sprintf("%-4s %-*s   %-*s   %s", num, t.edgeW, edge(l.From, l.Event, l.To), t.actW, acts, formatDuration(l.Duration))
	switch l.Outcome {
	case engine.OutcomeRetry:
		line += fmt.Sprintf("   retry %d: %s", l.Retries+1, l.Error)
	case engine.OutcomeFailed:
		line += "   failed: " + l.Error
	case engine.OutcomeWait:
		line += "   waiting"
	}
	return strings.TrimRight(line, " ")
}

// edge writes a λ's transition: "pseudo_init -> FirstState",
// "FirstState -(done)-> SecondState", "ThirdState -> pseudo_final".
func edge(from, event, to string) string {
	if event == spec.PseudoInit || event == spec.PseudoFinal {
		return from + " -> " + to
	}
	return fmt.Sprintf("%s -(%s)-> %s", from, event, to)
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// WriteSummary writes the closing line of a text run: how it ended.
func WriteSummary(w io.Writer, r RunResult) error {
	var err error
	switch r.Status {
	case engine.StatusDone:
		_, err = fmt.Fprintf(w, "%s %s: done in %s (%d λ)\n", r.Machine, r.CorrelationID, formatDuration(r.Duration), len(r.Lambdas))
	case engine.StatusWaiting:
		_, err = fmt.Fprintf(w, "%s %s: waiting in %s for an outside event (lfsm send %s EVENT)\n", r.Machine, r.CorrelationID, r.State, r.CorrelationID)
	default:
		msg := string(r.Status) + " " + where(r)
		if r.Error != "" {
			msg += ": " + r.Error
		}
		_, err = fmt.Fprintf(w, "%s %s: %s\n", r.Machine, r.CorrelationID, msg)
	}
	return err
}

// WriteSimulatedSummary is WriteSummary for a run of lfsm run --simulate
// with sim: such a run used a temporary store, so a waiting execution cannot
// be sent an event (lfsm send would answer "not found"). Its summary says
// so, and a hint line says how to walk on: when the waiting state has a do
// action, run again with one more event (command is how the run was started,
// e.g. "lfsm run -f fsm.yaml -m Example"; default "lfsm run -m MACHINE").
func WriteSimulatedSummary(w io.Writer, r RunResult, m *spec.Machine, sim *engine.SimulateOptions, command string) error {
	if r.Status != engine.StatusWaiting {
		return WriteSummary(w, r)
	}
	if command == "" {
		command = "lfsm run -m " + r.Machine
	}
	hint := "it has no do action, so only lfsm send moves it on, and that needs a stored execution: lfsm start, then lfsm dev --simulate"
	if st := m.State(spec.StateName(r.State)); st != nil && st.DoAction != nil {
		hint = fmt.Sprintf("walk on with one more event for its do action: %s --simulate --events %s", command,
			strings.Join(append(simulatedEvents(r, sim), "EVENT"), ","))
	}
	_, err := fmt.Fprintf(w, "%s %s: waiting in %s for an outside event (a simulated run: nothing was stored, so lfsm send cannot reach it)\n  hint: %s\n",
		r.Machine, r.CorrelationID, r.State, hint)
	return err
}

// simulatedEvents are the events a simulated run's do actions returned: the
// --events given, or, on a random walk, the events of its λ (a local
// transition's event, taken within a λ, is not among them).
func simulatedEvents(r RunResult, sim *engine.SimulateOptions) []string {
	if sim != nil && sim.Events != nil {
		return slices.Clone(sim.Events)
	}
	var events []string
	for _, l := range r.Lambdas {
		if l.Event != spec.PseudoInit && l.Event != spec.PseudoFinal && l.Event != "" {
			events = append(events, l.Event)
		}
	}
	return events
}

// where says where a failed or stopped run ended: at the λ that failed, with
// its transition ("at λ2 (FirstState -(done)-> SecondState)"), since the
// state the store keeps is the one the λ started from (pseudo_init for λ1,
// which names no state of the spec); else in the state it stopped in.
func where(r RunResult) string {
	if n := len(r.Lambdas); n > 0 && r.Lambdas[n-1].Outcome == engine.OutcomeFailed {
		l := r.Lambdas[n-1]
		num := "λ?"
		if l.Number > 0 {
			num = fmt.Sprintf("λ%d", l.Number)
		}
		return fmt.Sprintf("at %s (%s)", num, edge(l.From, l.Event, l.To))
	}
	if r.State == spec.PseudoInit || r.State == "" {
		return "before its first step"
	}
	return "in " + r.State
}

// WriteJSON writes r as one indented JSON document.
func WriteJSON(w io.Writer, r RunResult) error {
	if r.Lambdas == nil {
		r.Lambdas = []Lambda{}
	}
	for i := range r.Lambdas {
		if r.Lambdas[i].Actions == nil {
			r.Lambdas[i].Actions = []string{}
		}
	}
	if r.Context == nil {
		r.Context = map[string]any{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

package spec

import (
	"fmt"
	"strings"
)

// StateName names a state of a machine.
type StateName string

// EventName names an event; a do action returns one to choose the next transition.
type EventName string

// Reserved pseudo state and event names (REFERENCE.md §2). A spec must not use them.
const (
	PseudoInit  = "pseudo_init"
	PseudoFinal = "pseudo_final"
)

// DefaultMaxRetries is used when neither the message nor the machine sets max_retries.
const DefaultMaxRetries = 5

// DefaultMaxSteps caps the messages one execution may dispatch (runaway guard).
const DefaultMaxSteps = 10000

// Retry backoff: the delay before the retry numbered r (1 for the first) is
// drawn uniformly from 0 to min(max_retry_delay, retry_delay * 2^r) seconds
// ("full jitter"). The defaults are the Python framework's (1 s and 60 s).
const (
	DefaultRetryDelay    = 1
	DefaultMaxRetryDelay = 60
	// MaxRetryDelayLimit bounds max_retry_delay (and so retry_delay): a week.
	// An execution that must wait longer between attempts is better parked
	// in a state of its own (a timer, or waiting for an outside event).
	MaxRetryDelayLimit = 7 * 24 * 3600
)

// Pos is a position in a source file: 1-based line and column, 0-based byte offset.
type Pos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// Range is a span of a source file. Filename is as the user named it (relative to
// the working directory when it was given that way).
type Range struct {
	Filename string `json:"filename"`
	Start    Pos    `json:"start"`
	End      Pos    `json:"end"`
}

// Spec is a loaded fsm.yaml with all its imports resolved: every machine of every
// file, in the order they were declared (an import's machines stand where it does).
type Spec struct {
	// Root is the path of the file that was loaded.
	Root string
	// Files lists every file read, root first, each once.
	Files []string
	// Machines in declaration order.
	Machines []*Machine
}

// Machine returns the machine with the given name, or nil.
func (s *Spec) Machine(name string) *Machine {
	for _, m := range s.Machines {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// FindMachine returns the machine with the given name, or an
// *UnknownMachineError that lists the machines there are and suggests the
// nearest name.
func (s *Spec) FindMachine(name string) (*Machine, error) {
	if m := s.Machine(name); m != nil {
		return m, nil
	}
	return nil, &UnknownMachineError{Name: name, Known: s.MachineNames()}
}

// MachineNames lists the names of the machines, in declaration order.
func (s *Spec) MachineNames() []string {
	names := make([]string, len(s.Machines))
	for i, m := range s.Machines {
		names[i] = m.Name
	}
	return names
}

// UnknownMachineError reports a machine name the spec does not define.
type UnknownMachineError struct {
	Name string
	// Known lists the spec's machines, in declaration order.
	Known []string
}

// Error names the machine, lists the known ones and suggests the nearest.
func (e *UnknownMachineError) Error() string {
	msg := fmt.Sprintf("no machine %q in the spec (machines: %s)", e.Name, strings.Join(e.Known, ", "))
	if s := suggest(e.Name, e.Known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

// Machine is one state machine of a spec.
type Machine struct {
	Name      string
	NameRange Range
	// Range covers the whole machine mapping.
	Range Range
	// MaxRetries is nil when the spec does not set it (DefaultMaxRetries applies).
	MaxRetries *int
	// MaxSteps is nil when the spec does not set it (DefaultMaxSteps applies).
	MaxSteps *int
	// RetryDelay and MaxRetryDelay (seconds) are nil when the spec does not
	// set them (DefaultRetryDelay, DefaultMaxRetryDelay apply); left out of
	// the JSON then, so that a project's generated code does not change.
	RetryDelay    *int `json:",omitempty"`
	MaxRetryDelay *int `json:",omitempty"`
	States        []*State
}

// State returns the state with the given name, or nil.
func (m *Machine) State(name StateName) *State {
	for _, s := range m.States {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Initial returns the first state marked initial, or nil.
func (m *Machine) Initial() *State {
	for _, s := range m.States {
		if s.Initial {
			return s
		}
	}
	return nil
}

// EffectiveMaxRetries is the machine's max_retries or the default.
func (m *Machine) EffectiveMaxRetries() int {
	if m.MaxRetries != nil {
		return *m.MaxRetries
	}
	return DefaultMaxRetries
}

// EffectiveMaxSteps is the machine's max_steps or the default.
func (m *Machine) EffectiveMaxSteps() int {
	if m.MaxSteps != nil {
		return *m.MaxSteps
	}
	return DefaultMaxSteps
}

// EffectiveRetryDelay is the machine's retry_delay or the default, in seconds.
func (m *Machine) EffectiveRetryDelay() int {
	if m.RetryDelay != nil {
		return *m.RetryDelay
	}
	return DefaultRetryDelay
}

// EffectiveMaxRetryDelay is the machine's max_retry_delay or the default, in
// seconds.
func (m *Machine) EffectiveMaxRetryDelay() int {
	if m.MaxRetryDelay != nil {
		return *m.MaxRetryDelay
	}
	return DefaultMaxRetryDelay
}

// State is one state of a machine. Action fields are nil when the spec omits them.
type State struct {
	Name        StateName
	NameRange   Range
	Range       Range
	Initial     bool
	Final       bool
	EntryAction *ActionRef
	DoAction    *ActionRef
	ExitAction  *ActionRef
	Transitions []*Transition
}

// Transition returns the transition of s taken on event e, or nil.
func (s *State) Transition(e EventName) *Transition {
	for _, t := range s.Transitions {
		if t.Event == e {
			return t
		}
	}
	return nil
}

// Transition is an edge from its state to Target, taken on Event.
type Transition struct {
	Target      StateName
	TargetRange Range
	Event       EventName
	EventRange  Range
	// Action runs between the source's exit and the target's entry; nil if absent.
	Action *ActionRef
	// Local transitions run in the same invocation that reached their source.
	Local bool
	Range Range
}

// ActionRef is an action reference as written in the spec. For Go projects it is
// "import/path.Identifier"; specs written for the Python framework hold dotted paths.
type ActionRef struct {
	Ref   string
	Range Range
}

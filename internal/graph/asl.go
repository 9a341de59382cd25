package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/lfsm/lfsm/internal/spec"
)

// ASL variables the Choice states read: the payload a task returns is the next
// message, whose system context names where the execution stands.
const (
	aslStateVar = "$.system_context.current_state"
	aslEventVar = "$.system_context.current_event"
)

// aslMaxName is the longest state name Step Functions accepts.
const aslMaxName = 80

// ASL returns Amazon States Language JSON for Step Functions mode (REFERENCE.md §5)
// of machine m, every task invoking the Lambda function lambdaARN.
//
// Each state S becomes a Task named S, which dispatches the event that leads into S
// (Step Functions retries it: States.ALL, 1 s, backoff 2.0, max_retries attempts),
// followed by a Choice state "S-choices" that routes on the state and event the
// invocation returned. Both are needed because local transitions run inside the
// invocation and can leave the execution past S. Each final state F with an exit
// action also gets a Task "F-final" that runs it when the invocation returns
// current_event pseudo_final (the seed's last λ). Choices of final states default
// to a Succeed state, the others to a Fail state, since no transition matched; a
// state with nothing to choose goes straight there. States Step Functions could
// never reach are left out, as it rejects them. Names that would collide with a
// state get underscores appended.
func ASL(m *spec.Machine, lambdaARN string) ([]byte, error) {
	if lambdaARN == "" {
		return nil, errors.New("export asl: no lambda arn")
	}
	b := aslBuilder{m: m, idx: newIndex(m), arn: lambdaARN, taken: map[string]bool{}}
	doc, err := b.build()
	if err != nil {
		return nil, fmt.Errorf("export asl of machine %s: %w", m.Name, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("export asl of machine %s: %w", m.Name, err)
	}
	return buf.Bytes(), nil
}

type aslDoc struct {
	Comment string    `json:"Comment"`
	StartAt string    `json:"StartAt"`
	States  aslStates `json:"States"`
}

type aslNamed struct {
	Name  string
	State *aslState
}

// aslStates marshals as a JSON object whose keys keep their order.
type aslStates []aslNamed

func (s aslStates) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, n := range s {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := json.Marshal(n.Name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(n.State)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

type aslState struct {
	Type     string `json:"Type"`
	Comment  string `json:"Comment,omitempty"`
	Resource string `json:"Resource,omitempty"`
	// Parameters of a Task: the event says it is a Step Functions task,
	// and carries the state's input as its message.
	Parameters *aslTaskParameters `json:"Parameters,omitempty"`
	Retry      []aslRetry         `json:"Retry,omitempty"`
	Choices    []aslChoice        `json:"Choices,omitempty"`
	Default    string             `json:"Default,omitempty"`
	Next       string             `json:"Next,omitempty"`
	Error      string             `json:"Error,omitempty"`
	Cause      string             `json:"Cause,omitempty"`
}

// aslTaskParameters is the event every Task passes to the function:
// {"mode": "step_functions", "message": <the state's input>}. The mode says
// explicitly that the invocation is a task (run the actions, return the next
// message), so one function can serve a queue and Step Functions alike.
type aslTaskParameters struct {
	Mode    string `json:"mode"`
	Message string `json:"message.$"`
}

// aslTaskMode is the mode of a Task's event (internal/lambda's ModeStepFunctions).
const aslTaskMode = "step_functions"

type aslRetry struct {
	ErrorEquals     []string    `json:"ErrorEquals"`
	IntervalSeconds int         `json:"IntervalSeconds"`
	BackoffRate     json.Number `json:"BackoffRate"`
	MaxAttempts     int         `json:"MaxAttempts"`
	// MaxDelaySeconds caps the backoff when the machine sets
	// max_retry_delay (Step Functions has no cap by default).
	MaxDelaySeconds int `json:"MaxDelaySeconds,omitempty"`
}

// aslChoice is a choice rule: either And of two comparisons, or one comparison.
type aslChoice struct {
	And          []aslCompare `json:"And,omitempty"`
	Variable     string       `json:"Variable,omitempty"`
	StringEquals string       `json:"StringEquals,omitempty"`
	Next         string       `json:"Next"`
}

type aslCompare struct {
	Variable     string `json:"Variable"`
	StringEquals string `json:"StringEquals"`
}

type aslBuilder struct {
	m     *spec.Machine
	idx   index
	arn   string
	taken map[string]bool
}

// name returns base, with underscores appended until no other state has it.
func (b *aslBuilder) name(base string) string {
	for b.taken[base] {
		base += "_"
	}
	b.taken[base] = true
	return base
}

func (b *aslBuilder) build() (*aslDoc, error) {
	initial := b.m.Initial()
	if initial == nil {
		return nil, errors.New("no initial state")
	}
	for _, s := range b.m.States {
		if b.taken[string(s.Name)] {
			return nil, fmt.Errorf("state %s is defined twice", s.Name)
		}
		b.taken[string(s.Name)] = true
	}
	choiceOf := make(map[spec.StateName]string, len(b.m.States))
	finalOf := map[spec.StateName]string{}
	for _, s := range b.m.States {
		choiceOf[s.Name] = b.name(string(s.Name) + "-choices")
		if s.Final && s.ExitAction != nil {
			finalOf[s.Name] = b.name(string(s.Name) + "-final")
		}
	}
	succeed := b.name("Succeeded")
	fail := b.name("NoTransition")

	retry := []aslRetry{{
		ErrorEquals:     []string{"States.ALL"},
		IntervalSeconds: b.m.EffectiveRetryDelay(),
		BackoffRate:     "2.0",
		MaxAttempts:     b.m.EffectiveMaxRetries(),
	}}
	if b.m.MaxRetryDelay != nil {
		retry[0].MaxDelaySeconds = *b.m.MaxRetryDelay
	}
	task := func(comment, next string) *aslState {
		return &aslState{Type: "Task", Comment: comment, Resource: b.arn,
			Parameters: &aslTaskParameters{Mode: aslTaskMode, Message: "$"}, Retry: retry, Next: next}
	}
	var states aslStates
	for _, s := range b.m.States {
		choice, err := b.choice(s, finalOf, succeed, fail)
		if err != nil {
			return nil, err
		}
		// A Choice state needs at least one rule; with none, the task goes
		// straight to where the choice would default.
		if len(choice.Choices) == 0 {
			states = append(states, aslNamed{string(s.Name), task(
				fmt.Sprintf("dispatch the event that leads into %s", s.Name), choice.Default)})
		} else {
			states = append(states,
				aslNamed{string(s.Name), task(fmt.Sprintf("dispatch the event that leads into %s", s.Name), choiceOf[s.Name])},
				aslNamed{choiceOf[s.Name], choice})
		}
		if final, ok := finalOf[s.Name]; ok {
			states = append(states, aslNamed{final, task(
				fmt.Sprintf("run the exit action of final state %s", s.Name), succeed)})
		}
	}
	states = append(states,
		aslNamed{succeed, &aslState{Type: "Succeed"}},
		aslNamed{fail, &aslState{
			Type:  "Fail",
			Error: "lfsm.NoTransition",
			Cause: fmt.Sprintf("machine %s: the state and event the last invocation returned match no transition", b.m.Name),
		}},
	)
	for _, n := range states {
		if utf8.RuneCountInString(n.Name) > aslMaxName {
			return nil, fmt.Errorf("state name %q is longer than the %d characters step functions accepts", n.Name, aslMaxName)
		}
	}
	return &aslDoc{
		Comment: fmt.Sprintf("lfsm machine %s in Step Functions mode (generated by lfsm export asl)", b.m.Name),
		StartAt: string(initial.Name),
		States:  reachable(states, string(initial.Name)),
	}, nil
}

// choice routes what the task of s returned. The invocation may have followed
// local transitions, so the rules cover every state s reaches locally.
func (b *aslBuilder) choice(s *spec.State, finalOf map[spec.StateName]string, succeed, fail string) (*aslState, error) {
	c := &aslState{Type: "Choice", Comment: fmt.Sprintf("route on the state and event the task %s returned", s.Name)}
	closure := b.localClosure(s)
	for _, x := range closure {
		seen := map[spec.EventName]bool{}
		for _, t := range x.Transitions {
			if t.Local || seen[t.Event] {
				continue
			}
			seen[t.Event] = true
			if b.idx[t.Target] == nil {
				return nil, fmt.Errorf("transition %s of state %s targets unknown state %s", t.Event, x.Name, t.Target)
			}
			c.Choices = append(c.Choices, stateAndEvent(x.Name, t.Event, string(t.Target)))
		}
	}
	for _, x := range closure {
		if final, ok := finalOf[x.Name]; ok {
			c.Choices = append(c.Choices, stateAndEvent(x.Name, spec.PseudoFinal, final))
		}
	}
	// A final state reached locally ends the execution on any other event, as
	// the Default does for s itself.
	for _, x := range closure[1:] {
		if x.Final {
			c.Choices = append(c.Choices, aslChoice{Variable: aslStateVar, StringEquals: string(x.Name), Next: succeed})
		}
	}
	c.Default = fail
	if s.Final {
		c.Default = succeed
	}
	return c, nil
}

func stateAndEvent(state spec.StateName, event spec.EventName, next string) aslChoice {
	return aslChoice{
		And: []aslCompare{
			{Variable: aslStateVar, StringEquals: string(state)},
			{Variable: aslEventVar, StringEquals: string(event)},
		},
		Next: next,
	}
}

// localClosure lists s and every state reachable from s through local
// transitions, breadth first in transition order.
func (b *aslBuilder) localClosure(s *spec.State) []*spec.State {
	out := []*spec.State{s}
	seen := map[spec.StateName]bool{s.Name: true}
	for i := 0; i < len(out); i++ {
		for _, t := range out[i].Transitions {
			if !t.Local || seen[t.Target] {
				continue
			}
			seen[t.Target] = true
			if next := b.idx[t.Target]; next != nil {
				out = append(out, next)
			}
		}
	}
	return out
}

// reachable keeps the states Step Functions can reach from start, in order:
// it rejects definitions with unreachable states.
func reachable(states aslStates, start string) aslStates {
	byName := make(map[string]*aslState, len(states))
	for _, n := range states {
		byName[n.Name] = n.State
	}
	seen := map[string]bool{start: true}
	queue := []string{start}
	visit := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			queue = append(queue, name)
		}
	}
	for len(queue) > 0 {
		st := byName[queue[0]]
		queue = queue[1:]
		visit(st.Next)
		visit(st.Default)
		for _, c := range st.Choices {
			visit(c.Next)
		}
	}
	out := make(aslStates, 0, len(seen))
	for _, n := range states {
		if seen[n.Name] {
			out = append(out, n)
		}
	}
	return out
}

// index maps state names to states; the first state wins when a name repeats.
type index map[spec.StateName]*spec.State

func newIndex(m *spec.Machine) index {
	idx := make(index, len(m.States))
	for _, s := range m.States {
		if _, ok := idx[s.Name]; !ok {
			idx[s.Name] = s
		}
	}
	return idx
}

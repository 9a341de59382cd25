package graph

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/spec"
)

const testARN = "arn:aws:lambda:eu-west-1:123456789012:function:shop"

// aslDefinition is what the tests read back from ASL's JSON, independently of
// the types that wrote it.
type aslDefinition struct {
	StartAt string
	States  map[string]struct {
		Type     string
		Resource string
		Retry    []struct {
			ErrorEquals     []string
			IntervalSeconds int
			BackoffRate     float64
			MaxAttempts     *int
		}
		Next    string
		Default string
		Error   string
		Cause   string
		Choices []struct {
			And          []map[string]string
			Variable     string
			StringEquals *string
			Next         string
		}
	}
}

// checkASL parses doc and checks the structure Step Functions requires of it.
func checkASL(t *testing.T, doc []byte, m *spec.Machine) aslDefinition {
	t.Helper()
	var def aslDefinition
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&def); err != nil {
		// Comment fields are the only ones the struct leaves out.
		def = aslDefinition{}
		if err := json.Unmarshal(doc, &def); err != nil {
			t.Fatalf("asl is not JSON: %v", err)
		}
	}
	exists := func(where, name string) {
		t.Helper()
		if _, ok := def.States[name]; !ok {
			t.Errorf("%s names state %q, which does not exist", where, name)
		}
	}
	exists("StartAt", def.StartAt)
	if init := m.Initial(); init == nil || def.StartAt != string(init.Name) {
		t.Errorf("StartAt = %q, want the initial state", def.StartAt)
	}
	reached := map[string]bool{def.StartAt: true}
	for name, st := range def.States {
		if len([]rune(name)) > 80 {
			t.Errorf("state name %q is too long", name)
		}
		switch st.Type {
		case "Task":
			if st.Resource != testARN {
				t.Errorf("task %s: Resource = %q, want %q", name, st.Resource, testARN)
			}
			if len(st.Retry) != 1 {
				t.Fatalf("task %s: %d retriers, want 1", name, len(st.Retry))
			}
			r := st.Retry[0]
			if diff := cmp.Diff([]string{"States.ALL"}, r.ErrorEquals); diff != "" || r.IntervalSeconds != 1 || r.BackoffRate != 2.0 ||
				r.MaxAttempts == nil || *r.MaxAttempts != m.EffectiveMaxRetries() {
				t.Errorf("task %s: retry %+v, want States.ALL, 1 s, 2.0, %d attempts", name, r, m.EffectiveMaxRetries())
			}
			exists("task "+name+" Next", st.Next)
			reached[st.Next] = true
		case "Choice":
			if len(st.Choices) == 0 {
				t.Errorf("choice %s has no rules", name)
			}
			if st.Default == "" {
				t.Errorf("choice %s has no Default", name)
			}
			exists("choice "+name+" Default", st.Default)
			reached[st.Default] = true
			for i, c := range st.Choices {
				exists("choice "+name+" rule Next", c.Next)
				reached[c.Next] = true
				switch {
				case len(c.And) == 2 && c.Variable == "" && c.StringEquals == nil:
					vars := []string{c.And[0]["Variable"], c.And[1]["Variable"]}
					if diff := cmp.Diff([]string{"$.system_context.current_state", "$.system_context.current_event"}, vars); diff != "" {
						t.Errorf("choice %s rule %d compares (-want +got):\n%s", name, i, diff)
					}
					for _, cmpr := range c.And {
						if len(cmpr) != 2 || cmpr["StringEquals"] == "" {
							t.Errorf("choice %s rule %d: comparison %v is not a StringEquals", name, i, cmpr)
						}
					}
					if m.State(spec.StateName(c.And[0]["StringEquals"])) == nil {
						t.Errorf("choice %s rule %d: unknown state %q", name, i, c.And[0]["StringEquals"])
					}
				case len(c.And) == 0 && c.Variable == "$.system_context.current_state" && c.StringEquals != nil:
				default:
					t.Errorf("choice %s rule %d is malformed: %+v", name, i, c)
				}
			}
		case "Succeed":
		case "Fail":
			if st.Error == "" || st.Cause == "" {
				t.Errorf("fail state %s has no Error or Cause", name)
			}
		default:
			t.Errorf("state %s has type %q", name, st.Type)
		}
	}
	for name := range def.States {
		if !reached[name] {
			t.Errorf("state %s is unreachable", name)
		}
	}
	return def
}

func TestASLStructure(t *testing.T) {
	for _, file := range specFiles(t) {
		for _, m := range loadSpec(t, file).Machines {
			t.Run(file+"/"+m.Name, func(t *testing.T) {
				doc, err := ASL(m, testARN)
				if err != nil {
					t.Fatal(err)
				}
				def := checkASL(t, doc, m)
				// Every state Step Functions can reach through non-local
				// transitions has its task, including final states with
				// transitions (the Python tool dropped those).
				for _, s := range m.States {
					for _, tr := range s.Transitions {
						if !tr.Local {
							if _, ok := def.States[string(tr.Target)]; !ok {
								t.Errorf("no task for %s, the target of %s", tr.Target, tr.Event)
							}
						}
					}
				}
			})
		}
	}
}

// next returns where the choice of state s sends the given state and event, as
// Step Functions would evaluate it.
func next(t *testing.T, def aslDefinition, choice, state, event string) string {
	t.Helper()
	st, ok := def.States[choice]
	if !ok {
		t.Fatalf("no state %s", choice)
	}
	for _, c := range st.Choices {
		if len(c.And) == 2 {
			if c.And[0]["StringEquals"] == state && c.And[1]["StringEquals"] == event {
				return c.Next
			}
			continue
		}
		if *c.StringEquals == state {
			return c.Next
		}
	}
	return st.Default
}

func TestASLRouting(t *testing.T) {
	retries := 2
	// Work leaves locally for Check; Check may go on locally to Done (final);
	// a state is named like a generated one.
	m := &spec.Machine{Name: "m", MaxRetries: &retries, States: []*spec.State{
		{Name: "Work", Initial: true, Transitions: []*spec.Transition{
			tr("Check", "checked", true), tr("Work", "again", false), tr("Done", "finish", false),
		}},
		{Name: "Check", Transitions: []*spec.Transition{tr("Done", "ok", true), tr("Work", "retry", false)}},
		{Name: "Done", Final: true, ExitAction: ref("a.Bye"), Transitions: []*spec.Transition{tr("Work", "reopen", false)}},
		{Name: "Work-choices"},
		{Name: "Succeeded", Final: true},
	}}
	doc, err := ASL(m, testARN)
	if err != nil {
		t.Fatal(err)
	}
	def := checkASL(t, doc, m)
	tests := []struct {
		choice, state, event, want string
	}{
		{"Work-choices_", "Work", "again", "Work"},
		{"Work-choices_", "Check", "retry", "Work"},
		{"Work-choices_", "Done", "reopen", "Work"},
		{"Work-choices_", "Done", spec.PseudoFinal, "Done-final"},
		{"Work-choices_", "Done", "whatever", "Succeeded_"},
		{"Work-choices_", "Work", "unknown", "NoTransition"},
		{"Done-choices", "Done", "reopen", "Work"},
		{"Done-choices", "Done", "nothing", "Succeeded_"},
	}
	for _, tt := range tests {
		if got := next(t, def, tt.choice, tt.state, tt.event); got != tt.want {
			t.Errorf("%s on (%s, %s) goes to %s, want %s", tt.choice, tt.state, tt.event, got, tt.want)
		}
	}
	if got := def.States["Done-final"].Next; got != "Succeeded_" {
		t.Errorf("Done-final goes to %q, want Succeeded_", got)
	}
	if got := def.States["Work"].Next; got != "Work-choices_" {
		t.Errorf("task Work goes to %q, want Work-choices_", got)
	}
	// Check is only reached locally, the states Work-choices and Succeeded not at
	// all: Step Functions rejects unreachable states, so they are left out.
	for _, name := range []string{"Check", "Check-choices", "Work-choices", "Succeeded", "Succeeded-choices"} {
		if _, ok := def.States[name]; ok {
			t.Errorf("unreachable state %s is in the definition", name)
		}
	}
}

func TestASLErrors(t *testing.T) {
	tests := []struct {
		name string
		m    *spec.Machine
		arn  string
		want string
	}{
		{"no arn", &spec.Machine{Name: "m", States: []*spec.State{{Name: "A", Initial: true}}}, "", "no lambda arn"},
		{"no initial", &spec.Machine{Name: "m", States: []*spec.State{{Name: "A"}}}, testARN, "no initial state"},
		{"unknown target", &spec.Machine{Name: "m", States: []*spec.State{
			{Name: "A", Initial: true, Transitions: []*spec.Transition{tr("B", "go", false)}},
		}}, testARN, "targets unknown state B"},
		{"long name", &spec.Machine{Name: "m", States: []*spec.State{
			{Name: spec.StateName(strings.Repeat("x", 81)), Initial: true},
		}}, testARN, "longer than the 80 characters"},
		{"duplicate state", &spec.Machine{Name: "m", States: []*spec.State{
			{Name: "A", Initial: true}, {Name: "A"},
		}}, testARN, "defined twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ASL(tt.m, tt.arn)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ASL error = %v, want one containing %q", err, tt.want)
			}
			if errors.Unwrap(err) == nil && tt.arn != "" {
				t.Errorf("error %v wraps nothing", err)
			}
		})
	}
}

// A machine's own backoff reaches the tasks' Retry: IntervalSeconds is its
// retry_delay, MaxDelaySeconds its max_retry_delay.
func TestASLBackoff(t *testing.T) {
	base, ceiling := 60, 3600
	m := &spec.Machine{Name: "M", RetryDelay: &base, MaxRetryDelay: &ceiling, States: []*spec.State{
		{Name: "A", Initial: true, DoAction: &spec.ActionRef{Ref: "example.com/x.Do"}, Transitions: []*spec.Transition{{Target: "B", Event: "ok"}}},
		{Name: "B", Final: true},
	}}
	doc, err := ASL(m, testARN)
	if err != nil {
		t.Fatal(err)
	}
	var def struct {
		States map[string]struct {
			Retry []struct{ IntervalSeconds, MaxDelaySeconds int }
		}
	}
	if err := json.Unmarshal(doc, &def); err != nil {
		t.Fatal(err)
	}
	r := def.States["A"].Retry
	if len(r) != 1 || r[0].IntervalSeconds != 60 || r[0].MaxDelaySeconds != 3600 {
		t.Errorf("task A's Retry %+v, want IntervalSeconds 60 and MaxDelaySeconds 3600", r)
	}
}

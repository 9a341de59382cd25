package lambda_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lfsm/lfsm/internal/graph"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// aslState is the part of an ASL state this test interprets.
type aslState struct {
	Type       string
	Parameters map[string]string
	Retry      []struct{ MaxAttempts int }
	Next       string
	Default    string
	Choices    []struct {
		And []struct {
			Variable     string
			StringEquals string
		}
		Next string
	}
}

// runASL interprets the ASL that lfsm export asl writes for machine, as
// Step Functions would: each Task's Parameters build the event from the
// state's input, a failed task is retried up to MaxAttempts, and each
// Choice routes on the output. It returns the states visited and how the
// execution ended (Succeed, or the Fail state's name).
func runASL(t *testing.T, h *harness, m *spec.Machine, input []byte) (visited []string, end string, output []byte) {
	t.Helper()
	doc, err := graph.ASL(m, "arn:aws:lambda:us-east-1:123456789012:function:lfsm")
	if err != nil {
		t.Fatal(err)
	}
	var asl struct {
		StartAt string
		States  map[string]aslState
	}
	if err := json.Unmarshal(doc, &asl); err != nil {
		t.Fatal(err)
	}
	name := asl.StartAt
	for range 100 {
		st := asl.States[name]
		visited = append(visited, name)
		switch st.Type {
		case "Succeed", "Fail":
			return visited, name, input
		case "Task":
			if st.Parameters["mode"] != lambda.ModeStepFunctions || st.Parameters["message.$"] != "$" || len(st.Parameters) != 2 {
				t.Fatalf("task %s: Parameters %v", name, st.Parameters)
			}
			event, _ := json.Marshal(map[string]json.RawMessage{"mode": json.RawMessage(`"step_functions"`), "message": input})
			var out []byte
			for attempt := 0; ; attempt++ {
				out, err = h.invoke(event)
				if err == nil {
					break
				}
				var sfe *lambda.StepFunctionsError
				if !errors.As(err, &sfe) {
					t.Fatalf("task %s: error %v is not a StepFunctionsError", name, err)
				}
				if attempt >= st.Retry[0].MaxAttempts {
					return visited, "States.TaskFailed", nil
				}
				visited = append(visited, name+" (retry)")
			}
			input = out
			name = st.Next
		case "Choice":
			var msg struct {
				System map[string]any `json:"system_context"`
			}
			if err := json.Unmarshal(input, &msg); err != nil {
				t.Fatalf("choice %s: input %s: %v", name, input, err)
			}
			next := st.Default
			for _, c := range st.Choices {
				match := true
				for _, cmp := range c.And {
					key := strings.TrimPrefix(cmp.Variable, "$.system_context.")
					match = match && msg.System[key] == cmp.StringEquals
				}
				if match {
					next = c.Next
					break
				}
			}
			name = next
		default:
			t.Fatalf("state %s: type %q", name, st.Type)
		}
	}
	t.Fatal("the execution did not end")
	return nil, "", nil
}

func machine(t *testing.T, name string) *spec.Machine {
	s := loadSpec(t)
	for _, m := range s.Machines {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no machine %s", name)
	return nil
}

// Step Functions mode: every Task of the exported ASL gets the message, runs
// the actions of its step only (no store: nothing is recorded) and returns
// the next message, whose state and event select the Choice's next state.
func TestStepFunctions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	visited, end, out := runASL(t, h, machine(t, "Example"), message("Example", "sf1", "pseudo_init", "pseudo_init", 0))
	want := []string{"FirstState", "FirstState-choices", "SecondState", "SecondState-choices", "ThirdState",
		"ThirdState-choices", "ThirdState-final", "Succeeded"}
	if !slices.Equal(visited, want) || end != "Succeeded" {
		t.Errorf("visited %v, want %v", visited, want)
	}
	var final struct {
		System map[string]any `json:"system_context"`
		User   map[string]any `json:"user_context"`
	}
	json.Unmarshal(out, &final)
	if final.System["steps"] != 3.0 || final.System["current_event"] != "pseudo_final" || final.System["finished_at"] == nil ||
		final.User["secret"] != "hunter2" {
		t.Errorf("final output %s", out)
	}
	if _, err := h.mem.Get(t.Context(), "sf1"); err == nil {
		t.Error("step functions mode wrote to the store")
	}

	// A failing step fails the task; Step Functions' Retry runs it again.
	visited, end, _ = runASL(t, h, machine(t, "Flaky"), message("Flaky", "sf2", "pseudo_init", "pseudo_init", 0))
	want = []string{"Try", "Try (retry)", "Try (retry)", "Try-choices", "Done", "Succeeded"}
	if !slices.Equal(visited, want) || end != "Succeeded" {
		t.Errorf("flaky: visited %v, want %v", visited, want)
	}

	// A state that waits for an outside event cannot run in Step Functions.
	_, end, _ = runASL(t, h, machine(t, "Parked"), message("Parked", "sf3", "pseudo_init", "pseudo_init", 0))
	if end != "States.TaskFailed" {
		t.Errorf("parked: ended %s, want the task failed", end)
	}
}

func TestStepFunctionsBadTasks(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, ev := range []string{`{"mode":"step_functions"}`, `{"mode":"step_functions","message":"x"}`, `{"mode":"step_functions","message":{}}`} {
		if _, err := h.invoke([]byte(ev)); err == nil {
			t.Errorf("%s: no error", ev)
		}
	}
}

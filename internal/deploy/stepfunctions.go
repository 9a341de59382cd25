package deploy

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/lfsm/lfsm/internal/graph"
	"github.com/lfsm/lfsm/internal/spec"
)

// functionArnVar is where the ASL names the function; the state machine's
// DefinitionSubstitutions put the deployed function's ARN there.
const functionArnVar = "${FunctionArn}"

// addStateMachines adds one state machine per machine of s, each from the
// same ASL `lfsm export asl` writes.
func (m *Model) addStateMachines(s *spec.Spec) error {
	taken := map[string]bool{}
	for i, mc := range s.Machines {
		doc, err := graph.ASL(mc, functionArnVar)
		if err != nil {
			return fmt.Errorf("state machine for %s: %w", mc.Name, err)
		}
		part := logicalPart(mc.Name)
		if part == "" {
			part = fmt.Sprintf("Machine%d", i+1)
		}
		id := idStateMachinePrefx + part
		for taken[id] {
			id += "X"
		}
		taken[id] = true
		m.StateMachines = append(m.StateMachines, StateMachine{ID: id, Machine: mc.Name, ASL: doc})
	}
	return nil
}

// logicalPart keeps the letters and digits of name, which is what a logical
// id may hold.
func logicalPart(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (r *renderer) stateMachines() {
	var arns []any
	for _, sm := range r.m.StateMachines {
		arns = append(arns, Ref(sm.ID))
	}
	fn := GetAtt(IDFunction, "Arn")
	r.add(IDStateMachineRole, &Resource{Type: "AWS::IAM::Role", Properties: map[string]any{
		"Description":              "lfsm state machines: invoke the project's function",
		"AssumeRolePolicyDocument": assumeRole("states.amazonaws.com"),
		"Policies": []any{map[string]any{
			"PolicyName": "lfsm",
			"PolicyDocument": policyDocument([]Statement{{
				Sid:      "InvokeFunction",
				Action:   []string{"lambda:InvokeFunction"},
				Resource: []any{fn, Sub("${" + IDFunction + ".Arn}:*")},
			}}),
		}},
		"Tags": r.tags(),
	}})
	r.output(OutStateMachineRole, "The state machines' role", GetAtt(IDStateMachineRole, "Arn"))
	for _, sm := range r.m.StateMachines {
		r.add(sm.ID, &Resource{Type: "AWS::StepFunctions::StateMachine", Properties: map[string]any{
			"StateMachineName":        name(sm.ID[len(idStateMachinePrefx):]),
			"StateMachineType":        "STANDARD",
			"DefinitionString":        string(sm.ASL),
			"DefinitionSubstitutions": map[string]any{"FunctionArn": fn},
			"RoleArn":                 GetAtt(IDStateMachineRole, "Arn"),
			"Tags":                    r.tags(),
		}})
		r.output(OutStateMachinePrefx+sm.ID[len(idStateMachinePrefx):], "The state machine of machine "+sm.Machine, Ref(sm.ID))
	}
}

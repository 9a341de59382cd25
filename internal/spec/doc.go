// Package spec reads and checks lfsm specs (fsm.yaml): finite state machines
// whose states and transitions name actions written in Go.
//
// Load reads a spec file and the files it imports into a Spec whose every
// machine, state, transition and action reference keeps its source Range.
// Validate applies the semantic rules (initial and final states, targets,
// reachability, local cycles, action references). Both return Diagnostics:
// every problem at once, each with a stable code (see Rules), a lowercase
// summary, a detail and a hint. WriteText renders them for people and NewReport
// as versioned JSON. Schema gives editors a JSON Schema of the format.
//
// A Spec round-trips through encoding/json, so a build step can compile a spec
// into a binary without YAML.
package spec

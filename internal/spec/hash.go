package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// HashLength is the length of Machine.Hash in hex characters.
const HashLength = 16

// Hash identifies the version of the machine that runs: a hex digest of
// what decides how its executions behave (its name, max_retries,
// max_steps and the retry backoff as they apply, and every state and transition with its flags,
// actions and order), and of nothing else: positions, comments, anchors and
// extension keys leave it alone, so a spec reformatted or moved to another
// file keeps its hash, and the same machine compiled into a project binary
// hashes as it does in the YAML. Messages carry it (system_context.spec_hash)
// so that in-flight executions can be checked against a new spec.
func (m *Machine) Hash() string {
	type transition struct {
		Target string `json:"target"`
		Event  string `json:"event"`
		Action string `json:"action,omitempty"`
		Local  bool   `json:"local,omitempty"`
	}
	type state struct {
		Name        string       `json:"name"`
		Initial     bool         `json:"initial,omitempty"`
		Final       bool         `json:"final,omitempty"`
		Entry       string       `json:"entry,omitempty"`
		Do          string       `json:"do,omitempty"`
		Exit        string       `json:"exit,omitempty"`
		Transitions []transition `json:"transitions"`
	}
	// The backoff is hashed only when it is not the default, so that the
	// hashes of machines that leave it alone did not change when it came.
	nonDefault := func(v, def int) int {
		if v == def {
			return 0
		}
		return v
	}
	c := struct {
		Name          string  `json:"name"`
		MaxRetries    int     `json:"max_retries"`
		MaxSteps      int     `json:"max_steps"`
		RetryDelay    int     `json:"retry_delay,omitempty"`
		MaxRetryDelay int     `json:"max_retry_delay,omitempty"`
		States        []state `json:"states"`
	}{Name: m.Name, MaxRetries: m.EffectiveMaxRetries(), MaxSteps: m.EffectiveMaxSteps(),
		RetryDelay:    nonDefault(m.EffectiveRetryDelay(), DefaultRetryDelay),
		MaxRetryDelay: nonDefault(m.EffectiveMaxRetryDelay(), DefaultMaxRetryDelay), States: []state{}}
	ref := func(a *ActionRef) string {
		if a == nil {
			return ""
		}
		return a.Ref
	}
	for _, s := range m.States {
		if s == nil {
			continue
		}
		cs := state{Name: string(s.Name), Initial: s.Initial, Final: s.Final, Entry: ref(s.EntryAction), Do: ref(s.DoAction),
			Exit: ref(s.ExitAction), Transitions: []transition{}}
		for _, t := range s.Transitions {
			if t == nil {
				continue
			}
			cs.Transitions = append(cs.Transitions, transition{Target: string(t.Target), Event: string(t.Event), Action: ref(t.Action), Local: t.Local})
		}
		c.States = append(c.States, cs)
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic("spec: hash: " + err.Error()) // strings, ints and bools always encode
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:HashLength/2])
}

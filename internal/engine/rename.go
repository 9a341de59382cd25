package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lfsm/lfsm/internal/spec"
)

// Rename says how the executions of older versions of a machine continue on
// the version an engine runs (docs/design.md, "Live executions across a
// deploy"): a message of Machine whose spec hash (system_context.spec_hash)
// is one of From has its current state renamed by States and its current
// event by Events (names absent from a map stay as they are), and then
// carries the engine's spec hash, before anything else happens to it. The
// step, the attempt and everything else are left alone, so idempotency and
// the leases work across the rename exactly as before it.
type Rename struct {
	Machine string `json:"machine"`
	// From are the spec hashes the rename applies to (the deployed
	// versions); never the engine's own.
	From []string `json:"from"`
	// States and Events map an old name to the new one.
	States map[string]string `json:"states,omitempty"`
	Events map[string]string `json:"events,omitempty"`
}

// renameDoc is the JSON form of a rename list (the function's LFSM_RENAMES).
type renameDoc struct {
	FormatVersion string   `json:"format_version"`
	Machines      []Rename `json:"machines"`
}

// EncodeRenames writes rs as the JSON DecodeRenames reads, sorted so that
// the same renames always make the same bytes (a deploy's template does not
// change by map order).
func EncodeRenames(rs []Rename) ([]byte, error) {
	doc := renameDoc{FormatVersion: "1", Machines: make([]Rename, 0, len(rs))}
	for _, r := range rs {
		r.From = slices.Sorted(slices.Values(r.From))
		doc.Machines = append(doc.Machines, r)
	}
	slices.SortFunc(doc.Machines, func(a, b Rename) int { return strings.Compare(a.Machine, b.Machine) })
	return json.Marshal(doc) // encoding/json sorts map keys
}

// DecodeRenames reads what EncodeRenames writes. Unknown keys are refused:
// a rename that a handler half understood would strand executions.
func DecodeRenames(b []byte) ([]Rename, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var doc renameDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode renames: %w", err)
	}
	if doc.FormatVersion != "1" {
		return nil, fmt.Errorf("decode renames: format_version %q, want \"1\"", doc.FormatVersion)
	}
	return doc.Machines, nil
}

// Renamer translates the messages of older machine versions. The engine
// uses one built from Options.Renames; deploy's in-flight check uses the
// same code to know which executions a rename map covers. The zero value
// (and nil) renames nothing.
type Renamer struct {
	// by machine, then spec hash.
	by map[string]map[string]*Rename
	// hash is each machine's own spec hash.
	hash map[string]string
}

// NewRenamer checks rs against the machines that will run the renamed
// executions: every machine named exists, no From is its own hash (a
// rename of its own messages would translate new names), every target
// state is one of its states, every target event is one of its events, and
// no pseudo state or event is renamed.
func NewRenamer(machines []*Machine, rs []Rename) (*Renamer, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	r := &Renamer{by: map[string]map[string]*Rename{}, hash: map[string]string{}}
	byName := map[string]*Machine{}
	for _, m := range machines {
		byName[m.name] = m
	}
	var errs []error
	for i := range rs {
		rn := &rs[i]
		m := byName[rn.Machine]
		if m == nil {
			errs = append(errs, fmt.Errorf("rename of machine %q: no such machine", rn.Machine))
			continue
		}
		r.hash[m.name] = m.hash
		events := map[string]bool{}
		for _, st := range m.states {
			for _, t := range st.trans {
				events[t.event] = true
			}
		}
		for old, to := range rn.States {
			if _, ok := m.state(to); !ok {
				errs = append(errs, fmt.Errorf("rename of machine %q: state %q becomes %q, which is not a state of the machine", rn.Machine, old, to))
			}
			if isPseudo(old) || isPseudo(to) {
				errs = append(errs, fmt.Errorf("rename of machine %q: %s and %s are not renamed", rn.Machine, spec.PseudoInit, spec.PseudoFinal))
			}
		}
		for old, to := range rn.Events {
			if !events[to] {
				errs = append(errs, fmt.Errorf("rename of machine %q: event %q becomes %q, which no transition of the machine takes", rn.Machine, old, to))
			}
			if isPseudo(old) || isPseudo(to) {
				errs = append(errs, fmt.Errorf("rename of machine %q: %s and %s are not renamed", rn.Machine, spec.PseudoInit, spec.PseudoFinal))
			}
		}
		if len(rn.From) == 0 {
			errs = append(errs, fmt.Errorf("rename of machine %q: no spec hash to rename from", rn.Machine))
		}
		for _, h := range rn.From {
			if h == m.hash {
				errs = append(errs, fmt.Errorf("rename of machine %q: from hash %s is the machine's own", rn.Machine, h))
				continue
			}
			if r.by[m.name] == nil {
				r.by[m.name] = map[string]*Rename{}
			}
			if r.by[m.name][h] != nil {
				errs = append(errs, fmt.Errorf("rename of machine %q: hash %s is renamed from twice", rn.Machine, h))
				continue
			}
			r.by[m.name][h] = rn
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("renames: %w", err)
	}
	return r, nil
}

func isPseudo(name string) bool { return name == spec.PseudoInit || name == spec.PseudoFinal }

// Translate renames the state and event of a message of machine written by
// the spec of hash, and returns the spec hash the message then carries.
// ok is false (and the names come back unchanged) when no rename applies.
func (r *Renamer) Translate(machine, hash, state, event string) (newState, newEvent, newHash string, ok bool) {
	if r == nil {
		return state, event, hash, false
	}
	rn := r.by[machine][hash]
	if rn == nil {
		return state, event, hash, false
	}
	if to, found := rn.States[state]; found {
		state = to
	}
	if to, found := rn.Events[event]; found {
		event = to
	}
	return state, event, r.hash[machine], true
}

// translate renames s in place; it reports whether it did.
func (r *Renamer) translate(s *SystemContext) bool {
	st, ev, h, ok := r.Translate(s.MachineName, s.SpecHash, s.CurrentState, s.CurrentEvent)
	if ok {
		s.CurrentState, s.CurrentEvent, s.SpecHash = st, ev, h
	}
	return ok
}

// stamp renames s when a rename applies, and otherwise gives a message
// with no spec hash (another producer's) m's. A message of another version
// keeps its hash: its names are that version's, and the handler that runs
// it (the deployed function, which may have the rename this engine lacks,
// as an operator's lfsm does) must still recognise it. Stamping m's hash on
// it would make an old name, or a name the versions give to different
// states, pass for m's.
func (e *Engine) stamp(m *Machine, s *SystemContext) {
	if e.renamer.translate(s) {
		return
	}
	if s.SpecHash == "" {
		s.SpecHash = m.hash
	}
}

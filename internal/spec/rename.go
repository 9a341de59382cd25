package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A rename map (lfsm deploy --rename FILE) says how the executions in
// flight on the deployed spec continue on a new one whose states or events
// have other names (docs/deploy.md, "Renaming states"):
//
//	from: fsm.v1.yaml      # the deployed spec, relative to this file
//	machines:
//	  Order:
//	    states:
//	      Packing: Boxing  # old name: new name
//	    events:
//	      go: proceed
//
// LoadRenames reads one and checks it against both specs.

// Rename map diagnostic codes (docs/deploy.md lists them).
const (
	CodeRenameUnknownMachine = "rename-unknown-machine"
	CodeRenameRemovedMachine = "rename-removed-machine"
	CodeRenameUnknownSource  = "rename-unknown-source"
	CodeRenameUnknownTarget  = "rename-unknown-target"
	CodeRenameReserved       = "rename-reserved-name"
	CodeRenameFromSpec       = "rename-from-spec"
)

// RenameRules lists the codes LoadRenames reports beyond the shape codes it
// shares with the spec (yaml-syntax, wrong-type, unknown-key, duplicate-key,
// missing-field, file-not-found, read-error).
func RenameRules() []Rule {
	return []Rule{
		{CodeRenameUnknownMachine, SeverityError, "a machine of the rename map is not in the from spec"},
		{CodeRenameRemovedMachine, SeverityError, "a machine of the rename map is not in the new spec: there is nothing to continue on"},
		{CodeRenameUnknownSource, SeverityError, "an old state or event name is not in the machine of the from spec"},
		{CodeRenameUnknownTarget, SeverityError, "a new state or event name is not in the machine of the new spec"},
		{CodeRenameReserved, SeverityError, "pseudo_init or pseudo_final renamed: they are the same in every spec"},
		{CodeRenameFromSpec, SeverityError, "the from spec does not load"},
	}
}

var (
	renameTopKeys     = []string{"from", "machines"}
	renameMachineKeys = []string{"states", "events"}
)

// Renames is a checked rename map.
type Renames struct {
	// File is the map's path, From the spec it renames from (as loaded).
	File string
	From *Spec
	// Machines in the order the file lists them.
	Machines []MachineRename
}

// MachineRename renames one machine's states and events, old name to new.
type MachineRename struct {
	Machine string
	// Range covers the machine's key in the file.
	Range  Range
	States map[StateName]StateName
	Events map[EventName]EventName
}

// Machine returns the rename of the named machine, or nil.
func (r *Renames) Machine(name string) *MachineRename {
	if r == nil {
		return nil
	}
	for i := range r.Machines {
		if r.Machines[i].Machine == name {
			return &r.Machines[i]
		}
	}
	return nil
}

// LoadRenames reads the rename map at path, loads the spec its from key
// names (relative to the map's directory) and checks every name against
// that spec (old names) and next (new names). Every problem is reported at
// once, at file:line:col; the map is nil when there are errors.
func LoadRenames(path string, next *Spec) (*Renames, Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		code, hint := CodeReadError, "check the file's permissions"
		if errors.Is(err, fs.ErrNotExist) {
			code, hint = CodeFileNotFound, "pass the rename map's path to --rename"
		}
		return nil, Diagnostics{{Severity: SeverityError, Code: code, Summary: fmt.Sprintf("cannot read rename map %s", path),
			Detail: err.Error(), Hint: hint, Range: Range{Filename: path, Start: Pos{Line: 1, Column: 1}, End: Pos{Line: 1, Column: 1}}}}
	}
	p := &parser{src: newSource(path, src), budget: 4*len(src) + 1000}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		p.add(Diagnostic{Severity: SeverityError, Code: CodeMissingField, Summary: "the rename map is empty",
			Hint: "write from: (the deployed spec) and machines:; see docs/deploy.md", Range: p.src.lineRange(1)})
		return nil, p.diags
	case err != nil:
		p.syntaxError(err)
		return nil, p.diags
	}
	r := &Renames{File: path}
	rw := renameWalk{p: p, r: r, next: next, dir: filepath.Dir(path)}
	rw.top(&doc)
	p.diags.Sort()
	p.diags = slices.Compact(p.diags)
	if p.diags.HasErrors() {
		return nil, p.diags
	}
	return r, p.diags
}

type renameWalk struct {
	p    *parser
	r    *Renames
	next *Spec
	dir  string
}

func (w *renameWalk) errorf(code string, rng Range, hint, format string, args ...any) {
	w.p.add(Diagnostic{Severity: SeverityError, Code: code, Summary: fmt.Sprintf(format, args...), Hint: hint, Range: rng})
}

func (w *renameWalk) top(doc *yaml.Node) {
	p := w.p
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		w.errorf(CodeWrongType, p.src.rangeOf(root), "write from: and machines: keys; see docs/deploy.md", "the rename map is %s, not a mapping", describe(root))
		return
	}
	kv := p.pairs(root, "the rename map", renameTopKeys, "")
	from, fromRange, ok := p.name(kv, "from", "the rename map", root, "name the deployed spec file, e.g. from: fsm.v1.yaml (git show HEAD~1:fsm.yaml > fsm.v1.yaml)")
	if ok {
		fp := from
		if !filepath.IsAbs(fp) {
			fp = filepath.Join(w.dir, fp)
		}
		old, diags := Load(fp)
		if diags.HasErrors() {
			w.errorf(CodeRenameFromSpec, fromRange, "the from spec must be the one deployed now, and valid",
				"from spec %s does not load: %s", from, firstError(diags))
		} else {
			w.r.From = old
		}
	}
	pr, ok := kv.get("machines")
	if !ok {
		w.errorf(CodeMissingField, p.src.rangeOf(root), "add machines: with a mapping per machine of states: and events:", "the rename map has no machines")
		return
	}
	ms := resolve(pr.val)
	if ms.Kind != yaml.MappingNode {
		w.errorf(CodeWrongType, p.src.rangeOf(pr.val), "machines: maps each machine's name to its states: and events:", "machines of the rename map must be a mapping, not %s", describe(ms))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(ms.Content); i += 2 {
		k, v := resolve(ms.Content[i]), resolve(ms.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) {
			w.errorf(CodeWrongType, p.src.rangeOf(k), "", "a machine of the rename map is named by %s, not a name", describe(k))
			continue
		}
		if seen[k.Value] {
			w.errorf(CodeDuplicateKey, p.src.rangeOf(k), "merge the two entries", "machine %q appears more than once in the rename map", k.Value)
			continue
		}
		seen[k.Value] = true
		w.machine(k, v)
	}
}

func firstError(d Diagnostics) string {
	for _, x := range d {
		if x.Severity == SeverityError {
			return location(x.Range, "") + ": " + x.Summary
		}
	}
	return ""
}

func (w *renameWalk) machine(k, v *yaml.Node) {
	p := w.p
	name := k.Value
	mr := MachineRename{Machine: name, Range: p.src.rangeOf(k), States: map[StateName]StateName{}, Events: map[EventName]EventName{}}
	var old, next *Machine
	if w.r.From != nil {
		if old = w.r.From.Machine(name); old == nil {
			w.errorf(CodeRenameUnknownMachine, mr.Range, didYouMean(name, w.r.From.MachineNames(), "the from spec's machines: "+strings.Join(w.r.From.MachineNames(), ", ")),
				"machine %q is not in the from spec %s", name, w.r.From.Root)
		}
	}
	if w.next != nil {
		if next = w.next.Machine(name); next == nil {
			w.errorf(CodeRenameRemovedMachine, mr.Range, "a rename map cannot continue executions of a machine the new spec drops: let them finish (or stop them), or keep the machine",
				"machine %q is not in the new spec %s", name, w.next.Root)
		}
	}
	if isNull(v) {
		w.r.Machines = append(w.r.Machines, mr)
		return
	}
	if v.Kind != yaml.MappingNode {
		w.errorf(CodeWrongType, p.src.rangeOf(v), "write states: and events: under the machine", "machine %q of the rename map is %s, not a mapping", name, describe(v))
		return
	}
	kv := p.pairs(v, fmt.Sprintf("machine %q of the rename map", name), renameMachineKeys, "")
	var oldStates, newStates, oldEvents, newEvents []string
	if old != nil {
		oldStates, oldEvents = names(old)
	}
	if next != nil {
		newStates, newEvents = names(next)
	}
	w.pairsOf(kv, "states", name, "state", oldStates, newStates, old != nil, next != nil, func(o, n string) {
		mr.States[StateName(o)] = StateName(n)
	})
	w.pairsOf(kv, "events", name, "event", oldEvents, newEvents, old != nil, next != nil, func(o, n string) {
		mr.Events[EventName(o)] = EventName(n)
	})
	w.r.Machines = append(w.r.Machines, mr)
}

// names lists a machine's states and the events of its transitions.
func names(m *Machine) (states, events []string) {
	for _, s := range m.States {
		states = append(states, string(s.Name))
		for _, t := range s.Transitions {
			if !slices.Contains(events, string(t.Event)) {
				events = append(events, string(t.Event))
			}
		}
	}
	return states, events
}

// pairsOf reads the old: new mapping under key and checks each side.
func (w *renameWalk) pairsOf(kv *fields, key, machine, kind string, olds, news []string, checkOld, checkNew bool, add func(o, n string)) {
	p := w.p
	pr, v, ok := kv.optional(key)
	if !ok {
		return
	}
	if v.Kind != yaml.MappingNode {
		w.errorf(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("write one old: new pair per line, e.g. %s:\n    Old: New", key),
			"%s of machine %q must map old names to new ones, not %s", key, machine, describe(v))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		kn, vn := resolve(v.Content[i]), resolve(v.Content[i+1])
		if kn.Kind != yaml.ScalarNode || isNull(kn) || vn.Kind != yaml.ScalarNode || isNull(vn) || strings.TrimSpace(vn.Value) == "" {
			bad := kn
			if kn.Kind == yaml.ScalarNode && !isNull(kn) {
				bad = vn
			}
			w.errorf(CodeWrongType, p.src.rangeOf(bad), "write Old: New with two names", "a %s rename of machine %q must be old: new names, not %s", kind, machine, describe(bad))
			continue
		}
		o, n := kn.Value, vn.Value
		if seen[o] {
			w.errorf(CodeDuplicateKey, p.src.rangeOf(kn), "a name is renamed to one new name", "%s %q is renamed more than once in machine %q", kind, o, machine)
			continue
		}
		seen[o] = true
		bad := false
		for _, x := range []*yaml.Node{kn, vn} {
			if x.Value == PseudoInit || x.Value == PseudoFinal {
				w.errorf(CodeRenameReserved, p.src.rangeOf(x), "remove this line", "%s is the same in every spec and is not renamed", x.Value)
				bad = true
			}
		}
		if bad {
			continue
		}
		if checkOld && !slices.Contains(olds, o) {
			w.errorf(CodeRenameUnknownSource, p.src.rangeOf(kn), didYouMean(o, olds, ""), "%s %q is not in machine %q of the from spec %s", kind, o, machine, w.r.From.Root)
			bad = true
		}
		if checkNew && !slices.Contains(news, n) {
			w.errorf(CodeRenameUnknownTarget, p.src.rangeOf(vn), didYouMean(n, news, ""), "%s %q is not in machine %q of the new spec %s", kind, n, machine, w.next.Root)
			bad = true
		}
		if !bad {
			add(o, n)
		}
	}
}

package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Keys of each mapping of the format, in the order the docs list them.
var (
	topKeys        = []string{"machines"}
	machineKeys    = []string{"name", "max_retries", "max_steps", "retry_delay", "max_retry_delay", "states"}
	importKeys     = []string{"import"}
	stateKeys      = []string{"name", "initial", "final", "entry_action", "do_action", "exit_action", "transitions"}
	transitionKeys = []string{"target", "event", "action", "local"}
)

// extensionPrefix starts keys that lfsm ignores at any level, so that a spec can
// hold anchors for reuse (x-defaults: &defaults ...) and tool-specific data.
const extensionPrefix = "x-"

// importEntry is a "- import: path" entry of a machines list.
type importEntry struct {
	path string
	// rng covers the path value.
	rng Range
}

// entry is one item of a file's machines list: a machine or an import.
type entry struct {
	machine *Machine
	imp     *importEntry
}

// file is one parsed spec file, before its imports are resolved.
type file struct {
	name    string
	entries []entry
}

// Parse parses one file's bytes. It does not resolve imports: their entries are
// skipped, and Load is the way to read a spec that has them. Diagnostics cover
// syntax and shape (types, unknown keys, missing fields); Validate checks the rest.
func Parse(filename string, src []byte) (*Spec, Diagnostics) {
	f, d := parseFile(filename, src)
	s := &Spec{Root: filename, Files: []string{filename}}
	for _, e := range f.entries {
		if e.machine != nil {
			s.Machines = append(s.Machines, e.machine)
		}
	}
	return s, d
}

// parser walks a yaml.Node tree, building the model and collecting diagnostics.
type parser struct {
	src   *source
	diags Diagnostics
	// budget caps the nodes the walk visits, so that aliases cannot make a small
	// file expand into an enormous one.
	budget    int
	exhausted bool
}

var yamlErrLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func parseFile(filename string, src []byte) (*file, Diagnostics) {
	p := &parser{src: newSource(filename, src), budget: 4*len(src) + 1000}
	f := &file{name: filename}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		p.add(diag(CodeNoMachines, p.src.lineRange(1), "the file is empty: it defines no machines", "",
			"start the file with a machines: list; see docs/spec.md"))
		return f, p.diags
	case err != nil:
		p.syntaxError(err)
		return f, p.diags
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != nil && !errors.Is(err, io.EOF) {
		p.syntaxError(err)
	} else if err == nil {
		p.add(diag(CodeYAMLSyntax, p.src.rangeOf(&extra), "the file holds more than one YAML document",
			"lfsm reads only the first document of a spec file",
			"remove the \"---\" separator and merge the machines into one machines: list"))
	}
	p.top(f, &doc)
	if p.exhausted {
		// What was read before the budget ran out is arbitrary: keep none of it.
		f.entries = nil
	}
	// Aliases make the walk visit a node more than once; report each problem once.
	p.diags.Sort()
	p.diags = slices.Compact(p.diags)
	return f, p.diags
}

func (p *parser) add(d Diagnostic) { p.diags = append(p.diags, d) }

func (p *parser) syntaxError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			line = n
		}
		msg = m[2]
	}
	// yaml.v3 reports the line where the construct it was reading began
	// (often the machines: line for an indentation error far below it), and
	// no column: find the line that breaks the file, and its first token.
	line = p.src.firstBadLine(line)
	r := p.src.lineRange(line)
	r.Start = p.src.posAt(p.src.firstToken(line))
	p.add(diag(CodeYAMLSyntax, r, "invalid YAML: "+msg, err.Error(),
		"check indentation (spaces, not tabs), colons after keys and closing quotes or brackets near this line"))
}

// visit charges one node against the budget and reports when it is spent.
func (p *parser) visit() bool {
	if p.exhausted {
		return false
	}
	p.budget--
	if p.budget < 0 {
		p.exhausted = true
		p.add(diag(CodeTooManyAliases, p.src.lineRange(1), "aliases expand the document far beyond its size",
			"none of the file's machines were read", "write the repeated parts out, or reuse fewer nested aliases"))
		return false
	}
	return true
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names the kind of a node for messages: "a list", "true", "\"x\"".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return strconv.Quote(n.Value)
	}
	return "an alias"
}

// pair is one key/value of a mapping.
type pair struct {
	key, val *yaml.Node
}

// fields holds the known keys of one mapping: vals[i] is the pair of known[i],
// with a nil key when absent. Specs have few keys per mapping, so a linear
// lookup beats a map and allocates nothing.
type fields struct {
	known []string
	vals  [8]pair
}

// optional returns the pair of key k and its resolved value, or ok false when
// the key is absent or null (an optional key's default applies).
func (f *fields) optional(k string) (pr pair, v *yaml.Node, ok bool) {
	pr, ok = f.get(k)
	if !ok {
		return pair{}, nil, false
	}
	v = resolve(pr.val)
	if isNull(v) {
		return pair{}, nil, false
	}
	return pr, v, true
}

// get returns the pair of key k and whether the mapping has it.
func (f *fields) get(k string) (pair, bool) {
	for i, name := range f.known {
		if name == k {
			return f.vals[i], f.vals[i].key != nil
		}
	}
	return pair{}, false
}

// pairs returns the known keys of mapping n, first occurrence of each, with YAML
// merge keys ("<<: *base") expanded. It reports unknown, duplicate and
// non-string keys. what names the mapping in messages ("state \"A\"").
func (p *parser) pairs(n *yaml.Node, what string, known []string, extraHint string) *fields {
	f := &fields{known: known}
	p.collect(n, what, extraHint, f, 0)
	return f
}

func (p *parser) collect(n *yaml.Node, what string, extraHint string, out *fields, depth int) {
	var merges []*yaml.Node
	var seen fields // keys set by this mapping itself, for duplicate detection
	seen.known = out.known
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !p.visit() {
			return
		}
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		rk := resolve(k)
		if rk.Kind != yaml.ScalarNode || isNull(rk) {
			p.add(diag(CodeWrongType, p.src.rangeOf(k), fmt.Sprintf("a key of %s is %s, not a name", what, describe(rk)), "",
				"keys are plain words such as "+strconv.Quote(out.known[0])))
			continue
		}
		name := rk.Value
		if strings.HasPrefix(name, extensionPrefix) {
			continue
		}
		idx := slices.Index(out.known, name)
		if idx < 0 {
			hint := didYouMean(name, out.known, extraHint)
			if hint == "" {
				hint = "valid keys here: " + strings.Join(out.known, ", ")
			}
			p.add(diag(CodeUnknownKey, p.src.rangeOf(k), fmt.Sprintf("unknown key %q in %s", name, what), "", hint))
			continue
		}
		if seen.vals[idx].key != nil {
			p.add(diag(CodeDuplicateKey, p.src.rangeOf(k), fmt.Sprintf("key %q appears more than once in %s", name, what),
				"only the first occurrence is used", "remove the repeated key"))
			continue
		}
		seen.vals[idx] = pair{key: k, val: v}
		// Explicit keys win over merged ones.
		out.vals[idx] = pair{key: k, val: v}
	}
	// Earlier merges win over later ones; none override explicit keys.
	for _, m := range merges {
		m = resolve(m)
		var sources []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{m}
		case yaml.SequenceNode:
			sources = m.Content
		}
		if len(sources) == 0 {
			sources = []*yaml.Node{m}
		}
		for _, src := range sources {
			src = resolve(src)
			if src.Kind != yaml.MappingNode || depth > 8 {
				p.add(diag(CodeWrongType, p.src.rangeOf(m), fmt.Sprintf("a merge key (<<) in %s must refer to a mapping, not %s", what, describe(src)), "",
					"write <<: *anchor where the anchor names a mapping"))
				continue
			}
			sub := &fields{known: out.known}
			p.collect(src, what, extraHint, sub, depth+1)
			for i := range out.known {
				if out.vals[i].key == nil {
					out.vals[i] = sub.vals[i]
				}
			}
		}
	}
}

// top walks the document: a mapping with a machines list.
func (p *parser) top(f *file, doc *yaml.Node) {
	if len(doc.Content) == 0 {
		p.add(diag(CodeNoMachines, p.src.lineRange(1), "the file defines no machines", "",
			"start the file with a machines: list; see docs/spec.md"))
		return
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		p.add(diag(CodeNoMachines, p.src.rangeOf(root), "the file defines no machines", "",
			"start the file with a machines: list; see docs/spec.md"))
		return
	}
	if root.Kind != yaml.MappingNode {
		p.add(diag(CodeWrongType, p.src.rangeOf(root), fmt.Sprintf("the top level of a spec must be a mapping with a machines key, not %s", describe(root)), "",
			"start the file with a machines: list; see docs/spec.md"))
		return
	}
	kv := p.pairs(root, "the top level", topKeys, "")
	ms, ok := kv.get("machines")
	if !ok {
		p.add(diag(CodeNoMachines, p.src.rangeOf(root), "the file has no machines key", "",
			"list the machines under a top-level machines: key"))
		return
	}
	list := resolve(ms.val)
	switch {
	case isNull(list) || (list.Kind == yaml.SequenceNode && len(list.Content) == 0):
		p.add(diag(CodeNoMachines, p.src.rangeOf(ms.key), "the machines list is empty", "",
			"add at least one machine (- name: ...) or an import (- import: other.yaml)"))
		return
	case list.Kind != yaml.SequenceNode:
		p.add(diag(CodeWrongType, p.src.rangeOf(ms.val), fmt.Sprintf("machines must be a list, not %s", describe(list)), "",
			"write each machine as a list item starting with \"- name:\""))
		return
	}
	for _, item := range list.Content {
		if !p.visit() {
			return
		}
		it := resolve(item)
		if it.Kind != yaml.MappingNode {
			p.add(diag(CodeWrongType, p.src.rangeOf(item), fmt.Sprintf("a machines entry must be a mapping, not %s", describe(it)), "",
				"write a machine as \"- name: ...\" with its states, or an import as \"- import: path\""))
			continue
		}
		if e := p.importEntry(it); e != nil {
			f.entries = append(f.entries, entry{imp: e})
			continue
		} else if hasKey(it, "import") {
			continue
		}
		f.entries = append(f.entries, entry{machine: p.machine(it)})
	}
}

// hasKey reports whether mapping n has key k (not counting merges).
func hasKey(n *yaml.Node, k string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if rk := resolve(n.Content[i]); rk.Kind == yaml.ScalarNode && rk.Value == k {
			return true
		}
	}
	return false
}

// importEntry parses an "- import: path" entry; nil when n is not one or is broken.
func (p *parser) importEntry(n *yaml.Node) *importEntry {
	if !hasKey(n, "import") {
		return nil
	}
	kv := p.pairs(n, "an import entry", importKeys, "an import entry holds only the import key; declare machines in their own list item")
	imp, _ := kv.get("import")
	v := resolve(imp.val)
	switch {
	case isNull(v) || (v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) == ""):
		p.add(diag(CodeMissingField, p.src.rangeOf(imp.key), "import has no path", "",
			"name the file to import, relative to this file: import: other/fsm.yaml"))
		return nil
	case v.Kind != yaml.ScalarNode:
		p.add(diag(CodeWrongType, p.src.rangeOf(imp.val), fmt.Sprintf("import must be a file path, not %s", describe(v)), "",
			"import one file per entry: - import: other/fsm.yaml"))
		return nil
	}
	return &importEntry{path: v.Value, rng: p.src.rangeOf(imp.val)}
}

// name reads a required name-like value (a non-empty scalar). The bool is false
// when the value is missing or malformed (a diagnostic was then added).
func (p *parser) name(kv *fields, key, what string, at *yaml.Node, hint string) (string, Range, bool) {
	pr, ok := kv.get(key)
	if !ok {
		p.add(diag(CodeMissingField, p.src.rangeOf(at), fmt.Sprintf("%s has no %s", what, key), "", hint))
		return "", Range{}, false
	}
	v := resolve(pr.val)
	switch {
	case isNull(v) || (v.Kind == yaml.ScalarNode && strings.TrimSpace(v.Value) == ""):
		p.add(diag(CodeMissingField, p.src.rangeOf(pr.key), fmt.Sprintf("%s has an empty %s", what, key), "", hint))
		return "", Range{}, false
	case v.Kind != yaml.ScalarNode:
		p.add(diag(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s must be a single name, not %s", key, what, describe(v)), "", hint))
		return "", Range{}, false
	}
	return v.Value, p.src.rangeOf(pr.val), true
}

// YAML 1.1 booleans, which the Python framework's YAML reader accepted.
var yaml11Bools = map[string]bool{
	"yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// boolean reads an optional boolean; absent or null is false.
func (p *parser) boolean(kv *fields, key, what string) bool {
	pr, v, ok := kv.optional(key)
	if !ok {
		return false
	}
	if v.Kind == yaml.ScalarNode {
		if v.Tag == "!!bool" {
			var b bool
			if err := v.Decode(&b); err == nil {
				return b
			}
		}
		if b, ok := yaml11Bools[v.Value]; ok && v.Style == 0 {
			return b
		}
	}
	p.add(diag(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s must be true or false, not %s", key, what, describe(v)), "",
		fmt.Sprintf("write %s: true, or remove the key (it defaults to false)", key)))
	return false
}

// integer reads an optional integer >= minimum; nil when absent or invalid.
func (p *parser) integer(kv *fields, key, what, code string, minimum int, hint string) *int {
	pr, v, ok := kv.optional(key)
	if !ok {
		return nil
	}
	if v.Kind != yaml.ScalarNode {
		p.add(diag(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s must be an integer, not %s", key, what, describe(v)), "", hint))
		return nil
	}
	var n int
	if v.Tag != "!!int" || v.Decode(&n) != nil || n < minimum {
		rule := "a non-negative integer"
		if minimum > 0 {
			rule = fmt.Sprintf("an integer of at least %d", minimum)
		}
		p.add(diag(code, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s must be %s, not %s", key, what, rule, describe(v)), "", hint))
		return nil
	}
	return &n
}

// seconds reads an optional backoff in whole seconds, from 1 to
// MaxRetryDelayLimit.
func (p *parser) seconds(kv *fields, key, what, hint string) *int {
	n := p.integer(kv, key, what, CodeInvalidRetryDelay, 1, hint)
	if n == nil || *n <= MaxRetryDelayLimit {
		return n
	}
	pr, v, _ := kv.optional(key)
	p.add(diag(CodeInvalidRetryDelay, p.src.rangeOf(pr.val),
		fmt.Sprintf("%s of %s must be at most %d seconds (7 days), not %s", key, what, MaxRetryDelayLimit, describe(v)), "",
		"for a longer wait between attempts, park the execution in a state of its own (a timer with fsm.Context.Delay, or a waiting state an outside event ends)"))
	return nil
}

// action reads an optional action reference.
func (p *parser) action(kv *fields, key, what string) *ActionRef {
	pr, v, ok := kv.optional(key)
	if !ok {
		return nil
	}
	const hint = "name the action as import/path.Identifier (for example example.com/shop/actions.ChargeCard), or remove the key"
	if v.Kind != yaml.ScalarNode {
		p.add(diag(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s must be one action reference, not %s", key, what, describe(v)), "", hint))
		return nil
	}
	if strings.TrimSpace(v.Value) == "" {
		p.add(diag(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s is an empty action reference", key, what), "", hint))
		return nil
	}
	return &ActionRef{Ref: v.Value, Range: p.src.rangeOf(pr.val)}
}

// list returns the items of an optional list value; nil when absent or null.
func (p *parser) list(kv *fields, key, what, hint string) []*yaml.Node {
	pr, v, ok := kv.optional(key)
	if !ok {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(diag(CodeWrongType, p.src.rangeOf(pr.val), fmt.Sprintf("%s of %s must be a list, not %s", key, what, describe(v)), "", hint))
		return nil
	}
	return v.Content
}

// eachMapping calls fn for every item of the list under key that is a mapping
// (a state, a transition), and reports each item that is not, as a kind of
// what, with itemHint. It stops when the parse budget is spent.
func (p *parser) eachMapping(kv *fields, key, what, kind, listHint, itemHint string, fn func(*yaml.Node)) {
	for _, item := range p.list(kv, key, what, listHint) {
		if !p.visit() {
			return
		}
		it := resolve(item)
		if it.Kind != yaml.MappingNode {
			p.add(diag(CodeWrongType, p.src.rangeOf(item), fmt.Sprintf("a %s of %s must be a mapping, not %s", kind, what, describe(it)), "", itemHint))
			continue
		}
		fn(it)
	}
}

func (p *parser) machine(n *yaml.Node) *Machine {
	m := &Machine{Range: p.src.rangeOf(n)}
	what := "machine"
	if pr, ok := nameOf(n); ok {
		what = fmt.Sprintf("machine %q", pr)
	}
	kv := p.pairs(n, what, machineKeys, "")
	if name, r, ok := p.name(kv, "name", "machine", n, "give the machine a unique name: name: Order"); ok {
		m.Name, m.NameRange = name, r
	} else {
		m.NameRange = Range{Filename: m.Range.Filename, Start: m.Range.Start, End: m.Range.Start}
	}
	m.MaxRetries = p.integer(kv, "max_retries", what, CodeInvalidMaxRetries, 0,
		"write a whole number such as max_retries: 3 (0 means no retry), or remove the key for the default 5")
	m.MaxSteps = p.integer(kv, "max_steps", what, CodeInvalidMaxSteps, 1,
		"write a whole number of at least 1 such as max_steps: 1000, or remove the key for the default 10000")
	m.RetryDelay = p.seconds(kv, "retry_delay", what,
		"write a whole number of seconds such as retry_delay: 30, or remove the key for the default 1")
	m.MaxRetryDelay = p.seconds(kv, "max_retry_delay", what,
		"write a whole number of seconds such as max_retry_delay: 3600, or remove the key for the default 60")
	if m.RetryDelay != nil && m.EffectiveRetryDelay() > m.EffectiveMaxRetryDelay() {
		pr, _, _ := kv.optional("retry_delay")
		p.add(diag(CodeInvalidRetryDelay, p.src.rangeOf(pr.val),
			fmt.Sprintf("retry_delay of %s (%d s) is longer than its max_retry_delay (%d s), which caps every backoff", what, m.EffectiveRetryDelay(), m.EffectiveMaxRetryDelay()), "",
			fmt.Sprintf("raise max_retry_delay to at least %d, or lower retry_delay", m.EffectiveRetryDelay())))
		m.RetryDelay = nil
	}
	p.eachMapping(kv, "states", what, "state", "write each state as a list item starting with \"- name:\"",
		"write a state as \"- name: ...\" followed by its keys", func(it *yaml.Node) {
			m.States = append(m.States, p.state(it, what))
		})
	return m
}

// nameOf peeks at the name of a mapping, for messages about its other keys.
func nameOf(n *yaml.Node) (string, bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "name" && v.Kind == yaml.ScalarNode && !isNull(v) && v.Value != "" {
			return v.Value, true
		}
	}
	return "", false
}

func (p *parser) state(n *yaml.Node, machine string) *State {
	s := &State{Range: p.src.rangeOf(n)}
	what := "state of " + machine
	if name, ok := nameOf(n); ok {
		what = fmt.Sprintf("state %q", name)
	}
	kv := p.pairs(n, what, stateKeys, "")
	if name, r, ok := p.name(kv, "name", "state", n, "give the state a name unique in its machine: name: Shipped"); ok {
		s.Name, s.NameRange = StateName(name), r
	} else {
		s.NameRange = Range{Filename: s.Range.Filename, Start: s.Range.Start, End: s.Range.Start}
	}
	s.Initial = p.boolean(kv, "initial", what)
	s.Final = p.boolean(kv, "final", what)
	s.EntryAction = p.action(kv, "entry_action", what)
	s.DoAction = p.action(kv, "do_action", what)
	s.ExitAction = p.action(kv, "exit_action", what)
	p.eachMapping(kv, "transitions", what, "transition", "write each transition as a list item starting with \"- target:\"",
		"write a transition as \"- target: State\" with \"event: name\" below it", func(it *yaml.Node) {
			s.Transitions = append(s.Transitions, p.transition(it, what))
		})
	return s
}

func (p *parser) transition(n *yaml.Node, state string) *Transition {
	t := &Transition{Range: p.src.rangeOf(n)}
	what := "transition of " + state
	kv := p.pairs(n, what, transitionKeys, "")
	if target, r, ok := p.name(kv, "target", what, n, "name the state this transition leads to: target: Shipped"); ok {
		t.Target, t.TargetRange = StateName(target), r
	}
	if event, r, ok := p.name(kv, "event", what, n, "name the event a do action returns to take this transition: event: done"); ok {
		t.Event, t.EventRange = EventName(event), r
	}
	t.Action = p.action(kv, "action", what)
	t.Local = p.boolean(kv, "local", what)
	return t
}

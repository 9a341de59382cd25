package spec

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ValidateOptions selects optional checks of Validate.
type ValidateOptions struct {
	// CheckActions reports action references that are not Go symbol references
	// (import/path.Identifier). Leave it off for specs written for the Python
	// framework, whose references are dotted class paths.
	CheckActions bool
}

// Validate runs the semantic rules over a loaded spec and returns every problem,
// sorted. It does not repeat what Load reports (syntax, types, unknown keys).
// Its analyses are linear in the number of states and transitions.
func Validate(s *Spec, opts ValidateOptions) Diagnostics {
	if s == nil {
		return nil
	}
	var d Diagnostics
	first := make(map[string]*Machine, len(s.Machines))
	for _, m := range s.Machines {
		if m == nil {
			continue
		}
		if m.Name != "" {
			if prev, ok := first[m.Name]; ok {
				d = append(d, diag(CodeDuplicateMachine, m.NameRange,
					fmt.Sprintf("machine %q is defined more than once", m.Name),
					"first defined at "+location(prev.NameRange, ""),
					"rename one of the machines: names must be unique across the spec and all its imports"))
			} else {
				first[m.Name] = m
			}
		}
		v := &machineCheck{m: m, opts: opts}
		v.run()
		d = append(d, v.diags...)
	}
	d.Sort()
	return d
}

// machineCheck validates one machine.
type machineCheck struct {
	m     *Machine
	opts  ValidateOptions
	diags Diagnostics

	index    map[StateName]int
	dup      []bool
	initials []int
	finals   int
	names    []string // lazily built for suggestions
}

func (c *machineCheck) add(d Diagnostic) { c.diags = append(c.diags, d) }

func (c *machineCheck) label() string {
	if c.m.Name == "" {
		return "unnamed machine"
	}
	return fmt.Sprintf("machine %q", c.m.Name)
}

func (c *machineCheck) where() Range {
	if c.m.NameRange.Filename != "" || c.m.NameRange.Start.Line != 0 {
		return c.m.NameRange
	}
	return c.m.Range
}

func isReserved(name string) bool { return name == PseudoInit || name == PseudoFinal }

// csr is a graph in compressed sparse row form: the successors of v are
// adj[start[v]:start[v+1]].
type csr struct {
	start, adj []int
}

func newCSR(n int, from, to []int) csr {
	g := csr{start: make([]int, n+1), adj: make([]int, len(from))}
	for _, f := range from {
		g.start[f+1]++
	}
	for i := 0; i < n; i++ {
		g.start[i+1] += g.start[i]
	}
	next := append([]int(nil), g.start[:n]...)
	for i, f := range from {
		g.adj[next[f]] = to[i]
		next[f]++
	}
	return g
}

func (g csr) succ(v int) []int { return g.adj[g.start[v]:g.start[v+1]] }

// bfs marks every node reachable from roots.
func (g csr) bfs(roots []int) []bool {
	seen := make([]bool, len(g.start)-1)
	queue := make([]int, 0, len(seen))
	for _, r := range roots {
		if !seen[r] {
			seen[r] = true
			queue = append(queue, r)
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range g.succ(v) {
			if !seen[w] {
				seen[w] = true
				queue = append(queue, w)
			}
		}
	}
	return seen
}

func (c *machineCheck) run() {
	m := c.m
	n := len(m.States)
	c.index = make(map[StateName]int, n)
	c.dup = make([]bool, n)
	for i, s := range m.States {
		if s.Name != "" {
			if j, ok := c.index[s.Name]; ok {
				c.dup[i] = true
				c.add(diag(CodeDuplicateState, s.NameRange,
					fmt.Sprintf("state %q is defined more than once in %s", s.Name, c.label()),
					"first defined at "+location(m.States[j].NameRange, ""),
					"rename one of the states, or merge them into one"))
			} else {
				c.index[s.Name] = i
			}
			if isReserved(string(s.Name)) {
				c.add(diag(CodeReservedName, s.NameRange, fmt.Sprintf("state name %q is reserved", s.Name),
					"pseudo_init and pseudo_final name the pseudo states every machine has",
					"rename the state"))
			}
		}
		if s.Initial {
			c.initials = append(c.initials, i)
		}
		if s.Final {
			c.finals++
		}
	}
	if len(c.initials) == 0 {
		c.add(diag(CodeNoInitialState, c.where(), fmt.Sprintf("%s has no initial state", c.label()), "",
			"mark the state where executions start with initial: true"))
	}
	for k, i := range c.initials {
		if k == 0 {
			continue
		}
		s := m.States[i]
		c.add(diag(CodeMultipleInitialStates, c.stateWhere(s),
			fmt.Sprintf("state %q is marked initial, but %s already starts at %q", s.Name, c.label(), m.States[c.initials[0]].Name),
			"a machine has exactly one initial state",
			"keep initial: true on one state only"))
	}
	if c.finals == 0 {
		c.add(diag(CodeNoFinalState, c.where(), fmt.Sprintf("%s has no final state", c.label()),
			"executions of it can never finish",
			"mark the state or states where executions end with final: true"))
	}

	// Edges, and the per-transition rules.
	var from, to, lfrom, lto []int
	type stateEvent struct {
		state int
		event EventName
	}
	events := make(map[stateEvent]*Transition)
	selfLoop := make([]bool, n)
	for i, s := range m.States {
		for _, t := range s.Transitions {
			if t == nil {
				continue
			}
			if t.Event != "" {
				if isReserved(string(t.Event)) {
					c.add(diag(CodeReservedName, t.EventRange, fmt.Sprintf("event name %q is reserved", t.Event),
						"pseudo_init and pseudo_final are the events of the pseudo states every machine has",
						"rename the event, and the value the do action returns"))
				}
				key := stateEvent{i, t.Event}
				if prev, ok := events[key]; ok {
					c.add(diag(CodeDuplicateEvent, t.EventRange,
						fmt.Sprintf("state %q has more than one transition on event %q", s.Name, t.Event),
						fmt.Sprintf("the first, at %s, targets %q; an event selects exactly one transition", location(prev.EventRange, ""), prev.Target),
						"rename the event of one of the transitions, or remove one"))
				} else {
					events[key] = t
				}
			}
			if t.Target == "" {
				continue
			}
			j, ok := c.index[t.Target]
			if !ok {
				c.add(diag(CodeUnknownTarget, t.TargetRange,
					fmt.Sprintf("transition %s targets unknown state %q", transitionLabel(s.Name, t.Event), t.Target), "",
					didYouMean(string(t.Target), c.stateNames(),
						fmt.Sprintf("declare a state named %q in %s, or target one of its states", t.Target, c.label()))))
				continue
			}
			from, to = append(from, i), append(to, j)
			if t.Local {
				lfrom, lto = append(lfrom, i), append(lto, j)
				if i == j {
					selfLoop[i] = true
				}
			}
		}
		c.stateRules(s)
	}

	g := newCSR(n, from, to)
	var reached []bool
	if len(c.initials) > 0 {
		reached = g.bfs(c.initials[:1])
		init := m.States[c.initials[0]]
		for i, s := range m.States {
			if !reached[i] && s.Name != "" && !c.dup[i] {
				c.add(diag(CodeUnreachableState, s.NameRange,
					fmt.Sprintf("state %q is unreachable from %q", s.Name, init.Name),
					"no chain of transitions leads to it from the initial state, so no execution enters it",
					"add a transition that targets it, or remove the state"))
			}
		}
	}
	if c.finals > 0 {
		var finals []int
		for i, s := range m.States {
			if s.Final {
				finals = append(finals, i)
			}
		}
		coReached := newCSR(n, to, from).bfs(finals)
		for i, s := range m.States {
			if coReached[i] || s.Name == "" || c.dup[i] || c.deadEnd(s) || (reached != nil && !reached[i]) {
				continue
			}
			c.add(diag(CodeFinalUnreachable, s.NameRange,
				fmt.Sprintf("no final state can be reached from state %q", s.Name),
				"executions that enter it may never finish",
				"add a transition from it, or from a state it leads to, towards a final state"))
		}
	}
	c.localCycles(newCSR(n, lfrom, lto), selfLoop)
}

func (c *machineCheck) stateWhere(s *State) Range {
	if s.NameRange.Start.Line != 0 {
		return s.NameRange
	}
	return s.Range
}

func (c *machineCheck) deadEnd(s *State) bool { return !s.Final && len(s.Transitions) == 0 }

func (c *machineCheck) stateNames() []string {
	if c.names == nil {
		c.names = make([]string, 0, len(c.m.States))
		for _, s := range c.m.States {
			if s.Name != "" {
				c.names = append(c.names, string(s.Name))
			}
		}
	}
	return c.names
}

// stateRules checks one state on its own: dead ends, do actions, references.
func (c *machineCheck) stateRules(s *State) {
	if s.Name != "" && c.deadEnd(s) {
		c.add(diag(CodeDeadEndState, s.NameRange, fmt.Sprintf("non-final state %q has no transitions", s.Name),
			"executions that reach it stall there forever",
			"add a transition out of it, or mark it final: true"))
	} else if s.Name != "" && !s.Final && s.DoAction == nil {
		c.add(diag(CodeNoDoAction, s.NameRange, fmt.Sprintf("non-final state %q has no do action", s.Name),
			"no action returns its next event, so executions wait there until an outside event arrives (lfsm send ID EVENT)",
			"add a do_action that returns the next event, unless the state waits for an outside event on purpose"))
	}
	if !c.opts.CheckActions {
		return
	}
	for _, a := range []*ActionRef{s.EntryAction, s.DoAction, s.ExitAction} {
		c.checkAction(a)
	}
	for _, t := range s.Transitions {
		if t != nil {
			c.checkAction(t.Action)
		}
	}
}

func (c *machineCheck) checkAction(a *ActionRef) {
	if a == nil {
		return
	}
	if _, _, ok := ParseGoRef(a.Ref); ok {
		return
	}
	c.add(diag(CodeNotGoSymbol, a.Range, fmt.Sprintf("action %q is not a Go symbol reference", a.Ref),
		"an action is named by the import path of its Go package, a dot, and an exported identifier in that package",
		goRefHint(a.Ref)))
}

func goRefHint(ref string) string {
	last := ref
	if i := strings.LastIndexAny(ref, "./"); i >= 0 {
		last = ref[i+1:]
	}
	slash := strings.LastIndexByte(ref, '/')
	dot := strings.LastIndexByte(ref, '.')
	switch {
	case slash > 0 && dot > slash && last != "" && !isUpper(last):
		return fmt.Sprintf("the identifier %q after the last dot must be exported: start it with an upper-case letter", last)
	case last != "" && isUpper(last):
		return fmt.Sprintf("write it as import/path.Identifier, for example example.com/shop/actions.%s", last)
	}
	return "write it as import/path.Identifier, for example example.com/shop/actions.ChargeCard"
}

func isUpper(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsUpper(r)
}

// localCycles reports each strongly connected component of the local-transition
// graph that holds a cycle, with Tarjan's algorithm run iteratively (linear, and
// safe on machines with very long chains).
func (c *machineCheck) localCycles(g csr, selfLoop []bool) {
	n := len(c.m.States)
	index := make([]int, n) // 0: not visited yet; else visit order + 1
	low := make([]int, n)
	onStack := make([]bool, n)
	var stack []int
	type frame struct{ v, e int }
	var call []frame
	counter := 0
	visit := func(v int) {
		counter++
		index[v], low[v] = counter, counter
		stack = append(stack, v)
		onStack[v] = true
		call = append(call, frame{v, g.start[v]})
	}
	for r := 0; r < n; r++ {
		if index[r] != 0 || g.start[r] == g.start[r+1] {
			continue
		}
		visit(r)
		for len(call) > 0 {
			f := &call[len(call)-1]
			v := f.v
			if f.e < g.start[v+1] {
				w := g.adj[f.e]
				f.e++
				if index[w] == 0 {
					visit(w)
				} else if onStack[w] {
					low[v] = min(low[v], index[w])
				}
				continue
			}
			call = call[:len(call)-1]
			if len(call) > 0 {
				u := call[len(call)-1].v
				low[u] = min(low[u], low[v])
			}
			if low[v] != index[v] {
				continue
			}
			var members []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				members = append(members, w)
				if w == v {
					break
				}
			}
			if len(members) > 1 || selfLoop[v] {
				c.reportLocalCycle(members)
			}
		}
	}
}

func (c *machineCheck) reportLocalCycle(members []int) {
	in := make(map[int]bool, len(members))
	first := members[0]
	for _, v := range members {
		in[v] = true
		first = min(first, v)
	}
	// Point at the first local transition of the cycle, in spec order.
	rng := c.m.States[first].NameRange
	for _, t := range c.m.States[first].Transitions {
		if t != nil && t.Local {
			if j, ok := c.index[t.Target]; ok && in[j] {
				rng = t.Range
				break
			}
		}
	}
	ordered := make([]int, 0, len(members))
	for i := range c.m.States {
		if in[i] {
			ordered = append(ordered, i)
		}
	}
	names := make([]string, 0, 6)
	for _, i := range ordered {
		if len(names) == 5 {
			names = append(names, fmt.Sprintf("%d more", len(ordered)-5))
			break
		}
		names = append(names, fmt.Sprintf("%q", c.m.States[i].Name))
	}
	list := names[0]
	if len(names) > 1 {
		list = strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
	what := "state"
	if len(ordered) > 1 {
		what = "states"
	}
	c.add(diag(CodeLocalCycle, rng, fmt.Sprintf("local transitions form a cycle through %s %s", what, list),
		"a do action that keeps returning these events loops inside one invocation, with no new message or retry point between rounds, until the step cap or the invocation's timeout stops it",
		"make one transition of the cycle non-local (remove local: true) so each round gets its own invocation"))
}

// transitionLabel names a transition in a message: by its event, or by its state
// when the event is missing (that is reported on its own).
func transitionLabel(state StateName, event EventName) string {
	if event == "" {
		return fmt.Sprintf("of state %q", state)
	}
	return fmt.Sprintf("%q", event)
}

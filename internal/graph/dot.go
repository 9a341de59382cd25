package graph

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/awalterschulze/gographviz/ast"

	"github.com/lfsm/lfsm/internal/lambdanum"
	"github.com/lfsm/lfsm/internal/spec"
)

// DOT builds the Graphviz graph of m as a gographviz AST: a start pseudo node (a
// small filled circle) with an edge to the initial state, an end pseudo node (a
// double circle) with an edge from each final state, one Mrecord node per state
// listing its entry/do/exit actions, and one edge per transition labelled "event"
// or "event/ action". Local transitions are dashed; the end edge of a final state
// without exit action, which runs no invocation, is dotted and grey. With lambdas, edge labels start
// with their λ number (REFERENCE.md §2, [lambdanum.Lambdas]) and local transitions with "local".
func DOT(m *spec.Machine, lambdas bool) *ast.Graph {
	g, _ := dotGraph(m, lambdas)
	return g
}

func dotGraph(m *spec.Machine, lambdas bool) (*ast.Graph, *dotIDs) {
	ids := newDOTIDs(m)
	// Statements: 3 defaults, 2 pseudo nodes, the states, and about one edge per
	// transition plus start and end edges; pre-size to build in one pass.
	stmts := make(ast.StmtList, 0, 6+2*len(m.States)+countTransitions(m))
	stmts = append(stmts,
		ast.GraphAttrs{ast.AList{
			attr("fontname", "Helvetica"), attr("label", quote(escapeLabel(m.Name))), attr("labelloc", "t"),
		}},
		ast.NodeAttrs{ast.AList{attr("fontname", "Helvetica"), attr("fontsize", "11")}},
		ast.EdgeAttrs{ast.AList{attr("fontname", "Helvetica"), attr("fontsize", "10")}},
		&ast.NodeStmt{NodeID: nodeID(ids.start), Attrs: ast.AttrList{ast.AList{
			attr("fillcolor", "black"), attr("fixedsize", "true"), attr("label", `""`),
			attr("shape", "circle"), attr("style", "filled"), attr("width", "0.2"),
		}}},
		&ast.NodeStmt{NodeID: nodeID(ids.end), Attrs: ast.AttrList{ast.AList{
			attr("fillcolor", "black"), attr("fixedsize", "true"), attr("label", `""`),
			attr("shape", "doublecircle"), attr("style", "filled"), attr("width", "0.15"),
		}}},
	)
	for _, s := range m.States {
		stmts = append(stmts, &ast.NodeStmt{NodeID: nodeID(ids.state(s.Name)), Attrs: ast.AttrList{ast.AList{
			attr("label", quote(recordLabel(s))), attr("shape", "Mrecord"),
		}}})
	}
	// Targets that name no state still get a node, drawn so the mistake shows.
	for _, name := range ids.unknown {
		stmts = append(stmts, &ast.NodeStmt{NodeID: nodeID(ids.state(name)), Attrs: ast.AttrList{ast.AList{
			attr("color", "red"), attr("label", quote(escapeLabel(string(name))+"\n(unknown state)")), attr("shape", "box"),
			attr("style", "dashed"),
		}}})
	}
	// Edges are visited in λ order (see lambdanum.Lambdas), so numbering is a counter.
	number := 0
	label := func(text string) ast.AList {
		if lambdas {
			number++
			text = lambdaLabel(number, text)
		}
		if text == "" {
			return nil
		}
		return ast.AList{attr("label", quote(escapeLabel(text)))}
	}
	initial := m.Initial()
	for _, s := range m.States {
		if s == initial {
			stmts = append(stmts, edge(ids.start, ids.state(s.Name), label("")))
		}
		if s.Final {
			attrs := label("")
			if s.ExitAction == nil {
				// The end λ of a final state without exit action runs no
				// invocation (lambdanum.Lambda.NoInvocation): drawn dotted and grey.
				attrs = append(attrs, attr("color", "gray50"), attr("fontcolor", "gray50"), attr("style", "dotted"),
					attr("tooltip", quote("no invocation: the execution finishes in the λ that reached "+escapeLabel(string(s.Name)))))
			}
			stmts = append(stmts, edge(ids.state(s.Name), ids.end, attrs))
		}
		for _, t := range s.Transitions {
			text := string(t.Event)
			if t.Action != nil {
				text += "/ " + t.Action.Ref
			}
			var attrs ast.AList
			if t.Local {
				if lambdas {
					text = "local " + text
				}
				attrs = ast.AList{attr("label", quote(escapeLabel(text))), attr("style", "dashed")}
			} else {
				attrs = label(text)
			}
			stmts = append(stmts, edge(ids.state(s.Name), ids.state(t.Target), attrs))
		}
	}
	return &ast.Graph{Type: ast.DIGRAPH, ID: ast.ID(quote(dotSafe(m.Name))), StmtList: stmts}, ids
}

// WriteDOT writes g as DOT, in exactly the text g.String() gives. It streams the
// statements instead: gographviz's String concatenates the whole statement list
// into one string, which takes quadratic time on machines with many states.
func WriteDOT(w io.Writer, g *ast.Graph) error {
	bw := bufio.NewWriter(w)
	writeDOT(bw, g)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write dot: %w", err)
	}
	return nil
}

func writeDOT(w *bufio.Writer, g *ast.Graph) {
	if g.Strict {
		w.WriteString("strict ")
	}
	w.WriteString(g.Type.String())
	w.WriteByte(' ')
	w.WriteString(g.ID.String())
	w.WriteString(" {\n")
	for _, s := range g.StmtList {
		if text := s.String(); text != "" {
			w.WriteByte('\t')
			w.WriteString(text)
			w.WriteString(";\n")
		}
	}
	w.WriteString("\n}\n")
}

// lambdaLabel prefixes an edge label with its λ number.
func lambdaLabel(n int, text string) string {
	if text == "" {
		return "λ" + strconv.Itoa(n)
	}
	return "λ" + strconv.Itoa(n) + " " + text
}

func countTransitions(m *spec.Machine) int {
	n := 0
	for _, s := range m.States {
		n += len(s.Transitions)
	}
	return n
}

func attr(field, value string) *ast.Attr {
	return &ast.Attr{Field: ast.ID(field), Value: ast.ID(value)}
}

func nodeID(id string) *ast.NodeID {
	return &ast.NodeID{ID: ast.ID(id)}
}

func edge(from, to string, attrs ast.AList) *ast.EdgeStmt {
	var list ast.AttrList
	if attrs != nil {
		list = ast.AttrList{attrs}
	}
	return &ast.EdgeStmt{
		Source:  nodeID(from),
		EdgeRHS: ast.EdgeRHS{&ast.EdgeRH{Op: ast.DIRECTED, Destination: nodeID(to)}},
		Attrs:   list,
	}
}

// recordLabel is the Mrecord label of s: its name, then one left-aligned line per
// action it has.
func recordLabel(s *spec.State) string {
	var b strings.Builder
	b.WriteByte('{')
	b.WriteString(escapeRecord(string(s.Name)))
	if s.EntryAction != nil || s.DoAction != nil || s.ExitAction != nil {
		b.WriteByte('|')
		for _, a := range []struct {
			key string
			ref *spec.ActionRef
		}{{"entry", s.EntryAction}, {"do", s.DoAction}, {"exit", s.ExitAction}} {
			if a.ref != nil {
				b.WriteString(a.key)
				b.WriteString("/ ")
				b.WriteString(escapeRecord(a.ref.Ref))
				b.WriteString(`\l`)
			}
		}
	}
	b.WriteByte('}')
	return b.String()
}

// escapeRecord escapes the characters that structure a record label, so that a
// name is shown as written.
func escapeRecord(s string) string {
	if !strings.ContainsAny(s, "{}|<>\\ ") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '{', '}', '|', '<', '>', '\\':
			b.WriteByte('\\')
		case ' ':
			// Record fields trim spaces; an escaped space is kept.
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// escapeLabel keeps backslashes literal in a Graphviz label, where \l, \n and
// the like are escapes.
func escapeLabel(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}

// quote makes s a DOT double-quoted string. Inside one, only \" is an escape for
// the DOT lexer; Graphviz then reads \\ as a backslash in labels. A backslash right
// before the closing quote would escape it, so a trailing backslash is doubled and
// followed by a space the eye cannot see in a label.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
		default:
			b.WriteByte(c)
		}
	}
	if strings.HasSuffix(s, `\`) {
		b.WriteByte(' ')
	}
	b.WriteByte('"')
	return b.String()
}

// dotIDs gives each state, and the two pseudo nodes, a quoted DOT id no other node
// has: a state's id is its name where possible, and the pseudo nodes take names
// no state has.
type dotIDs struct {
	// start and end are quoted; startName and endName are the node names they quote.
	start, end         string
	startName, endName string
	ids                map[spec.StateName]string
	names              map[spec.StateName]string
	used               map[string]bool
	unknown            []spec.StateName
}

func newDOTIDs(m *spec.Machine) *dotIDs {
	d := &dotIDs{ids: make(map[spec.StateName]string, len(m.States)), names: make(map[spec.StateName]string, len(m.States)), used: make(map[string]bool, len(m.States)+2)}
	for _, s := range m.States {
		d.add(s.Name)
	}
	for _, s := range m.States {
		for _, t := range s.Transitions {
			if _, ok := d.ids[t.Target]; !ok {
				d.add(t.Target)
				d.unknown = append(d.unknown, t.Target)
			}
		}
	}
	d.startName, d.start = d.unique(string(lambdanum.Start))
	d.endName, d.end = d.unique(string(lambdanum.End))
	return d
}

func (d *dotIDs) add(name spec.StateName) {
	if _, ok := d.ids[name]; ok {
		return
	}
	d.names[name], d.ids[name] = d.unique(dotSafe(string(name)))
}

// StartNodeName is the name of m's start pseudo node (the small filled
// circle), where executions not yet past their start message are.
func StartNodeName(m *spec.Machine) string { return newDOTIDs(m).startName }

// NodeNames maps each state of m to the name of its node in the DOT graph
// and in the SVG Graphviz draws from it (the <title> of the node's group),
// so that a page can find a state's node in the picture.
func NodeNames(m *spec.Machine) map[spec.StateName]string {
	d := newDOTIDs(m)
	out := make(map[spec.StateName]string, len(m.States))
	for _, s := range m.States {
		out[s.Name] = d.names[s.Name]
	}
	return out
}

func (d *dotIDs) state(name spec.StateName) string {
	return d.ids[name]
}

// unique returns base with underscores appended until unused, and its quoted id.
func (d *dotIDs) unique(base string) (name, id string) {
	id = quote(base)
	for d.used[id] {
		base += "_"
		id = quote(base)
	}
	d.used[id] = true
	return base, id
}

// dotSafe replaces characters that cannot stand in a quoted DOT id as written:
// quotes, backslashes and control characters. Labels still show the real name.
func dotSafe(s string) string {
	if !strings.ContainsFunc(s, unsafeIDRune) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unsafeIDRune(r) {
			return '_'
		}
		return r
	}, s)
}

func unsafeIDRune(r rune) bool {
	return r == '"' || r == '\\' || r < ' ' || r == 0x7f
}

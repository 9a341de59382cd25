package graph

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/awalterschulze/gographviz"
	"github.com/awalterschulze/gographviz/ast"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/lambdanum"
	"github.com/lfsm/lfsm/internal/spec"
)

// TestWriteDOT checks that the streaming writer gives exactly gographviz's text.
func TestWriteDOT(t *testing.T) {
	for _, file := range specFiles(t) {
		for _, m := range loadSpec(t, file).Machines {
			for _, lambdas := range []bool{false, true} {
				g := DOT(m, lambdas)
				var buf bytes.Buffer
				if err := WriteDOT(&buf, g); err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(g.String(), buf.String()); diff != "" {
					t.Errorf("%s/%s: WriteDOT differs from String (-String +WriteDOT):\n%s", file, m.Name, diff)
				}
			}
		}
	}
}

// awkward names every state name a spec might hold, valid or not: names the
// pseudo nodes would take, and characters DOT and record labels treat specially.
func awkward() *spec.Machine {
	return &spec.Machine{Name: `odd "machine"`, States: []*spec.State{
		{Name: "start", Initial: true, DoAction: ref("a.Go"), Transitions: []*spec.Transition{
			tr("pseudo_init", "to init", false), tr(`say "hi"`, `quote"d`, false),
		}},
		{Name: "pseudo_init", Transitions: []*spec.Transition{tr("pseudo_final", "next", false)}},
		{Name: "pseudo_final", Transitions: []*spec.Transition{tr("a{b}|c<d>", `ev\`, true)}},
		{Name: `say "hi"`, EntryAction: ref(`x.{y}`), Transitions: []*spec.Transition{tr(`back\slash`, "go", false)}},
		{Name: "a{b}|c<d>", Transitions: []*spec.Transition{tr("ghost", "boo", false)}},
		{Name: `back\slash`, Transitions: []*spec.Transition{tr(`tail\`, `back\n`, false)}},
		{Name: `tail\`, Transitions: []*spec.Transition{tr("end", "e", false)}},
		{Name: "end", Final: true},
	}}
}

// TestDOTAwkwardNames parses the DOT of awkward names with gographviz and with
// Graphviz itself, and checks that the drawing shows every name as written.
func TestDOTAwkwardNames(t *testing.T) {
	m := awkward()
	var dot bytes.Buffer
	if err := WriteDOT(&dot, DOT(m, true)); err != nil {
		t.Fatal(err)
	}
	g, err := gographviz.Read(dot.Bytes())
	if err != nil {
		t.Fatalf("gographviz cannot read the dot: %v\n%s", err, dot.String())
	}
	// 8 states, the unknown target "ghost", and the two pseudo nodes, all distinct.
	if got, want := len(g.Nodes.Nodes), 8+1+2; got != want {
		t.Errorf("got %d nodes, want %d:\n%s", got, want, dot.String())
	}
	// One edge per transition, plus start and end.
	if got, want := len(g.Edges.Edges), 8+2; got != want {
		t.Errorf("got %d edges, want %d:\n%s", got, want, dot.String())
	}

	var svg bytes.Buffer
	s := &spec.Spec{Machines: []*spec.Machine{m}}
	if err := Render(t.Context(), &svg, s, Options{Format: FormatSVG, Lambdas: true}); err != nil {
		t.Fatalf("render svg: %v\n%s", err, dot.String())
	}
	texts := svgTexts(t, svg.Bytes())
	want := []string{
		`odd "machine"`, "start", "pseudo_init", "pseudo_final", `say "hi"`, "a{b}|c<d>", `back\slash`, `tail\`, "end",
		"do/ a.Go", `entry/ x.{y}`, "ghost", "(unknown state)",
		"λ1", "λ2 to init", `λ3 quote"d`, "λ4 next", `local ev\`, "λ5 go", "λ6 boo", `λ7 back\n`, "λ8 e", "λ9",
	}
	for _, w := range want {
		if !slices.Contains(texts, w) {
			t.Errorf("svg has no text %q; texts: %q", w, texts)
		}
	}
}

// svgTexts parses an SVG document and returns the trimmed content of its <text>
// elements, failing unless the root element is <svg>.
func svgTexts(t *testing.T, doc []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = false // Graphviz writes a DOCTYPE with an external DTD.
	var texts []string
	depth, inText := 0, false
	var cur strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if depth == 0 && tok.Name.Local != "svg" {
				t.Fatalf("svg root element is <%s>", tok.Name.Local)
			}
			depth++
			if tok.Name.Local == "text" {
				inText = true
				cur.Reset()
			}
		case xml.EndElement:
			depth--
			if tok.Name.Local == "text" {
				inText = false
				texts = append(texts, strings.TrimSpace(cur.String()))
			}
		case xml.CharData:
			if inText {
				cur.Write(tok)
			}
		}
	}
	if len(texts) == 0 {
		t.Fatal("svg has no text")
	}
	return texts
}

// TestDOTNumbersMatchLambdas checks that the λ labels DOT draws are those Lambdas
// computes, on a machine with local transitions and several final states.
func TestDOTNumbersMatchLambdas(t *testing.T) {
	m := largeMachine(300)
	var want []string
	for _, l := range lambdanum.Lambdas(m) {
		from, to := `"`+string(l.From)+`"`, `"`+string(l.To)+`"`
		want = append(want, fmt.Sprintf("λ%d %s->%s", l.Number, from, to))
	}
	var got []string
	for _, st := range DOT(m, true).StmtList {
		e, ok := st.(*ast.EdgeStmt)
		if !ok || len(e.Attrs) == 0 {
			continue
		}
		label := e.Attrs.GetMap()["label"]
		num, _, _ := strings.Cut(strings.Trim(label, `"`), " ")
		if strings.HasPrefix(num, "λ") {
			got = append(got, fmt.Sprintf("%s %s->%s", num, e.Source.GetID(), e.EdgeRHS[0].Destination.GetID()))
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("λ edges (-Lambdas +DOT):\n%s", diff)
	}
}

package graph

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/lfsm/lfsm/internal/spec"
)

// WriteMermaid writes machines as one Mermaid stateDiagram-v2. A single machine is
// drawn at the top level; several are each drawn inside a composite state named
// after the machine. [*] marks the start and the end; transitions are labelled with
// their event (and action), local ones with "(local)"; with lambdas, labels start
// with their λ number.
func WriteMermaid(w io.Writer, machines []*spec.Machine, lambdas bool) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("stateDiagram-v2\n")
	if len(machines) == 1 {
		writeMermaidMachine(bw, machines[0], "", 1, lambdas)
	}
	if len(machines) > 1 {
		used := map[string]bool{}
		for i, m := range machines {
			id := mermaidUnique(used, fmt.Sprintf("m%d", i+1))
			fmt.Fprintf(bw, "    state %s as %s {\n", mermaidText(m.Name), id)
			writeMermaidMachine(bw, m, id+"_", 2, lambdas)
			bw.WriteString("    }\n")
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write mermaid: %w", err)
	}
	return nil
}

func writeMermaidMachine(w *bufio.Writer, m *spec.Machine, prefix string, depth int, lambdas bool) {
	pad := strings.Repeat("    ", depth)
	ids := map[spec.StateName]string{}
	used := map[string]bool{}
	declare := func(name spec.StateName) {
		if _, ok := ids[name]; ok {
			return
		}
		id := mermaidUnique(used, prefix+mermaidSafe(string(name)))
		ids[name] = id
		if id != string(name) {
			fmt.Fprintf(w, "%sstate %s as %s\n", pad, mermaidText(string(name)), id)
		}
	}
	for _, s := range m.States {
		declare(s.Name)
	}
	for _, s := range m.States {
		for _, t := range s.Transitions {
			declare(t.Target)
		}
	}
	for _, s := range m.States {
		for _, a := range []struct {
			key string
			ref *spec.ActionRef
		}{{"entry", s.EntryAction}, {"do", s.DoAction}, {"exit", s.ExitAction}} {
			if a.ref != nil {
				fmt.Fprintf(w, "%s%s : %s/ %s\n", pad, ids[s.Name], a.key, mermaidLabel(a.ref.Ref))
			}
		}
	}
	// Edges are visited in λ order (see Lambdas), so numbering is a counter;
	// local transitions have no λ.
	number := 0
	arrow := func(from, to string, numbered bool, text string) {
		if lambdas && numbered {
			number++
			text = lambdaLabel(number, text)
		}
		if text == "" {
			fmt.Fprintf(w, "%s%s --> %s\n", pad, from, to)
			return
		}
		fmt.Fprintf(w, "%s%s --> %s : %s\n", pad, from, to, mermaidLabel(text))
	}
	initial := m.Initial()
	for _, s := range m.States {
		if s == initial {
			arrow("[*]", ids[s.Name], true, "")
		}
		if s.Final {
			text := ""
			if lambdas && s.ExitAction == nil {
				text = "(no invocation)"
			}
			arrow(ids[s.Name], "[*]", true, text)
		}
		for _, t := range s.Transitions {
			text := string(t.Event)
			if t.Action != nil {
				text += "/ " + t.Action.Ref
			}
			if t.Local {
				text += " (local)"
			}
			arrow(ids[s.Name], ids[t.Target], !t.Local, text)
		}
	}
}

// mermaidReserved are words Mermaid's state diagram grammar reads as keywords.
var mermaidReserved = map[string]bool{
	"end": true, "state": true, "note": true, "direction": true, "as": true,
	"class": true, "classDef": true, "style": true, "click": true, "left": true,
	"right": true, "of": true, "fork": true, "join": true, "choice": true,
}

func mermaidUnique(used map[string]bool, id string) string {
	for used[id] || mermaidReserved[id] {
		id += "_"
	}
	used[id] = true
	return id
}

// mermaidSafe maps a name to a Mermaid state id: letters, digits and underscores.
func mermaidSafe(s string) string {
	id := strings.Map(func(r rune) rune {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
	if id == "" || id[0] >= '0' && id[0] <= '9' {
		id = "s_" + id
	}
	return id
}

// mermaidText quotes a state's display name.
func mermaidText(s string) string {
	return `"` + mermaidEntities(s, `"`) + `"`
}

// mermaidLabel makes text safe after the ':' of a transition or description.
func mermaidLabel(s string) string {
	return mermaidEntities(s, ";#\"")
}

// mermaidEntities replaces newlines by spaces and the given characters by Mermaid
// entity codes (#35; for '#'), which Mermaid decodes when it draws.
func mermaidEntities(s, special string) string {
	if !strings.ContainsAny(s, special+"\n\r") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r':
			b.WriteByte(' ')
		case strings.ContainsRune(special, r):
			fmt.Fprintf(&b, "#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

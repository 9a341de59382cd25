package graph

import (
	"bufio"
	"fmt"
	"io"
	"strconv"

	"github.com/lfsm/lfsm/internal/lambdanum"
	"github.com/lfsm/lfsm/internal/spec"
)

// WriteListing writes the λ listing of m in the seed's "Lambda Calls" form: a line
// "λN", then one line per action it runs (named as lambdanum.Step.String names
// them), and a blank line between λs; an end λ that runs no invocation is the
// one line "λN (no invocation)". What runs
// next in the same invocation through local transitions is indented under the λ.
func WriteListing(w io.Writer, m *spec.Machine) error {
	bw := bufio.NewWriter(w)
	writeListing(bw, lambdanum.Lambdas(m))
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write listing of machine %s: %w", m.Name, err)
	}
	return nil
}

func writeListing(w *bufio.Writer, lambdas []lambdanum.Lambda) {
	for i, l := range lambdas {
		if i > 0 {
			w.WriteByte('\n')
		}
		w.WriteString("λ")
		w.WriteString(strconv.Itoa(l.Number))
		if l.NoInvocation {
			w.WriteString(" (no invocation)\n")
			continue
		}
		w.WriteByte('\n')
		if len(l.Actions) == 0 {
			w.WriteString("(no actions)\n")
		}
		writeSteps(w, 0, l.Actions)
		writeContinuations(w, 1, l.Local)
	}
}

func writeSteps(w *bufio.Writer, depth int, steps []lambdanum.Step) {
	for _, s := range steps {
		indent(w, depth)
		w.WriteString(string(s.State))
		if s.Kind == lambdanum.StepTransition {
			w.WriteByte('.')
			w.WriteString(string(s.Event))
		}
		w.WriteByte('.')
		w.WriteString(string(s.Kind))
		w.WriteByte('\n')
	}
}

func writeContinuations(w *bufio.Writer, depth int, cs []lambdanum.Continuation) {
	for _, c := range cs {
		indent(w, depth)
		fmt.Fprintf(w, "local %s: %s -> %s\n", c.Event, c.From, c.To)
		writeSteps(w, depth+1, c.Actions)
		switch {
		case c.Cycle:
			indent(w, depth+1)
			fmt.Fprintf(w, "(local cycle: %s again, as above)\n", c.To)
		case c.Seen:
			indent(w, depth+1)
			fmt.Fprintf(w, "(continues from %s as above)\n", c.To)
		default:
			writeContinuations(w, depth+1, c.Next)
		}
	}
}

func indent(w *bufio.Writer, depth int) {
	for range depth {
		w.WriteString("  ")
	}
}

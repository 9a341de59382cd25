package graph

import (
	"fmt"
	"io"
	"testing"

	"github.com/lfsm/lfsm/internal/spec"
)

// largeMachine generates a machine of n states with 3 transitions each: to the
// next state, 7 states on, and a pseudo-random one; every tenth transition is
// local, every thousandth state final, and each state has all three actions.
func largeMachine(n int) *spec.Machine {
	m := &spec.Machine{Name: "Large", States: make([]*spec.State, n)}
	for i := range n {
		name := func(j int) spec.StateName { return spec.StateName(fmt.Sprintf("S%05d", j%n)) }
		s := &spec.State{
			Name:        name(i),
			Initial:     i == 0,
			Final:       i%1000 == 999,
			EntryAction: &spec.ActionRef{Ref: "example.com/shop/actions.Enter"},
			DoAction:    &spec.ActionRef{Ref: "example.com/shop/actions.Work"},
			ExitAction:  &spec.ActionRef{Ref: "example.com/shop/actions.Leave"},
		}
		for k, target := range []int{i + 1, i + 7, i*13 + 5} {
			s.Transitions = append(s.Transitions, &spec.Transition{
				Target: name(target),
				Event:  spec.EventName(fmt.Sprintf("e%d", k)),
				Local:  (3*i+k)%10 == 0,
			})
		}
		m.States[i] = s
	}
	return m
}

// BenchmarkGraphLarge renders a machine of 10,000 states and 30,000 transitions
// as DOT (with λ numbers) and as the λ listing.
func BenchmarkGraphLarge(b *testing.B) {
	s := &spec.Spec{Machines: []*spec.Machine{largeMachine(10000)}}
	for _, f := range []Format{FormatDOT, FormatListing} {
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Render(b.Context(), io.Discard, s, Options{Format: f, Lambdas: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDOTWriters compares WriteDOT with gographviz's own Graph.String on
// machines of growing size: String concatenates every statement into one string,
// which is quadratic (at 10,000 states it takes minutes, so it is not run there).
func BenchmarkDOTWriters(b *testing.B) {
	for _, n := range []int{500, 2000} {
		g := DOT(largeMachine(n), true)
		b.Run(fmt.Sprintf("states=%d/WriteDOT", n), func(b *testing.B) {
			for b.Loop() {
				if err := WriteDOT(io.Discard, g); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("states=%d/String", n), func(b *testing.B) {
			for b.Loop() {
				_ = g.String()
			}
		})
	}
}

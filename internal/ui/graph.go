package ui

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/graph"
	"github.com/lfsm/lfsm/internal/spec"
)

// graphs renders each machine's SVG once (Graphviz, compiled to WebAssembly
// on first use, costs about a second) and keeps it.
type graphs struct {
	spec     *spec.Spec
	cacheDir string

	mu sync.Mutex
	m  map[string]*graphEntry
}

type graphEntry struct {
	mu  sync.Mutex
	svg []byte
}

// svg returns machine's diagram, the one lfsm graph --lambdas --output svg
// draws. A failed render is not kept: the next request tries again.
func (g *graphs) svg(ctx context.Context, machine string) ([]byte, error) {
	g.mu.Lock()
	e := g.m[machine]
	if e == nil {
		e = &graphEntry{}
		g.m[machine] = e
	}
	g.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.svg != nil {
		return e.svg, nil
	}
	// The render outlives a request that gives up: the next one finds it.
	// The first render on a machine builds the Graphviz renderer, which takes
	// minutes on a cold Go build cache (docs/graph.md), hence the long bound.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	var b bytes.Buffer
	if err := graph.Render(rctx, &b, g.spec, graph.Options{Machine: machine, Lambdas: true, Format: graph.FormatSVG, CacheDir: g.cacheDir}); err != nil {
		return nil, err
	}
	e.svg = b.Bytes()
	return e.svg, nil
}

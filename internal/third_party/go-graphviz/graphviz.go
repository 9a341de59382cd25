package graphviz

import (
	"context"
	"fmt"
	"image"
	"io"
	"io/fs"
	"sync"

	"github.com/lfsm/lfsm/internal/third_party/go-graphviz/cgraph"
	"github.com/lfsm/lfsm/internal/third_party/go-graphviz/gvc"
	"github.com/lfsm/lfsm/internal/third_party/go-graphviz/internal/wasm"
)

type Graphviz struct {
	ctx    *gvc.Context
	name   string
	dir    *GraphDescriptor
	layout Layout
}

type Layout string

const (
	CIRCO     Layout = "circo"
	DOT       Layout = "dot"
	FDP       Layout = "fdp"
	NEATO     Layout = "neato"
	NOP       Layout = "nop"
	NOP1      Layout = "nop1"
	NOP2      Layout = "nop2"
	OSAGE     Layout = "osage"
	PATCHWORK Layout = "patchwork"
	SFDP      Layout = "sfdp"
	TWOPI     Layout = "twopi"
)

type Format string

const (
	XDOT Format = "dot"
	SVG  Format = "svg"
	PNG  Format = "png"
	JPG  Format = "jpg"
)

// Load compiles and instantiates Graphviz's WebAssembly module and sets the
// package's descriptors, once per process: every other function of this fork
// needs it, and New, NewWithPlugins, ParseBytes and ParseFile call it. cacheDir
// holds wazero's compilation cache ("" for none); the first call's wins.
// (lfsm: upstream did all this in package inits, at every start of every binary
// linking the package, whether it rendered or not.)
func Load(ctx context.Context, cacheDir string) error {
	loadMu.Lock()
	defer loadMu.Unlock()
	if loaded {
		return nil
	}
	if err := wasm.Load(cacheDir); err != nil {
		return err
	}
	if err := cgraph.Load(ctx); err != nil {
		return fmt.Errorf("load graphviz: %w", err)
	}
	gvc.Load()
	Directed, StrictDirected = cgraph.Directed, cgraph.StrictDirected
	UnDirected, StrictUnDirected = cgraph.UnDirected, cgraph.StrictUnDirected
	loaded = true
	return nil
}

var (
	loadMu sync.Mutex
	loaded bool
)

// ParseBytes parses a graph in DOT (lfsm: loads the module first).
func ParseBytes(ctx context.Context, b []byte) (*Graph, error) {
	if err := Load(ctx, ""); err != nil {
		return nil, err
	}
	return cgraph.ParseBytes(b)
}

// ParseFile parses a DOT file (lfsm: loads the module first).
func ParseFile(ctx context.Context, path string) (*Graph, error) {
	if err := Load(ctx, ""); err != nil {
		return nil, err
	}
	return cgraph.ParseFile(path)
}

func New(ctx context.Context) (*Graphviz, error) {
	if err := Load(ctx, ""); err != nil {
		return nil, err
	}
	c, err := gvc.New(ctx)
	if err != nil {
		return nil, err
	}
	return &Graphviz{
		ctx:    c,
		dir:    Directed,
		layout: DOT,
	}, nil
}

func NewWithPlugins(ctx context.Context, plugins ...Plugin) (*Graphviz, error) {
	if err := Load(ctx, ""); err != nil {
		return nil, err
	}
	c, err := gvc.NewWithPlugins(ctx, plugins...)
	if err != nil {
		return nil, err
	}
	return &Graphviz{
		ctx:    c,
		dir:    Directed,
		layout: DOT,
	}, nil
}

func (g *Graphviz) Close() error {
	return g.ctx.Close()
}

func (g *Graphviz) SetLayout(layout Layout) *Graphviz {
	g.layout = layout
	return g
}

func (g *Graphviz) Render(ctx context.Context, graph *Graph, format Format, w io.Writer) (e error) {
	defer func() {
		if err := g.ctx.FreeLayout(ctx, graph); err != nil {
			e = err
		}
	}()

	if err := g.ctx.Layout(ctx, graph, string(g.layout)); err != nil {
		return err
	}
	if err := g.ctx.RenderData(ctx, graph, string(format), w); err != nil {
		return err
	}
	return nil
}

func (g *Graphviz) RenderImage(ctx context.Context, graph *Graph) (img image.Image, e error) {
	defer func() {
		if err := g.ctx.FreeLayout(ctx, graph); err != nil {
			e = err
		}
	}()

	if err := g.ctx.Layout(ctx, graph, string(g.layout)); err != nil {
		return nil, err
	}
	image, err := g.ctx.RenderImage(ctx, graph, string(PNG))
	if err != nil {
		return nil, err
	}
	return image, nil
}

func (g *Graphviz) RenderFilename(ctx context.Context, graph *Graph, format Format, path string) (e error) {
	defer func() {
		if err := g.ctx.FreeLayout(ctx, graph); err != nil {
			e = err
		}
	}()

	if err := g.ctx.Layout(ctx, graph, string(g.layout)); err != nil {
		return err
	}
	if err := g.ctx.RenderFilename(ctx, graph, string(format), path); err != nil {
		return err
	}
	return nil
}

func (g *Graphviz) Graph(option ...GraphOption) (*Graph, error) {
	for _, opt := range option {
		opt(g)
	}
	graph, err := cgraph.Open(g.name, g.dir, nil)
	if err != nil {
		return nil, err
	}
	return graph, nil
}

func SetFileSystem(fs fs.FS) {
	wasm.SetWasmFileSystem(fs)
}

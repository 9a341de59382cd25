package gvc

import (
	"context"

	"github.com/lfsm/lfsm/internal/third_party/go-graphviz/internal/wasm"
)

type Plugin interface {
	raw() *wasm.PluginAPI
}

// DefaultPlugins returns no plugin (lfsm: upstream registered its Go PNG and JPEG
// renderers here, which drop straight edges and state outlines and fill
// curves black; lfsm draws PNG itself from the xdot layout, so the image
// renderer and its font and imaging dependencies are left out).
func DefaultPlugins(ctx context.Context) ([]Plugin, error) {
	return nil, nil
}

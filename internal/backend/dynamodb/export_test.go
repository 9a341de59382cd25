package dynamodb

import "github.com/lfsm/lfsm/internal/engine"

// WithHook returns o with a hook called at the named points of a commit.
func WithHook(o Options, h func(point string, c engine.Commit)) Options {
	o.hook = h
	return o
}

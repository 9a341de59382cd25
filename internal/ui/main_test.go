package ui

import (
	"fmt"
	"os"
	"testing"
)

// graphCache is the Graphviz cache every test of the package shares, so the
// renderer that the first SVG render builds (internal/graph/gvrender: seconds
// on a warm Go build cache, minutes on a cold one) is built once per test
// binary instead of once per test.
var graphCache string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lfsm-ui-graph-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	graphCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

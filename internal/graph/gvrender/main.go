// Command gvrender lays out a Graphviz DOT graph with go-graphviz (Graphviz
// compiled to WebAssembly, run by wazero) and writes it in one of Graphviz's
// output formats. It is lfsm's Graphviz renderer: package graph builds it on
// the first svg or png render, into lfsm's cache directory, and runs it as a
// subprocess, so that the lfsm binary itself does not link go-graphviz, whose
// package init compiles the WebAssembly module (about a second of CPU) at
// every start of every binary that links it.
//
// usage: gvrender FORMAT [BARE-NODE...] <graph.dot >out
//
// FORMAT is svg or xdot. Every BARE-NODE gets an empty label after parsing:
// go-graphviz's parser gives a node whose label is "" its name as label, and
// lfsm's pseudo nodes are bare circles. Errors go to stderr, prefixed
// "gvrender: ", with exit status 1; 2 for a usage error.
//
// Run it with TMPDIR pointed at a directory of lfsm's cache: go-graphviz
// keeps wazero's compilation cache in $TMPDIR/go-graphviz.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/goccy/go-graphviz"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "svg" && os.Args[1] != "xdot") {
		fmt.Fprintln(os.Stderr, "gvrender: usage: gvrender svg|xdot [BARE-NODE...] <graph.dot")
		os.Exit(2)
	}
	if err := run(context.Background(), os.Stdin, os.Stdout, graphviz.Format(os.Args[1]), os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "gvrender: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, in io.Reader, w io.Writer, format graphviz.Format, bare []string) (err error) {
	dot, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("read dot: %w", err)
	}
	gv, err := graphviz.New(ctx)
	if err != nil {
		return fmt.Errorf("start graphviz: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("graphviz", gv.Close())) }()
	g, err := graphviz.ParseBytes(dot)
	if err != nil {
		return fmt.Errorf("parse dot: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("graph", g.Close())) }()
	for _, name := range bare {
		n, err := g.NodeByName(name)
		if err != nil {
			return fmt.Errorf("find node %s: %w", name, err)
		}
		if n != nil {
			n.SetLabel("")
		}
	}
	var out bytes.Buffer
	if err := gv.Render(ctx, g, format, &out); err != nil {
		return fmt.Errorf("lay out: %w", err)
	}
	if _, err := w.Write(out.Bytes()); err != nil {
		return fmt.Errorf("write %s: %w", format, err)
	}
	return nil
}

func closeErr(what string, err error) error {
	if err != nil {
		return fmt.Errorf("close %s: %w", what, err)
	}
	return nil
}

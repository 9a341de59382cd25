package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/spec"
	"github.com/lfsm/lfsm/internal/ui"
)

// DefaultUIAddr is where lfsm ui listens unless --addr says otherwise.
const DefaultUIAddr = "127.0.0.1:7780"

// UIOptions are the inputs of lfsm ui.
type UIOptions struct {
	// Target is the store the console works on (--target and the aws: settings).
	Target target
	IO     *IOStreams
	File   string
	DB     string
	Addr   string
	Open   bool
	// Ready, when set, is called with the console's URL once it listens
	// (tests).
	Ready func(url string)
}

func newUICmd(f *Factory, runF func(*UIOptions) error) *cobra.Command {
	opts := &UIOptions{}
	cmd := &cobra.Command{
		Use:   "ui [--target local|aws] [--addr HOST:PORT] [--open]",
		Short: "Serve a web console of machines and executions",
		Long: heredoc(`
			Serve a web console on the executions of the store: each machine's
			diagram (lfsm graph --lambdas) with live counts of its executions per
			state and status, a table of executions filterable by machine, state,
			status and correlation id, and each execution's status, context and
			history with buttons that stop, resume and send an event to it, doing
			what lfsm stop, resume and send do. Everything the page shows comes
			from a JSON API under /api/ (docs/ui.md).

			It listens on loopback (127.0.0.1:7780; --addr 127.0.0.1:0 picks a
			free port) and prints its URL. On another address anyone who can reach
			it could operate the executions, so it then requires a secret it
			prints as part of the URL. --open opens the URL in a browser. Ctrl-C
			stops it.
		`),
		Example: example(`
			lfsm ui
			lfsm ui --addr 127.0.0.1:0 --open
			lfsm ui --target aws
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.IO = f.IOStreams
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runUI(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVar(&opts.Addr, "addr", DefaultUIAddr, "listen on `HOST:PORT` (loopback unless you give another host)")
	fl.BoolVar(&opts.Open, "open", false, "open the console in a browser")
	return cmd
}

// uiOperator runs the console's buttons through the functions of lfsm
// stop, resume and send.
type uiOperator struct {
	db   opStore
	spec *spec.Spec
}

func (o uiOperator) Stop(ctx context.Context, id string) error { return stopExecution(ctx, o.db, id) }
func (o uiOperator) Resume(ctx context.Context, id string) error {
	return resumeExecution(ctx, o.db, id)
}
func (o uiOperator) Send(ctx context.Context, id, event string) error {
	return sendEvent(ctx, o.db, o.spec, id, event)
}

func runUI(ctx context.Context, opts *UIOptions) error {
	loopback, err := loopbackAddr(opts.Addr)
	if err != nil {
		return err
	}
	db, name, err := opts.Target.open(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	// The spec draws the machines and names the events a waiting execution
	// takes; the store is readable without it.
	var s *spec.Spec
	if _, err := os.Stat(opts.File); err == nil {
		ls, diags := spec.Load(opts.File)
		if ls != nil && !diags.HasErrors() {
			s = ls
		} else {
			fmt.Fprintf(opts.IO.ErrOut, "lfsm ui: %s has errors (lfsm validate shows them): no diagrams\n", opts.File)
		}
	} else {
		fmt.Fprintf(opts.IO.ErrOut, "lfsm ui: no spec at %s: no diagrams (-f names it)\n", opts.File)
	}
	kind := "local"
	if opts.Target.isAWS() {
		kind = "aws"
	}
	cacheDir, _ := build.DefaultCacheDir()
	if cacheDir != "" {
		cacheDir = filepath.Join(cacheDir, "graphviz")
	}
	uo := ui.Options{Store: db, Operator: uiOperator{db: db, spec: s}, Spec: s, Target: kind, Loopback: loopback, GraphCacheDir: cacheDir}
	if !loopback {
		uo.Secret = ui.RandomSecret()
	}
	srv, err := ui.New(uo)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("lfsm ui: listen on %s: %w (--addr chooses another address)", opts.Addr, err)
	}
	u := "http://" + ln.Addr().String() + "/"
	shown := u
	if uo.Secret != "" {
		u += "?secret=" + url.QueryEscape(uo.Secret)
		shown = u
		fmt.Fprintf(opts.IO.ErrOut, "lfsm ui: %s is not loopback: the console requires the secret in this URL; share it only with who may operate these executions\n", opts.Addr)
	}
	fmt.Fprintf(opts.IO.Out, "lfsm ui: serving %s on %s (Ctrl-C stops)\n", name, shown)
	// Requests end with the command, so that Ctrl-C ends the event streams.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	if opts.Ready != nil {
		opts.Ready(u)
	}
	if opts.Open {
		if err := openBrowser(u); err != nil {
			fmt.Fprintf(opts.IO.ErrOut, "lfsm ui: cannot open a browser (%v): open %s yourself\n", err, shown)
		}
	}
	select {
	case err := <-errc:
		return fmt.Errorf("lfsm ui: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	_ = hs.Close()
	return ctx.Err()
}

// loopbackAddr reports whether addr (--addr) listens on loopback only; an
// empty host listens on every interface.
func loopbackAddr(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, usageErrorf("invalid --addr %q: want HOST:PORT, such as %s", addr, DefaultUIAddr)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}

// openBrowser opens u in the desktop's browser.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

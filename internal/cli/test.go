package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/build"
)

// TestOptions are the inputs of lfsm test.
type TestOptions struct {
	IO      *IOStreams
	WorkDir string
	// Args are go test's arguments (default ./...).
	Args []string
}

func newTestCmd(f *Factory, runF func(*TestOptions) error) *cobra.Command {
	opts := &TestOptions{}
	cmd := &cobra.Command{
		Use:   "test [go test flags] [packages]",
		Short: "Run the project's Go tests (go test) on any machine",
		Long: heredoc(`
			Run go test in the project (the Go module at or above the working
			directory), with the environment lfsm build uses: the lfsm module is
			served from lfsm's own copy, so the tests pass on a fresh machine
			(a CI runner, an empty module cache) where a plain go test fails to
			download github.com/lfsm/lfsm, which is on no public module proxy.
			When go.mod does not require the lfsm version this lfsm serves, test
			requires it first, as lfsm build does.

			Every argument goes to go test unchanged; without any, ./... is
			tested. The exit status is go test's.
		`),
		Example: example(`
			lfsm test
			lfsm test -run TestAction2 -v ./actions
		`),
		// Flags belong to go test.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
				return cmd.Help()
			}
			opts.IO, opts.WorkDir, opts.Args = f.IOStreams, f.WorkDir, args
			if runF != nil {
				return runF(opts)
			}
			return runTest(cmd.Context(), opts)
		},
	}
	return cmd
}

func runTest(ctx context.Context, opts *TestOptions) error {
	dir := build.FindModuleRoot(opts.WorkDir)
	if dir == "" {
		return fmt.Errorf("test: no go.mod in %s or above: run it in a project (lfsm init makes one)", opts.WorkDir)
	}
	pr := newProgress(opts.IO.ErrOut, "test: ", opts.IO.ErrOutIsTerminal)
	env, err := build.GoEnv(ctx, build.GoEnvOptions{Dir: dir, Logger: slog.New(pr)})
	pr.Stop()
	if err != nil {
		return fmt.Errorf("test: %w", err)
	}
	args := opts.Args
	if len(args) == 0 {
		args = []string{"./..."}
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"test"}, args...)...)
	cmd.Dir, cmd.Env = opts.WorkDir, env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.IO.In, opts.IO.Out, opts.IO.ErrOut
	// Ctrl-C reaches go test too (same process group); let it report.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return childStatus(err)
	}
	return nil
}

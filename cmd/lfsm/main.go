// Command lfsm builds, checks, draws and runs finite state machine workflows
// on AWS Lambda. It is a shim: the command line lives in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lfsm/lfsm/internal/cli"
)

func main() {
	os.Exit(run())
}

// run executes the command line and maps its outcome to the exit status. The
// first interrupt cancels the context, so the command can finish its step and
// exit with 130; restoring default signal handling then lets a second
// interrupt end the process at once.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	err := cli.Execute(ctx, cli.System(), os.Args[1:])
	return cli.ExitCode(err)
}

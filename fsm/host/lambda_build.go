//go:build lambda.norpc

package host

import (
	"context"
	"fmt"
	"io"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// The Lambda build (lfsm build --target aws, tag lambda.norpc) has no local
// commands: they run on the embedded SQLite store, which the function must
// not link (docs/build.md).

func runCmd(_ context.Context, _ *spec.Spec, _ engine.Resolver, _ []string, _, stderr io.Writer) int {
	return notInLambdaBuild(stderr, "run")
}

func workerCmd(_ context.Context, _ *spec.Spec, _ engine.Resolver, _ []string, _, stderr io.Writer) int {
	return notInLambdaBuild(stderr, "worker")
}

func notInLambdaBuild(stderr io.Writer, cmd string) int {
	fmt.Fprintf(stderr, "error: %s runs on the local store, which the Lambda build leaves out: use the binary lfsm build makes without --target aws\n", cmd)
	return exitUsage
}

package cli

import (
	"context"
	"errors"
	"fmt"
)

// Exit statuses of the lfsm command. docs/cli.md documents them; ExitCode is the
// only place that chooses one.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// UsageError is a mistake in how lfsm was invoked: an unknown command or flag,
// a wrong number of arguments, a flag value outside its allowed set.
type UsageError struct {
	Err error
}

// Error returns the message of the wrapped error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a *UsageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// errSilent reports a failure whose explanation was already written (for
// example a spec's diagnostics): Execute prints nothing more, and the exit
// status is ExitFailure.
var errSilent = errors.New("failure already reported")

// ExitError reports that a program lfsm ran for the user (a project's built
// binary) exited with Code after explaining itself on stderr: lfsm prints
// nothing more and exits with the same status.
type ExitError struct {
	Code int
}

// Error says which status the program exited with.
func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode maps an error returned by Execute to the process exit status.
func ExitCode(err error) int {
	var ue *UsageError
	var ee *ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.Code
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.As(err, &ue):
		return ExitUsage
	default:
		return ExitFailure
	}
}

package cli

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/config"
)

// logFlags are the -v and --log-format flags of run and dev. Their λ lines
// and summaries say what happened, so there are no logs unless asked for
// (config.NewLogger): a failed run prints its error once.
type logFlags struct {
	Verbose bool
	Format  string
}

func addLogFlags(cmd *cobra.Command, l *logFlags) {
	fl := cmd.Flags()
	fl.BoolVarP(&l.Verbose, "verbose", "v", false, "also log what the engine does (info level), and print every λ")
	fl.StringVar(&l.Format, "log-format", "", "log structured records as `FORMAT`: text|json (default: no logs unless -v)")
}

// check returns a usage error for an unknown --log-format.
func (l *logFlags) check(f *Factory) error {
	if l.Format == "" {
		return nil
	}
	return checkEnum(f, "log-format", l.Format, config.LogFormats())
}

// logger returns the logger of an in-process run or worker.
func (l *logFlags) logger(ios *IOStreams) *slog.Logger {
	lg, err := config.NewLogger(ios.ErrOut, l.Format, l.Verbose)
	if err != nil { // check has refused the format already
		return slog.New(slog.DiscardHandler)
	}
	return lg
}

// args passes the flags on to a built binary's run or worker command.
func (l *logFlags) args() []string {
	var args []string
	if l.Verbose {
		args = append(args, "-v")
	}
	if l.Format != "" {
		args = append(args, "--log-format", l.Format)
	}
	return args
}

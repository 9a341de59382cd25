// Package cli is lfsm's command line: the root command, the Factory that hands
// commands their dependencies, the IO streams they write to, the binding of
// flags, LFSM_* environment variables and lfsm.yaml, and one file per command.
//
// Each command follows the same shape: newXCmd(f, runF) only parses flags into
// an XOptions value; runX(ctx, opts) does the work against opts.IO. Tests pass a
// runF to stop after parsing, or call runX with buffer-backed streams.
//
// Only this package imports cobra and viper. It never calls os.Exit: Execute
// returns an error and ExitCode maps it to the process exit status, which the
// lfsm main package passes to os.Exit.
package cli

package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/graph"
)

func newExportCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export <format>",
		Short: "Export a machine for another tool",
		Long: heredoc(`
			Export a machine in the format of another tool. Exports are read-only:
			they load and validate the spec and write a document; they contact no
			AWS service.
		`),
		Example: example(`
			lfsm export asl -m Example --lambda-arn arn:aws:lambda:us-east-1:123456789012:function:example
			lfsm export cloudformation --out template.yaml
		`),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown export format %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newExportASLCmd(f, nil), newExportCloudFormationCmd(f, nil))
	return cmd
}

// ExportASLOptions are the inputs of lfsm export asl.
type ExportASLOptions struct {
	IO *IOStreams
	// WorkDir is where diagnostics' paths are made relative to.
	WorkDir   string
	File      string
	Machine   string
	LambdaARN config.LambdaARN
	Out       string
}

func newExportASLCmd(f *Factory, runF func(*ExportASLOptions) error) *cobra.Command {
	opts := &ExportASLOptions{}
	var arn string
	cmd := &cobra.Command{
		Use:   "asl -m MACHINE --lambda-arn ARN [-f FILE] [--out FILE]",
		Short: "Export a machine as Amazon States Language (Step Functions)",
		Long: heredoc(`
			Export a machine as an Amazon States Language definition, to run it
			with AWS Step Functions instead of lfsm's own event stream.

			Each state becomes a Task that invokes the deployed Lambda function
			(retried on States.ALL, 1 s interval, backoff rate 2.0, at most the
			machine's max_retries attempts), followed by a Choice state that picks
			the transition on both $.system_context.current_state and
			$.system_context.current_event (local transitions inside the function
			can move the execution past the task's own state). A final state ends
			the execution unless its event has a transition; a final state's exit
			action runs in a task of its own. Step Functions does the retries; the
			function runs only the machine's actions.

			--lambda-arn must be a Lambda function ARN:
			  arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
		`),
		Example: example(`
			lfsm export asl -m Example \
			  --lambda-arn arn:aws:lambda:us-east-1:123456789012:function:example \
			  --out example.asl.json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Machine == "" {
				return usageErrorf("export asl needs a machine: pass -m MACHINE")
			}
			if arn == "" {
				return usageErrorf("export asl needs the function to call: pass --lambda-arn ARN")
			}
			parsed, err := config.ParseLambdaARN(arn)
			if err != nil {
				return &UsageError{Err: fmt.Errorf("--lambda-arn%s: %w", f.sourceNote("lambda-arn"), err)}
			}
			opts.LambdaARN = parsed
			opts.IO = f.IOStreams
			opts.WorkDir = f.WorkDir
			if runF != nil {
				return runF(opts)
			}
			return runExportASL(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.File, "file", "f", config.DefaultSpecFile, "spec `FILE` to read")
	fl.StringVarP(&opts.Machine, "machine", "m", "", "`MACHINE` to export (required)")
	fl.StringVar(&arn, "lambda-arn", "", "`ARN` of the deployed Lambda function the tasks invoke (required)")
	fl.StringVar(&opts.Out, "out", "", "write to `FILE` instead of stdout")
	return cmd
}

func runExportASL(_ context.Context, opts *ExportASLOptions) error {
	s, err := loadValidSpec(opts.IO, opts.WorkDir, opts.File)
	if err != nil {
		return err
	}
	m, err := s.FindMachine(opts.Machine)
	if err != nil {
		return err
	}
	doc, err := graph.ASL(m, opts.LambdaARN.String())
	if err != nil {
		return fmt.Errorf("export %s as asl: %w", m.Name, err)
	}
	return writeResult(opts.IO, opts.Out, false, func(w io.Writer) error {
		if _, err := w.Write(doc); err != nil {
			return err
		}
		if len(doc) > 0 && doc[len(doc)-1] != '\n' {
			_, err = io.WriteString(w, "\n")
		}
		return err
	})
}

package cli

import (
	"context"

	"github.com/spf13/cobra"
)

// ResumeOptions are the inputs of lfsm resume.
type ResumeOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target        target
	IO            *IOStreams
	File          string
	DB            string
	CorrelationID string
	Output        string
}

func newResumeCmd(f *Factory, runF func(*ResumeOptions) error) *cobra.Command {
	opts := &ResumeOptions{}
	cmd := &cobra.Command{
		Use:   "resume ID [--output text|json]",
		Short: "Restart a failed or stopped execution from its last committed step",
		Long: heredoc(`
			Restart a failed or stopped execution: it becomes running again and
			the message of the step after its last committed one is enqueued
			again, with retries reset (a stopped execution that was waiting goes
			back to waiting). A worker (lfsm dev) runs it. Any other status is an
			error that names it.
		`),
		Example: example(`
			lfsm resume 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e
		`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO, opts.CorrelationID = f.IOStreams, args[0]
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runResume(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runResume(ctx context.Context, opts *ResumeOptions) error {
	db, _, err := opts.Target.open(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := resumeExecution(ctx, db, opts.CorrelationID); err != nil {
		return err
	}
	return writeOperate(ctx, opts.IO, opts.Output, db, OperateResult{Operation: "resume", CorrelationID: opts.CorrelationID})
}

// resumeExecution is what lfsm resume (and the console's Resume button) does.
func resumeExecution(ctx context.Context, db opStore, id string) error {
	e, err := operatorEngine(nil, db)
	if err != nil {
		return err
	}
	return e.Resume(ctx, id)
}

package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// SendOptions are the inputs of lfsm send.
type SendOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target        target
	IO            *IOStreams
	File          string
	DB            string
	CorrelationID string
	Event         string
	Output        string
}

// OperateResult is what send, stop and resume print; its JSON form is
// versioned.
type OperateResult struct {
	FormatVersion string `json:"format_version"`
	// Operation is send, stop or resume.
	Operation     string `json:"operation"`
	CorrelationID string `json:"correlation_id"`
	Event         string `json:"event,omitempty"`
	// Status is the execution's status afterwards.
	Status engine.Status `json:"status"`
}

func newSendCmd(f *Factory, runF func(*SendOptions) error) *cobra.Command {
	opts := &SendOptions{}
	cmd := &cobra.Command{
		Use:   "send ID EVENT [--output text|json]",
		Short: "Deliver an event to a waiting execution",
		Long: heredoc(`
			Deliver EVENT to an execution that is waiting for an outside event (a
			non-final state whose do action returned no event, or that has none).
			The next message is enqueued on the local store; a worker (lfsm dev)
			runs it. An execution that is not waiting is an error that names its
			status, and so is an event with no transition from its state.
		`),
		Example: example(`
			lfsm send 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e done
		`),
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO, opts.CorrelationID, opts.Event = f.IOStreams, args[0], args[1]
			opts.Target = f.target()
			if runF != nil {
				return runF(opts)
			}
			return runSend(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runSend(ctx context.Context, opts *SendOptions) error {
	db, _, err := opts.Target.open(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	// With the spec at hand, an event the state has no transition for is
	// refused before anything is sent.
	var s *spec.Spec
	if _, err := os.Stat(opts.File); err == nil {
		if ls, diags := spec.Load(opts.File); ls != nil && !diags.HasErrors() {
			s = ls
		}
	}
	if err := sendEvent(ctx, db, s, opts.CorrelationID, opts.Event); err != nil {
		return err
	}
	return writeOperate(ctx, opts.IO, opts.Output, db, OperateResult{Operation: "send", CorrelationID: opts.CorrelationID, Event: opts.Event})
}

// sendEvent is what lfsm send (and the console's Send button) does; with s,
// an event the execution's state has no transition for is refused before
// anything is sent.
func sendEvent(ctx context.Context, db opStore, s *spec.Spec, id, event string) error {
	e, err := operatorEngine(s, db)
	if err != nil {
		return err
	}
	return e.Send(ctx, id, event)
}

// writeOperate completes r with the execution's status and prints it.
func writeOperate(ctx context.Context, ios *IOStreams, output string, store engine.Store, r OperateResult) error {
	r.FormatVersion = "1"
	x, err := store.Get(ctx, r.CorrelationID)
	if err != nil {
		return fmt.Errorf("%s %s: %w", r.Operation, r.CorrelationID, err)
	}
	r.Status = x.Status
	if output == outputJSON {
		return writeJSON(ios.Out, r)
	}
	var err2 error
	switch r.Operation {
	case "send":
		_, err2 = fmt.Fprintf(ios.Out, "sent %s to %s (now %s)\n", r.Event, r.CorrelationID, r.Status)
	case "stop":
		_, err2 = fmt.Fprintf(ios.Out, "stopped %s\n", r.CorrelationID)
	default:
		_, err2 = fmt.Fprintf(ios.Out, "resumed %s (now %s)\n", r.CorrelationID, r.Status)
	}
	return err2
}

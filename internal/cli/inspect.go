package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

// InspectOptions are the inputs of lfsm inspect.
type InspectOptions struct {
	// Target is the store the command works on (--target and the aws: settings).
	Target        target
	IO            *IOStreams
	File          string
	DB            string
	CorrelationID string
	Output        string
}

// InspectLease is the lease part of InspectResult.
type InspectLease struct {
	// Held is true while a worker holds the lease (it has not expired).
	Held bool `json:"held"`
	// Step is the step the lease was last granted for.
	Step int `json:"step"`
	// Expires is when a held lease runs out; absent when the lease is open.
	Expires time.Time `json:"expires,omitzero"`
	// Fence is the fence token of the last grant.
	Fence int64 `json:"fence"`
}

// InspectResult is what lfsm inspect prints; its JSON form is versioned.
type InspectResult struct {
	FormatVersion string        `json:"format_version"`
	CorrelationID string        `json:"correlation_id"`
	Machine       string        `json:"machine"`
	Status        engine.Status `json:"status"`
	State         string        `json:"state"`
	Event         string        `json:"event"`
	// Step is the last step committed as done (-1 before the first).
	Step    int          `json:"step"`
	Retries int          `json:"retries"`
	Lease   InspectLease `json:"lease"`
	// LastError explains the status (local.CurrentError): the error of a
	// failed, stopped or retrying execution; empty once it is done.
	LastError string `json:"last_error,omitempty"`
	// SpecHash is the hash of the machine's spec that wrote the checkpoint
	// (system_context.spec_hash); absent for messages of other producers.
	SpecHash  string                `json:"spec_hash,omitempty"`
	Context   map[string]any        `json:"context"`
	CreatedAt time.Time             `json:"created_at"`
	UpdatedAt time.Time             `json:"updated_at"`
	History   []engine.HistoryEntry `json:"history"`
}

func newInspectCmd(f *Factory, runF func(*InspectOptions) error) *cobra.Command {
	opts := &InspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect ID [--output text|json]",
		Short: "Show one execution: status, state, step, retries, lease, history",
		Long: heredoc(`
			Show an execution of the local store: its machine, status (running,
			waiting, done, failed, stopped), current state, last committed step,
			retries of the current step, lease (step, expiry, fence token), last
			error, user context and history, one line per Lambda invocation.

			With --output json the result is one JSON document (format_version "1").
		`),
		Example: example(`
			lfsm inspect 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e
			lfsm inspect 5f0c2a8e9d6b4c1f8a7e3d2c1b0a9f8e --output json | jq .status
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
			return runInspect(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runInspect(ctx context.Context, opts *InspectOptions) error {
	db, _, err := opts.Target.open(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	x, err := db.Get(ctx, opts.CorrelationID)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	hist, err := db.History(ctx, opts.CorrelationID)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	res := InspectResult{
		FormatVersion: "1", CorrelationID: x.CorrelationID, Machine: x.Machine, Status: x.Status,
		State: x.State, Event: x.Event, Step: x.DoneStep, Retries: x.Retries, LastError: local.CurrentError(x),
		Lease:     InspectLease{Step: x.LeaseStep, Fence: x.Fence, Expires: x.LeaseExpires},
		Context:   map[string]any{},
		CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt, History: hist,
	}
	res.Lease.Held = !x.LeaseExpires.IsZero() && x.LeaseExpires.After(time.Now())
	if msg, err := engine.DecodeMessage(x.Checkpoint); err == nil {
		if msg.User != nil {
			res.Context = msg.User
		}
		res.SpecHash = msg.System.SpecHash
	}
	for i := range res.History {
		if res.History[i].Actions == nil {
			res.History[i].Actions = []string{}
		}
	}
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, res)
	}
	return writeInspectText(opts.IO.Out, res, traceFor(opts.File, x.Machine))
}

func writeInspectText(w io.Writer, r InspectResult, trace *local.Trace) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("correlation id", r.CorrelationID)
	row("machine", r.Machine)
	row("status", string(r.Status))
	row("state", r.State)
	if r.Event != "" {
		row("event", r.Event)
	}
	if r.Step < 0 {
		row("step", "none committed yet")
	} else {
		row("step", fmt.Sprintf("%d committed", r.Step))
	}
	row("retries", fmt.Sprint(r.Retries))
	lease := fmt.Sprintf("open (last step %d, fence %d)", r.Lease.Step, r.Lease.Fence)
	switch {
	case r.Lease.Held:
		lease = fmt.Sprintf("held for step %d until %s (fence %d)", r.Lease.Step, r.Lease.Expires.Format(time.RFC3339), r.Lease.Fence)
	case !r.Lease.Expires.IsZero():
		lease = fmt.Sprintf("expired at %s (step %d, fence %d)", r.Lease.Expires.Format(time.RFC3339), r.Lease.Step, r.Lease.Fence)
	}
	row("lease", lease)
	if r.LastError != "" {
		row("last error", r.LastError)
	}
	ctxJSON, _ := json.Marshal(r.Context)
	row("context", string(ctxJSON))
	if r.SpecHash != "" {
		row("spec hash", r.SpecHash)
	}
	row("updated", r.UpdatedAt.Format(time.RFC3339))
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "\nhistory (%d)\n", len(r.History)); err != nil {
		return err
	}
	for _, h := range r.History {
		if _, err := fmt.Fprintf(w, "  step %d  %s\n", h.Step, historyLine(trace, h)); err != nil {
			return err
		}
	}
	// A final state without exit action ends without the end λ's invocation:
	// say so under the last step, as lfsm run does.
	if n := len(r.History); n > 0 && r.Status == engine.StatusDone {
		last := r.History[n-1]
		if end, ok := trace.EndLine(historyLambda(trace, last)); ok {
			pad := strings.Repeat(" ", len(fmt.Sprintf("  step %d  ", last.Step)))
			if _, err := fmt.Fprintf(w, "%s%s\n", pad, end); err != nil {
				return err
			}
		}
	}
	return nil
}

// traceFor returns the λ numbering of a machine of the spec at file, or an
// empty Trace (λ?) when the spec cannot be read or lacks the machine: the
// store is readable without it.
func traceFor(file, machine string) *local.Trace {
	if _, err := os.Stat(file); err == nil {
		if s, diags := spec.Load(file); s != nil && !diags.HasErrors() {
			if m := s.Machine(machine); m != nil {
				return local.NewTrace(m)
			}
		}
	}
	return &local.Trace{}
}

// historyLine renders one history entry like a line of lfsm run.
func historyLine(trace *local.Trace, h engine.HistoryEntry) string {
	return trace.Line(historyLambda(trace, h))
}

// historyLambda is a history entry as the λ of a run.
func historyLambda(trace *local.Trace, h engine.HistoryEntry) local.Lambda {
	l := local.Lambda{Step: h.Step, From: h.From, Event: h.Event, To: h.To, Actions: h.Actions,
		Outcome: h.Outcome, Retries: h.Retries, Error: h.Error, Duration: h.Duration}
	// The λ's own target names the edge taken (pseudo_final for a final
	// state's exit), as lfsm run prints it.
	if n, to, ok := trace.Find(h.From, h.Event); ok {
		l.Number, l.To = n, to
	}
	return l
}

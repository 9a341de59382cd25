package cli

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// LsDroppedResult is what lfsm ls --dropped --output json prints.
type LsDroppedResult struct {
	FormatVersion string                  `json:"format_version"`
	Dropped       []engine.DroppedMessage `json:"dropped"`
}

// runLsDropped lists the messages the engine could not run, newest first.
func runLsDropped(ctx context.Context, opts *LsOptions) error {
	db, _, err := opts.Target.open(ctx, dbPath(opts.DB, opts.File), true)
	if err != nil {
		return err
	}
	defer db.Close()
	dr, ok := db.(engine.DropRecorder)
	if !ok {
		return fmt.Errorf("ls --dropped: this store keeps no record of dropped messages")
	}
	limit := opts.Limit
	if opts.All {
		limit = 0
	}
	ds, err := dr.ListDropped(ctx, engine.DropFilter{Machine: opts.Machine, Limit: limit})
	if err != nil {
		return fmt.Errorf("list dropped messages: %w", err)
	}
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, LsDroppedResult{FormatVersion: "1", Dropped: ds})
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tREASON\tCORRELATION ID\tMACHINE\tSIZE\tDETAIL")
	for _, d := range ds {
		id := d.CorrelationID
		if id != "" && engine.ValidateCorrelationID(id) != nil {
			id = strconv.Quote(id) // an invalid id, as received: keep the table's shape
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.Time.Local().Format(time.DateTime), d.Reason, dash(id),
			dash(d.Machine), d.Size, d.Detail)
	}
	return tw.Flush()
}

// dash stands in for an unknown value in a table.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package engine

import (
	"context"
	"time"
)

// CountRow is how many executions of a machine are in one state and status.
type CountRow struct {
	State  string `json:"state"`
	Status Status `json:"status"`
	N      int    `json:"n"`
}

// Counter is implemented by stores that count executions per state and
// status cheaply (the web console's live counts). It is optional.
type Counter interface {
	// Count returns the counts of machine's executions (every machine's when
	// machine is empty), sorted by state then status, without rows of zero;
	// never nil.
	Count(ctx context.Context, machine string) ([]CountRow, error)
}

// HistoryCount is how many history entries (committed attempts) of one
// machine, from-state, event and outcome a store holds.
type HistoryCount struct {
	Machine string
	State   string
	Event   string
	Outcome Outcome
	N       int64
}

// DropCount is how many dropped messages of one machine and reason a store
// has recorded.
type DropCount struct {
	Machine string
	Reason  DropReason
	N       int64
}

// HistoryCounter is implemented by stores that count their history entries
// and recorded drops cheaply (SQLite: a grouped query over each table), so
// that the engine's counters can be rebuilt from what the store keeps
// (CountersFrom; lfsm metrics on the local store). It is optional. Entries
// and drops older than since are left out (a zero since counts all).
type HistoryCounter interface {
	CountHistory(ctx context.Context, since time.Time) ([]HistoryCount, []DropCount, error)
}

// CountersFrom rebuilds the counters the engine made for the committed
// attempts and recorded drops counted in h and d, by the rules Handle
// counts with: every committed attempt is a dispatch (its from-state and
// event its dimensions); an attempt that failed is an error and a retry,
// or an error and a fatal when it failed the execution; one that ended
// the execution is done; a recorded drop is dropped (machine only), and an
// error too unless it is a pruned execution's. What the store keeps no
// trace of is not there: duplicates, cache failures, repairs, attempts
// whose commit failed, and the Lambda handler's bounced and handed_back.
func CountersFrom(h []HistoryCount, d []DropCount) map[MetricKey]int64 {
	out := map[MetricKey]int64{}
	for _, c := range h {
		k := MetricKey{Machine: c.Machine, State: c.State, Event: c.Event}
		add := func(name string) {
			k.Name = name
			out[k] += c.N
		}
		add(MetricDispatch)
		switch c.Outcome {
		case OutcomeRetry:
			add(MetricRetry)
			add(MetricError)
		case OutcomeFailed:
			add(MetricFatal)
			add(MetricError)
		case OutcomeDone:
			add(MetricDone)
		}
	}
	for _, c := range d {
		out[MetricKey{Name: MetricDropped, Machine: c.Machine}] += c.N
		if c.Reason != DropPruned {
			out[MetricKey{Name: MetricError, Machine: c.Machine}] += c.N
		}
	}
	return out
}

package engine

import "context"

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

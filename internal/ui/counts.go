package ui

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// CountsResult is GET /api/counts: a machine's executions per state and
// status (every machine's when Machine is empty).
type CountsResult struct {
	FormatVersion string            `json:"format_version"`
	Machine       string            `json:"machine"`
	Counts        []engine.CountRow `json:"counts"`
	// ByStatus sums Counts per status; every status is present.
	ByStatus map[engine.Status]int `json:"by_status"`
	Total    int                   `json:"total"`
	// Scanned: the store cannot count (DynamoDB), so the console paged
	// through at most scan_limit executions to count them; Truncated: there
	// were more.
	Scanned   bool `json:"scanned,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
	// At is when the store was counted: counts are at most CountEvery old.
	At time.Time `json:"at"`
}

// counts rate-limits the counting query: one query per machine per
// interval, shared by every caller and every watching page.
type counts struct {
	counter engine.Counter
	scanned bool
	every   time.Duration
	clock   func() time.Time

	mu sync.Mutex
	m  map[string]*countEntry
}

type countEntry struct {
	mu  sync.Mutex
	res CountsResult
	ok  bool
}

func newCounts(c engine.Counter, scanned bool, every time.Duration, clock func() time.Time) *counts {
	return &counts{counter: c, scanned: scanned, every: every, clock: clock, m: map[string]*countEntry{}}
}

// get returns machine's counts, querying the store only when the last
// answer is older than the interval; callers meanwhile wait for the one
// query in flight rather than start their own.
func (c *counts) get(ctx context.Context, machine string) (CountsResult, error) {
	c.mu.Lock()
	e := c.m[machine]
	if e == nil {
		e = &countEntry{}
		c.m[machine] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.clock()
	if e.ok && now.Sub(e.res.At) < c.every {
		return e.res, nil
	}
	rows, err := c.counter.Count(ctx, machine)
	if err != nil {
		return CountsResult{}, err
	}
	res := CountsResult{FormatVersion: "1", Machine: machine, Counts: rows, ByStatus: map[engine.Status]int{}, At: now, Scanned: c.scanned}
	if res.Counts == nil {
		res.Counts = []engine.CountRow{}
	}
	for _, st := range allStatuses {
		res.ByStatus[st] = 0
	}
	for _, r := range rows {
		res.ByStatus[r.Status] += r.N
		res.Total += r.N
	}
	if sc, ok := c.counter.(*scanCounter); ok {
		res.Truncated = sc.truncated(machine)
	}
	e.res, e.ok = res, true
	return res, nil
}

var allStatuses = []engine.Status{engine.StatusRunning, engine.StatusWaiting, engine.StatusFailed, engine.StatusDone, engine.StatusStopped}

// scanCounter counts by paging through List, for a store that is not an
// engine.Counter (the DynamoDB store: counting there costs the read
// capacity of the items read, nothing per transition). It reads at most
// limit executions per count.
type scanCounter struct {
	store engine.Store
	limit int

	mu    sync.Mutex
	trunc map[string]bool
}

func (s *scanCounter) Count(ctx context.Context, machine string) ([]engine.CountRow, error) {
	type key struct {
		state  string
		status engine.Status
	}
	n := map[key]int{}
	read, cursor, truncated := 0, "", false
	for {
		page, err := s.store.List(ctx, engine.ListFilter{Machine: machine, Limit: min(1000, s.limit-read), Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, x := range page.Executions {
			n[key{x.State, x.Status}]++
		}
		read += len(page.Executions)
		cursor = page.Next
		if cursor == "" {
			break
		}
		if read >= s.limit {
			truncated = true
			break
		}
	}
	s.mu.Lock()
	if s.trunc == nil {
		s.trunc = map[string]bool{}
	}
	s.trunc[machine] = truncated
	s.mu.Unlock()
	out := make([]engine.CountRow, 0, len(n))
	for k, c := range n {
		out = append(out, engine.CountRow{State: k.state, Status: k.status, N: c})
	}
	slices.SortFunc(out, func(a, b engine.CountRow) int {
		return cmp.Or(cmp.Compare(a.State, b.State), cmp.Compare(a.Status, b.Status))
	})
	return out, nil
}

func (s *scanCounter) truncated(machine string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trunc[machine]
}

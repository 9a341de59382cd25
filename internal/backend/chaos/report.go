package chaos

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// OpStats is one operation's calls and injected failures.
type OpStats struct {
	// Op is the operation as counted: "dynamodb.Acquire", or "Acquire"
	// for a view of no named backend.
	Op       string `json:"op"`
	Calls    int    `json:"calls"`
	Failures int    `json:"failures"`
}

// Report is what one or more injectors did: every operation called, sorted
// by name, with totals. It is what lfsm dev prints at the end of a run under
// chaos, and what a process under chaos hands its parent (WriteFile).
type Report struct {
	Calls    int       `json:"calls"`
	Failures int       `json:"failures"`
	Ops      []OpStats `json:"ops"`
}

// Report returns the counts so far of i and every view of it.
func (i *Injector) Report() Report {
	calls, failures := i.Stats()
	r := Report{Ops: []OpStats{}}
	for op, n := range calls {
		r.Ops = append(r.Ops, OpStats{Op: op, Calls: n, Failures: failures[op]})
	}
	return r.sorted()
}

func (r Report) sorted() Report {
	r.Calls, r.Failures = 0, 0
	slices.SortFunc(r.Ops, func(a, b OpStats) int { return cmp.Compare(a.Op, b.Op) })
	for _, o := range r.Ops {
		r.Calls += o.Calls
		r.Failures += o.Failures
	}
	if r.Ops == nil {
		r.Ops = []OpStats{}
	}
	return r
}

// Merge returns r and o added up, per operation.
func (r Report) Merge(o Report) Report {
	by := map[string]OpStats{}
	for _, s := range append(slices.Clone(r.Ops), o.Ops...) {
		t := by[s.Op]
		t.Op, t.Calls, t.Failures = s.Op, t.Calls+s.Calls, t.Failures+s.Failures
		by[s.Op] = t
	}
	out := Report{Ops: make([]OpStats, 0, len(by))}
	for _, s := range by {
		out.Ops = append(out.Ops, s)
	}
	return out.sorted()
}

// WriteText writes r as a table, one operation a line:
//
//	chaos: 3 of 41 calls failed
//	  OPERATION          CALLS  FAILED
//	  dynamodb.Acquire      12       2
func (r Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "chaos: %d of %d calls failed\n", r.Failures, r.Calls)
	if len(r.Ops) == 0 {
		return
	}
	width := len("OPERATION")
	for _, o := range r.Ops {
		width = max(width, len(o.Op))
	}
	fmt.Fprintf(w, "  %-*s  %7s  %7s\n", width, "OPERATION", "CALLS", "FAILED")
	for _, o := range r.Ops {
		fmt.Fprintf(w, "  %-*s  %7d  %7d\n", width, o.Op, o.Calls, o.Failures)
	}
}

// WriteFile writes r as JSON to path, through a temporary file renamed into
// place, so that a reader never sees half of it.
func (r Report) WriteFile(path string) error {
	b, err := json.Marshal(r.sorted())
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".chaos-*")
	if err != nil {
		return fmt.Errorf("write chaos report: %w", err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write chaos report %s: %w", path, cmp.Or(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write chaos report: %w", err)
	}
	return nil
}

// ReadFile reads a report WriteFile wrote; a missing file is an empty
// report (the process made no call yet).
func ReadFile(path string) (Report, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return Report{Ops: []OpStats{}}, nil
	}
	if err != nil {
		return Report{}, fmt.Errorf("read chaos report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return Report{}, fmt.Errorf("read chaos report %s: %w", path, err)
	}
	return r.sorted(), nil
}

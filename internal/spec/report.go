package spec

import (
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// ReportFormatVersion is the version of the JSON Report format. It changes only
// when a change would break a consumer.
const ReportFormatVersion = "1"

func severityRank(s Severity) int {
	if s == SeverityError {
		return 0
	}
	return 1
}

// Sort orders d in place by filename, line, column, then severity (errors
// first), code and summary, so that output never depends on discovery order.
func (d Diagnostics) Sort() {
	slices.SortStableFunc(d, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Range.Filename, b.Range.Filename),
			cmp.Compare(a.Range.Start.Line, b.Range.Start.Line),
			cmp.Compare(a.Range.Start.Column, b.Range.Start.Column),
			cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Summary, b.Summary),
		)
	})
}

// HasErrors reports whether any diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if x.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Count returns the number of errors and of warnings in d.
func (d Diagnostics) Count() (errors, warnings int) {
	for _, x := range d {
		if x.Severity == SeverityError {
			errors++
		} else {
			warnings++
		}
	}
	return errors, warnings
}

// Err returns nil when d has no errors, else a *DiagnosticsError holding the
// errors (warnings are left out).
func (d Diagnostics) Err() error {
	var errs Diagnostics
	for _, x := range d {
		if x.Severity == SeverityError {
			errs = append(errs, x)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &DiagnosticsError{Diagnostics: errs}
}

// DiagnosticsError is the error Diagnostics.Err returns: the error diagnostics
// of a spec.
type DiagnosticsError struct {
	Diagnostics Diagnostics
}

// Error lists every diagnostic, one a line, as file:line:col: summary [code].
func (e *DiagnosticsError) Error() string {
	var b strings.Builder
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s: %s [%s]", location(d.Range, ""), d.Summary, d.Code)
	}
	return b.String()
}

// String formats d the way WriteText's first line does.
func (d Diagnostic) String() string {
	return fmt.Sprintf("%s: %s: %s [%s]", location(d.Range, ""), d.Severity, d.Summary, d.Code)
}

// location formats a range's start as file:line:col (file alone when the range
// has no line), with the path relative to cwd when cwd is set and it can be.
func location(r Range, cwd string) string {
	name := r.Filename
	if name == "" {
		name = "<input>"
	} else if cwd != "" && filepath.IsAbs(name) {
		if rel, err := filepath.Rel(cwd, name); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			name = rel
		}
	}
	if r.Start.Line == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d:%d", name, r.Start.Line, r.Start.Column)
}

// WriteText writes d for people: one "file:line:col: severity: summary [code]"
// line per diagnostic, its detail and hint indented below it, then a blank line
// and a count ("1 error, 2 warnings", or "no problems"). Absolute paths are shown
// relative to cwd when they lie below it. The text is not a stable format: use
// NewReport for machines.
func WriteText(w io.Writer, d Diagnostics, cwd string) error {
	var b strings.Builder
	for _, x := range d {
		fmt.Fprintf(&b, "%s: %s: %s [%s]\n", location(x.Range, cwd), x.Severity, x.Summary, x.Code)
		if x.Detail != "" {
			fmt.Fprintf(&b, "  %s\n", x.Detail)
		}
		if x.Hint != "" {
			fmt.Fprintf(&b, "  hint: %s\n", x.Hint)
		}
	}
	if len(d) > 0 {
		b.WriteByte('\n')
	}
	b.WriteString(countText(d))
	b.WriteByte('\n')
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write diagnostics: %w", err)
	}
	return nil
}

func countText(d Diagnostics) string {
	if len(d) == 0 {
		return "no problems"
	}
	e, w := d.Count()
	return plural(e, "error") + ", " + plural(w, "warning")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Report is the JSON form of a validation result. Its shape is a versioned
// contract (FormatVersion); Diagnostics is never null.
type Report struct {
	FormatVersion string       `json:"format_version"`
	Valid         bool         `json:"valid"`
	ErrorCount    int          `json:"error_count"`
	WarningCount  int          `json:"warning_count"`
	Diagnostics   []Diagnostic `json:"diagnostics"`
}

// NewReport builds the Report of d, sorted, without modifying d.
func NewReport(d Diagnostics) Report {
	list := make(Diagnostics, len(d))
	copy(list, d)
	list.Sort()
	e, w := d.Count()
	return Report{
		FormatVersion: ReportFormatVersion,
		Valid:         e == 0,
		ErrorCount:    e,
		WarningCount:  w,
		Diagnostics:   list,
	}
}

package spec

// Severity of a diagnostic.
type Severity string

// Severities, in the order they sort (errors first).
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic is one problem in what a user wrote, at a source range.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	// Code is a stable kebab-case rule id, e.g. "unknown-target".
	Code string `json:"code"`
	// Summary is a short lowercase sentence without a trailing period.
	Summary string `json:"summary"`
	// Detail explains further; may be empty.
	Detail string `json:"detail"`
	// Hint suggests a fix ("did you mean \"shipped\"?"); may be empty.
	Hint  string `json:"hint,omitempty"`
	Range Range  `json:"range"`
}

// Diagnostics accumulate; sort them before reporting.
type Diagnostics []Diagnostic

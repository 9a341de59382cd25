package spec

// Diagnostic codes. They are a stable contract: tools and users match on them.
const (
	CodeYAMLSyntax            = "yaml-syntax"
	CodeTooManyAliases        = "too-many-aliases"
	CodeFileNotFound          = "file-not-found"
	CodeReadError             = "read-error"
	CodeWrongType             = "wrong-type"
	CodeUnknownKey            = "unknown-key"
	CodeDuplicateKey          = "duplicate-key"
	CodeMissingField          = "missing-field"
	CodeNoMachines            = "no-machines"
	CodeImportNotFound        = "import-not-found"
	CodeImportCycle           = "import-cycle"
	CodeInvalidMaxRetries     = "invalid-max-retries"
	CodeInvalidMaxSteps       = "invalid-max-steps"
	CodeInvalidRetryDelay     = "invalid-retry-delay"
	CodeDuplicateMachine      = "duplicate-machine"
	CodeDuplicateState        = "duplicate-state"
	CodeReservedName          = "reserved-name"
	CodeNoInitialState        = "no-initial-state"
	CodeMultipleInitialStates = "multiple-initial-states"
	CodeNoFinalState          = "no-final-state"
	CodeUnknownTarget         = "unknown-target"
	CodeDuplicateEvent        = "duplicate-event"
	CodeDeadEndState          = "dead-end-state"
	CodeUnreachableState      = "unreachable-state"
	CodeFinalUnreachable      = "final-unreachable"
	CodeNoDoAction            = "no-do-action"
	CodeLocalCycle            = "local-cycle"
	CodeNotGoSymbol           = "not-go-symbol"
)

// Rule describes one diagnostic code: its severity and what it checks.
type Rule struct {
	Code     string
	Severity Severity
	// Doc says in one line what the rule reports.
	Doc string
}

var rules = []Rule{
	{CodeYAMLSyntax, SeverityError, "the file is not valid YAML"},
	{CodeTooManyAliases, SeverityError, "YAML aliases expand the document far beyond its size"},
	{CodeFileNotFound, SeverityError, "the spec file named on the command line does not exist"},
	{CodeReadError, SeverityError, "a spec file exists but cannot be read"},
	{CodeWrongType, SeverityError, "a value has the wrong type (a list where a name belongs, a non-boolean initial, ...)"},
	{CodeUnknownKey, SeverityError, "a key the format does not define, usually a typo"},
	{CodeDuplicateKey, SeverityError, "the same key twice in one mapping"},
	{CodeMissingField, SeverityError, "a required key (name, target, event, import path) is missing or empty"},
	{CodeNoMachines, SeverityError, "a file has no machines list, or an empty one"},
	{CodeImportNotFound, SeverityError, "an imported file does not exist"},
	{CodeImportCycle, SeverityError, "a file imports itself, directly or through other files"},
	{CodeInvalidMaxRetries, SeverityError, "max_retries is not a non-negative integer"},
	{CodeInvalidMaxSteps, SeverityError, "max_steps is not an integer >= 1"},
	{CodeInvalidRetryDelay, SeverityError, "retry_delay or max_retry_delay is not a whole number of seconds from 1 to 604800 (7 days), or retry_delay exceeds max_retry_delay"},
	{CodeDuplicateMachine, SeverityError, "two machines have the same name, across all imported files"},
	{CodeDuplicateState, SeverityError, "two states of one machine have the same name"},
	{CodeReservedName, SeverityError, "pseudo_init or pseudo_final used as a state or event name"},
	{CodeNoInitialState, SeverityError, "a machine has no state marked initial"},
	{CodeMultipleInitialStates, SeverityError, "a machine has more than one state marked initial"},
	{CodeNoFinalState, SeverityError, "a machine has no state marked final"},
	{CodeUnknownTarget, SeverityError, "a transition targets a state the machine does not have"},
	{CodeDuplicateEvent, SeverityError, "one state has two transitions on the same event"},
	{CodeDeadEndState, SeverityError, "a non-final state has no transitions: executions stall there"},
	{CodeUnreachableState, SeverityWarning, "no path leads from the initial state to this state"},
	{CodeFinalUnreachable, SeverityWarning, "no final state can be reached from this state: executions may never finish"},
	{CodeNoDoAction, SeverityWarning, "a non-final state has no do action: executions wait there for an outside event"},
	{CodeLocalCycle, SeverityWarning, "a cycle made only of local transitions loops inside one invocation"},
	{CodeNotGoSymbol, SeverityError, "with action checks: an action reference is not of the form import/path.Identifier"},
}

// Rules lists every diagnostic code that Load and Validate can report.
func Rules() []Rule {
	return append([]Rule(nil), rules...)
}

// severityOf returns the severity registered for code.
func severityOf(code string) Severity {
	for _, r := range rules {
		if r.Code == code {
			return r.Severity
		}
	}
	panic("spec: unregistered diagnostic code " + code)
}

// diag builds a diagnostic with the severity its code is registered with.
func diag(code string, r Range, summary, detail, hint string) Diagnostic {
	return Diagnostic{Severity: severityOf(code), Code: code, Summary: summary, Detail: detail, Hint: hint, Range: r}
}

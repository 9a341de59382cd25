package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// CloudFormation is the part of the CloudFormation API the change-set flow
// uses; *cloudformation.Client implements it.
type CloudFormation interface {
	CreateChangeSet(context.Context, *cfn.CreateChangeSetInput, ...func(*cfn.Options)) (*cfn.CreateChangeSetOutput, error)
	DescribeChangeSet(context.Context, *cfn.DescribeChangeSetInput, ...func(*cfn.Options)) (*cfn.DescribeChangeSetOutput, error)
	ExecuteChangeSet(context.Context, *cfn.ExecuteChangeSetInput, ...func(*cfn.Options)) (*cfn.ExecuteChangeSetOutput, error)
	DeleteChangeSet(context.Context, *cfn.DeleteChangeSetInput, ...func(*cfn.Options)) (*cfn.DeleteChangeSetOutput, error)
	DescribeStacks(context.Context, *cfn.DescribeStacksInput, ...func(*cfn.Options)) (*cfn.DescribeStacksOutput, error)
	DescribeStackEvents(context.Context, *cfn.DescribeStackEventsInput, ...func(*cfn.Options)) (*cfn.DescribeStackEventsOutput, error)
	DeleteStack(context.Context, *cfn.DeleteStackInput, ...func(*cfn.Options)) (*cfn.DeleteStackOutput, error)
}

// Deployer runs the change-set flow against one region's CloudFormation.
type Deployer struct {
	CFN CloudFormation
	// Wait pauses between polls; nil waits PollInterval (or 2 s). Tests pass
	// one that returns at once.
	Wait         func(ctx context.Context) error
	PollInterval time.Duration
	// Progress receives each new stack event while a change set executes or
	// a stack is deleted, oldest first; nil discards them.
	Progress func(Event)
	// Logger is nil for none.
	Logger *slog.Logger
	// Now names change sets; nil is time.Now.
	Now func() time.Time
}

// Event is one stack event.
type Event struct {
	Time      time.Time `json:"time"`
	LogicalID string    `json:"logical_id"`
	Type      string    `json:"type"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason,omitempty"`
}

// Change is one resource change of a plan.
type Change struct {
	// Action is add, modify, remove (or import, dynamic).
	Action    string `json:"action"`
	LogicalID string `json:"logical_id"`
	Type      string `json:"type"`
	// Replacement is "true", "false" or "conditional" for modify.
	Replacement string `json:"replacement,omitempty"`
	// Properties are the properties that change; Recreate the ones among
	// them whose change replaces the resource.
	Properties []string `json:"properties"`
	Recreate   []string `json:"recreate"`
}

// Replaced reports whether the change may replace the resource.
func (c Change) Replaced() bool {
	return c.Action == "modify" && (c.Replacement == "true" || c.Replacement == "conditional")
}

// Plan is a change set that has been created and not yet executed.
type Plan struct {
	Stack string `json:"stack"`
	// NewStack: the stack did not exist; the change set created it in
	// REVIEW_IN_PROGRESS, and discarding the plan deletes it again.
	NewStack  bool     `json:"new_stack"`
	ChangeSet string   `json:"change_set"`
	Changes   []Change `json:"changes"`
}

// HasChanges reports whether executing the plan would change anything.
func (p *Plan) HasChanges() bool { return len(p.Changes) > 0 }

// PlanInput is what a plan deploys.
type PlanInput struct {
	Stack      string
	Template   []byte
	Parameters map[string]string
	Tags       map[string]string
	// Imports makes the plan a resource import (ChangeSetType IMPORT): the
	// template must then hold exactly the stack's resources and these.
	Imports []Import
}

// Import is an existing resource to adopt into the stack.
type Import struct {
	LogicalID string `json:"logical_id"`
	Type      string `json:"type"`
	// Identifier is the resource's primary identifier (TableName: NAME).
	Identifier map[string]string `json:"identifier"`
}

// StackStatusError is a stack in a state that needs a person: a failed first
// create (ROLLBACK_COMPLETE) can only be deleted, and an operation in
// progress must end first.
type StackStatusError struct {
	Stack, Status, Reason string
}

// Error says what state the stack is in and what to do.
func (e *StackStatusError) Error() string {
	switch {
	case e.Status == string(types.StackStatusRollbackComplete):
		return fmt.Sprintf("stack %s is %s: its first create failed and rolled back, and CloudFormation can only delete it now (lfsm destroy --stack %s, then deploy again)", e.Stack, e.Status, e.Stack)
	case strings.HasSuffix(e.Status, "_IN_PROGRESS"):
		return fmt.Sprintf("stack %s is %s: another operation is running; wait for it to finish", e.Stack, e.Status)
	}
	return fmt.Sprintf("stack %s is %s: %s", e.Stack, e.Status, e.Reason)
}

// NeedsDelete reports whether only deleting the stack can clear its state.
func (e *StackStatusError) NeedsDelete() bool {
	return e.Status == string(types.StackStatusRollbackComplete)
}

// Failure is a resource that failed during an operation.
type Failure struct {
	LogicalID string `json:"logical_id"`
	Type      string `json:"type"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
}

// FailedError is an operation that did not complete: the stack's final
// status, and the resources that failed (the first is usually the cause).
type FailedError struct {
	Stack    string
	Status   string
	Failures []Failure
}

// Error names the resource that failed, CloudFormation's reason, and what
// became of the stack.
func (e *FailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "deploy of stack %s failed", e.Stack)
	if len(e.Failures) > 0 {
		f := e.Failures[0]
		fmt.Fprintf(&b, ": %s (%s) %s: %s", f.LogicalID, f.Type, f.Status, f.Reason)
	}
	switch e.Status {
	case string(types.StackStatusRollbackComplete):
		fmt.Fprintf(&b, "; the stack rolled back to nothing (ROLLBACK_COMPLETE) and can only be deleted: lfsm destroy --stack %s", e.Stack)
	case string(types.StackStatusUpdateRollbackComplete):
		b.WriteString("; the stack rolled back to its previous state (UPDATE_ROLLBACK_COMPLETE)")
	default:
		fmt.Fprintf(&b, "; the stack is %s", e.Status)
	}
	return b.String()
}

// NeedsDelete reports whether the stack must be deleted before a new deploy.
func (e *FailedError) NeedsDelete() bool {
	return e.Status == string(types.StackStatusRollbackComplete)
}

// ReplaceError is a plan that would replace a stateful table (and with it
// every execution in it).
type ReplaceError struct {
	Stack   string
	Changes []Change
}

// Error names each table and the properties that replace it.
func (e *ReplaceError) Error() string {
	var parts []string
	for _, c := range e.Changes {
		props := c.Recreate
		if len(props) == 0 {
			props = c.Properties
		}
		parts = append(parts, fmt.Sprintf("%s (changing %s)", c.LogicalID, strings.Join(props, ", ")))
	}
	return fmt.Sprintf("refusing to replace stateful tables of stack %s: %s; a replacement starts an empty table (the old one is retained, not deleted). Revert the change, or pass --force to replace anyway",
		e.Stack, strings.Join(parts, "; "))
}

// IsNotFound reports whether err is CloudFormation's answer for a stack that
// does not exist (a 400 ValidationError "Stack with id X does not exist").
func IsNotFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist")
}

// noChanges is how CloudFormation says a change set is empty.
func noChanges(reason string) bool {
	return strings.Contains(reason, "didn't contain changes") || strings.Contains(reason, "No updates are to be performed")
}

func (d *Deployer) wait(ctx context.Context) error {
	if d.Wait != nil {
		return d.Wait(ctx)
	}
	iv := d.PollInterval
	if iv == 0 {
		iv = 2 * time.Second
	}
	t := time.NewTimer(iv)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (d *Deployer) log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// Stack is what DescribeStacks says about a stack; nil when there is none.
func (d *Deployer) Stack(ctx context.Context, name string) (*types.Stack, error) {
	out, err := d.CFN.DescribeStacks(ctx, &cfn.DescribeStacksInput{StackName: aws.String(name)})
	if IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe stack %s: %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return nil, nil
	}
	return &out.Stacks[0], nil
}

// Outputs returns the outputs of stack name by key.
func (d *Deployer) Outputs(ctx context.Context, name string) (map[string]string, error) {
	st, err := d.Stack(ctx, name)
	if err != nil || st == nil {
		return nil, err
	}
	out := map[string]string{}
	for _, o := range st.Outputs {
		out[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return out, nil
}

// Plan creates a change set for in (CREATE for a stack that does not exist,
// UPDATE otherwise; CAPABILITY_IAM), waits until CloudFormation has computed
// it and returns its changes. An empty change set is deleted at once and
// returned as a plan without changes.
func (d *Deployer) Plan(ctx context.Context, in PlanInput) (*Plan, error) {
	st, err := d.Stack(ctx, in.Stack)
	if err != nil {
		return nil, err
	}
	typ := types.ChangeSetTypeUpdate
	newStack := st == nil || st.StackStatus == types.StackStatusReviewInProgress
	if newStack {
		// A stack in REVIEW_IN_PROGRESS was left by a plan that was never
		// executed: it has no resources, and takes a CREATE change set.
		typ = types.ChangeSetTypeCreate
	} else if s := string(st.StackStatus); s == string(types.StackStatusRollbackComplete) || strings.HasSuffix(s, "_IN_PROGRESS") || strings.HasSuffix(s, "_FAILED") && s != string(types.StackStatusUpdateFailed) {
		return nil, &StackStatusError{Stack: in.Stack, Status: s, Reason: aws.ToString(st.StackStatusReason)}
	}
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	name := "lfsm-" + now().UTC().Format("20060102-150405")
	if len(in.Imports) > 0 {
		typ = types.ChangeSetTypeImport
		name = "lfsm-import-" + now().UTC().Format("20060102-150405")
	}
	input := &cfn.CreateChangeSetInput{
		StackName:     aws.String(in.Stack),
		ChangeSetName: aws.String(name),
		ChangeSetType: typ,
		TemplateBody:  aws.String(string(in.Template)),
		Capabilities:  []types.Capability{types.CapabilityCapabilityIam},
		Description:   aws.String("lfsm deploy"),
	}
	for _, k := range sortedKeys(in.Parameters) {
		input.Parameters = append(input.Parameters, types.Parameter{ParameterKey: aws.String(k), ParameterValue: aws.String(in.Parameters[k])})
	}
	for _, k := range sortedKeys(in.Tags) {
		input.Tags = append(input.Tags, types.Tag{Key: aws.String(k), Value: aws.String(in.Tags[k])})
	}
	for _, im := range in.Imports {
		input.ResourcesToImport = append(input.ResourcesToImport, types.ResourceToImport{
			LogicalResourceId: aws.String(im.LogicalID), ResourceType: aws.String(im.Type), ResourceIdentifier: im.Identifier,
		})
	}
	created, err := d.CFN.CreateChangeSet(ctx, input)
	if err != nil {
		return nil, fmt.Errorf("create change set for stack %s: %w", in.Stack, err)
	}
	plan := &Plan{Stack: in.Stack, NewStack: newStack, ChangeSet: aws.ToString(created.Id), Changes: []Change{}}
	d.log().Info("change set created", "stack", in.Stack, "change_set", plan.ChangeSet)
	for {
		changes, status, reason, err := d.describeChangeSet(ctx, plan)
		if err != nil {
			return nil, err
		}
		switch status {
		case types.ChangeSetStatusCreateComplete:
			plan.Changes = changes
			return plan, nil
		case types.ChangeSetStatusFailed:
			if noChanges(reason) {
				return plan, d.deleteChangeSet(ctx, plan)
			}
			derr := d.Discard(context.WithoutCancel(ctx), plan)
			return nil, errors.Join(fmt.Errorf("change set for stack %s failed: %s", in.Stack, reason), derr)
		}
		if err := d.wait(ctx); err != nil {
			return nil, err
		}
	}
}

func (d *Deployer) describeChangeSet(ctx context.Context, p *Plan) ([]Change, types.ChangeSetStatus, string, error) {
	var changes []Change
	var token *string
	for {
		out, err := d.CFN.DescribeChangeSet(ctx, &cfn.DescribeChangeSetInput{
			StackName: aws.String(p.Stack), ChangeSetName: aws.String(p.ChangeSet), NextToken: token,
		})
		if err != nil {
			return nil, "", "", fmt.Errorf("describe change set of stack %s: %w", p.Stack, err)
		}
		if out.Status != types.ChangeSetStatusCreateComplete {
			return nil, out.Status, aws.ToString(out.StatusReason), nil
		}
		for _, c := range out.Changes {
			if rc := c.ResourceChange; rc != nil {
				changes = append(changes, change(rc))
			}
		}
		if token = out.NextToken; token == nil {
			slices.SortFunc(changes, func(a, b Change) int { return strings.Compare(a.LogicalID, b.LogicalID) })
			return changes, out.Status, "", nil
		}
	}
}

func change(rc *types.ResourceChange) Change {
	c := Change{
		Action:     strings.ToLower(string(rc.Action)),
		LogicalID:  aws.ToString(rc.LogicalResourceId),
		Type:       aws.ToString(rc.ResourceType),
		Properties: []string{},
		Recreate:   []string{},
	}
	if rc.Action == types.ChangeActionModify {
		c.Replacement = strings.ToLower(string(rc.Replacement))
	}
	for _, det := range rc.Details {
		t := det.Target
		if t == nil || t.Attribute != types.ResourceAttributeProperties || aws.ToString(t.Name) == "" {
			continue
		}
		n := aws.ToString(t.Name)
		if !slices.Contains(c.Properties, n) {
			c.Properties = append(c.Properties, n)
		}
		if t.RequiresRecreation != types.RequiresRecreationNever && t.RequiresRecreation != "" && !slices.Contains(c.Recreate, n) {
			c.Recreate = append(c.Recreate, n)
		}
	}
	slices.Sort(c.Properties)
	slices.Sort(c.Recreate)
	return c
}

// CheckReplacements refuses a plan that would replace a stateful table of m.
func (m *Model) CheckReplacements(p *Plan) error {
	var bad []Change
	for _, c := range p.Changes {
		if tb := m.Table(c.LogicalID); tb != nil && tb.Stateful && c.Replaced() {
			bad = append(bad, c)
		}
	}
	if bad != nil {
		return &ReplaceError{Stack: p.Stack, Changes: bad}
	}
	return nil
}

func (d *Deployer) deleteChangeSet(ctx context.Context, p *Plan) error {
	_, err := d.CFN.DeleteChangeSet(ctx, &cfn.DeleteChangeSetInput{StackName: aws.String(p.Stack), ChangeSetName: aws.String(p.ChangeSet)})
	if err != nil {
		return fmt.Errorf("delete change set of stack %s: %w", p.Stack, err)
	}
	return nil
}

// Discard deletes the plan's change set, and the empty stack a plan for a
// new stack leaves in REVIEW_IN_PROGRESS.
func (d *Deployer) Discard(ctx context.Context, p *Plan) error {
	if err := d.deleteChangeSet(ctx, p); err != nil {
		return err
	}
	if !p.NewStack {
		return nil
	}
	if _, err := d.CFN.DeleteStack(ctx, &cfn.DeleteStackInput{StackName: aws.String(p.Stack)}); err != nil {
		return fmt.Errorf("delete the empty stack %s the plan created: %w", p.Stack, err)
	}
	return nil
}

// Execute applies the plan and follows the stack's events until the stack
// is complete. A failure returns a *FailedError naming the resources.
func (d *Deployer) Execute(ctx context.Context, p *Plan) error {
	seen, err := d.eventsSeen(ctx, p.Stack)
	if err != nil {
		return err
	}
	if _, err := d.CFN.ExecuteChangeSet(ctx, &cfn.ExecuteChangeSetInput{StackName: aws.String(p.Stack), ChangeSetName: aws.String(p.ChangeSet)}); err != nil {
		return fmt.Errorf("execute change set of stack %s: %w", p.Stack, err)
	}
	return d.follow(ctx, p.Stack, seen, false)
}

// Destroy deletes the stack and follows its events until it is gone. It
// returns the resources CloudFormation kept (DeletionPolicy Retain). A stack
// that does not exist is not an error: nothing is kept.
func (d *Deployer) Destroy(ctx context.Context, stack string) ([]Event, error) {
	st, err := d.Stack(ctx, stack)
	if err != nil || st == nil {
		return nil, err
	}
	seen, err := d.eventsSeen(ctx, stack)
	if err != nil {
		return nil, err
	}
	// Follow by the stack's id: once deleted, its name no longer resolves.
	id := aws.ToString(st.StackId)
	if _, err := d.CFN.DeleteStack(ctx, &cfn.DeleteStackInput{StackName: aws.String(stack)}); err != nil {
		return nil, fmt.Errorf("delete stack %s: %w", stack, err)
	}
	var kept []Event
	prog := d.Progress
	d.Progress = func(e Event) {
		if e.Status == string(types.ResourceStatusDeleteSkipped) {
			kept = append(kept, e)
		}
		if prog != nil {
			prog(e)
		}
	}
	defer func() { d.Progress = prog }()
	if err := d.follow(ctx, id, seen, true); err != nil {
		return kept, err
	}
	return kept, nil
}

// eventsSeen returns the ids of the stack's events so far, so that only new
// ones are shown.
func (d *Deployer) eventsSeen(ctx context.Context, stack string) (map[string]bool, error) {
	seen := map[string]bool{}
	out, err := d.CFN.DescribeStackEvents(ctx, &cfn.DescribeStackEventsInput{StackName: aws.String(stack)})
	if IsNotFound(err) {
		return seen, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events of stack %s: %w", stack, err)
	}
	for _, e := range out.StackEvents {
		seen[aws.ToString(e.EventId)] = true
	}
	return seen, nil
}

// follow polls the stack's events until its status is final.
func (d *Deployer) follow(ctx context.Context, stack string, seen map[string]bool, deleting bool) error {
	var failures []Failure
	for {
		// Status first, then events: events up to a final status are all
		// there once the status says so.
		st, err := d.Stack(ctx, stack)
		if err != nil {
			return err
		}
		evs, err := d.newEvents(ctx, stack, seen)
		if err != nil && !(deleting && IsNotFound(err)) {
			return err
		}
		for _, e := range evs {
			if strings.HasSuffix(e.Status, "_FAILED") && e.Reason != "Resource creation cancelled" && e.Reason != "Resource update cancelled" && e.LogicalID != stack {
				failures = append(failures, Failure{LogicalID: e.LogicalID, Type: e.Type, Status: e.Status, Reason: e.Reason})
			}
			if d.Progress != nil {
				d.Progress(e)
			}
		}
		status := ""
		if st != nil {
			status = string(st.StackStatus)
		}
		switch {
		case st == nil && deleting, status == string(types.StackStatusDeleteComplete):
			return nil
		case status == string(types.StackStatusCreateComplete), status == string(types.StackStatusUpdateComplete), status == string(types.StackStatusImportComplete):
			return nil
		case !strings.HasSuffix(status, "_IN_PROGRESS"):
			return &FailedError{Stack: aws.ToString(st.StackName), Status: status, Failures: failures}
		}
		if err := d.wait(ctx); err != nil {
			return err
		}
	}
}

// newEvents returns the stack's events not in seen, oldest first.
func (d *Deployer) newEvents(ctx context.Context, stack string, seen map[string]bool) ([]Event, error) {
	var evs []Event
	var token *string
	for {
		out, err := d.CFN.DescribeStackEvents(ctx, &cfn.DescribeStackEventsInput{StackName: aws.String(stack), NextToken: token})
		if err != nil {
			return nil, fmt.Errorf("read events of stack %s: %w", stack, err)
		}
		stop := false
		// Newest first: stop at the first one already seen.
		for _, e := range out.StackEvents {
			id := aws.ToString(e.EventId)
			if seen[id] {
				stop = true
				break
			}
			seen[id] = true
			evs = append(evs, Event{
				Time: aws.ToTime(e.Timestamp), LogicalID: aws.ToString(e.LogicalResourceId),
				Type: aws.ToString(e.ResourceType), Status: string(e.ResourceStatus),
				Reason: aws.ToString(e.ResourceStatusReason),
			})
		}
		if token = out.NextToken; stop || token == nil {
			break
		}
	}
	slices.Reverse(evs)
	return evs, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Package cfnfake is a fake of the CloudFormation API for tests, served over
// HTTP in the query protocol the AWS SDK speaks (form-encoded requests, XML
// responses). No CloudFormation emulator exists that runs here (see
// EMULATORS.md), so the change-set flow is tested against this fake, which
// decodes exactly what the SDK sends and keeps state: stacks, their
// resources and templates, change sets, and stack events that it releases a
// few at a time so that callers really poll.
//
// It models what the flow depends on: CREATE change sets leave a new stack in
// REVIEW_IN_PROGRESS; an empty change set fails with "didn't contain
// changes"; IAM resources need CAPABILITY_IAM; a modified property listed as
// create-only in the type's resource schema replaces the resource; a resource
// can be made to fail (Fail), which rolls the operation back
// (ROLLBACK_COMPLETE for a first create, UPDATE_ROLLBACK_COMPLETE
// otherwise); DeletionPolicy Retain skips the delete; DescribeStacks of a
// missing stack is a 400 ValidationError.
package cfnfake

import (
	"crypto/rand"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	region  = "us-east-1"
	account = "123456789012"
)

// Fake is the fake's state. Use New, then serve it with httptest.
type Fake struct {
	mu sync.Mutex
	// Fail makes the named logical resource fail with the reason whenever an
	// operation creates or updates it.
	Fail map[string]string
	// OnCreate is called (without the lock) for every resource an executed
	// change set creates, with its type and physical id.
	OnCreate func(typ, physicalID string)
	// Calls lists every action received, in order.
	Calls []Call
	// Existing are physical names of resources that exist outside any stack
	// (a table a destroy retained): creating one fails, importing adopts it.
	Existing map[string]bool

	createOnly map[string][]string
	condOnly   map[string][]string
	stacks     map[string]*stack // by name, live
	byID       map[string]*stack // every stack ever, by id
	seq        int
	clock      time.Time
}

// Call is one request: the action and its decoded form values.
type Call struct {
	Action string
	Params url.Values
}

type resource struct {
	Type       string
	Props      map[string]any
	Retain     bool
	PhysicalID string
}

type changeSet struct {
	id, name  string
	typ       string
	template  string
	resources map[string]resource
	params    map[string]string
	outputs   map[string]any
	changes   []rchange
	status    string
	reason    string
	described bool
}

type rchange struct {
	Action      string // Add, Modify, Remove
	LogicalID   string
	Type        string
	Replacement string
	Details     []detail
}

type detail struct {
	Name     string
	Recreate string // Always, Never
}

type event struct {
	ID, LogicalID, PhysicalID, Type, Status, Reason string
	Time                                            time.Time
}

type pending struct {
	ev     event
	status string // stack status to set when released ("" = none)
	apply  func()
}

type stack struct {
	id, name   string
	status     string
	reason     string
	resources  map[string]resource
	params     map[string]string
	outputs    map[string]string
	template   string
	events     []event
	pending    []pending
	changeSets map[string]*changeSet
	created    time.Time
}

// New returns a fake that reads create-only properties from the resource
// schemas in schemaDir (CloudFormation's resource provider schemas).
func New(schemaDir string) (*Fake, error) {
	f := &Fake{
		Fail: map[string]string{}, Existing: map[string]bool{}, createOnly: map[string][]string{}, condOnly: map[string][]string{},
		stacks: map[string]*stack{}, byID: map[string]*stack{},
		clock: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
	}
	files, err := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("cfnfake: no schemas in %s", schemaDir)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var s struct {
			TypeName             string   `json:"typeName"`
			CreateOnlyProperties []string `json:"createOnlyProperties"`
			Conditional          []string `json:"conditionalCreateOnlyProperties"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("cfnfake: %s: %w", file, err)
		}
		add := func(m map[string][]string, props []string) {
			for _, p := range props {
				p = strings.TrimPrefix(p, "/properties/")
				p, _, _ = strings.Cut(p, "/")
				if !slices.Contains(m[s.TypeName], p) {
					m[s.TypeName] = append(m[s.TypeName], p)
				}
			}
		}
		add(f.createOnly, s.CreateOnlyProperties)
		add(f.condOnly, s.Conditional)
	}
	return f, nil
}

// StackStatus returns the status of the live stack name ("" when none).
func (f *Fake) StackStatus(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.stacks[name]; s != nil {
		return s.status
	}
	return ""
}

// Resources returns the logical ids of the live stack's resources, sorted.
func (f *Fake) Resources(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stacks[name]
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.resources))
}

// SetProperty changes a property of a live stack's resource, as if the
// stack had been deployed from another template (a test makes the next
// change set modify that property).
func (f *Fake) SetProperty(stackName, logicalID, prop string, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stacks[stackName]
	if s == nil {
		return
	}
	r := s.resources[logicalID]
	r.Props = maps.Clone(r.Props)
	r.Props[prop] = v
	s.resources[logicalID] = r
}

// Property returns a property of a live stack's resource as the last
// executed change set left it (nil when there is none).
func (f *Fake) Property(stackName, logicalID, prop string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stacks[stackName]
	if s == nil {
		return nil
	}
	return s.resources[logicalID].Props[prop]
}

// ChangeSets returns the names of the stack's change sets.
func (f *Fake) ChangeSets(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stacks[name]
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.changeSets))
}

// Actions returns the actions received, in order.
func (f *Fake) Actions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.Calls {
		out = append(out, c.Action)
	}
	return out
}

type apiError struct {
	status     int
	code, msg  string
	senderSide bool
}

func validation(format string, args ...any) *apiError {
	return &apiError{status: 400, code: "ValidationError", msg: fmt.Sprintf(format, args...), senderSide: true}
}

// ServeHTTP decodes one query-protocol request and answers it.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.writeError(w, validation("bad form: %v", err))
		return
	}
	p := r.PostForm
	if p.Get("Version") != "2010-05-15" {
		f.writeError(w, validation("unknown Version %q", p.Get("Version")))
		return
	}
	action := p.Get("Action")
	f.mu.Lock()
	f.Calls = append(f.Calls, Call{Action: action, Params: p})
	var result any
	var aerr *apiError
	var created []resourceRef
	switch action {
	case "CreateChangeSet":
		result, aerr = f.createChangeSet(p)
	case "DescribeChangeSet":
		result, aerr = f.describeChangeSet(p)
	case "ExecuteChangeSet":
		result, aerr = f.executeChangeSet(p)
	case "DeleteChangeSet":
		result, aerr = f.deleteChangeSet(p)
	case "DescribeStacks":
		result, created, aerr = f.describeStacks(p)
	case "DescribeStackEvents":
		result, aerr = f.describeStackEvents(p)
	case "DeleteStack":
		result, aerr = f.deleteStack(p)
	default:
		aerr = &apiError{status: 400, code: "InvalidAction", msg: "the fake does not implement " + action, senderSide: true}
	}
	onCreate := f.OnCreate
	f.mu.Unlock()
	if onCreate != nil {
		for _, c := range created {
			onCreate(c.typ, c.id)
		}
	}
	if aerr != nil {
		f.writeError(w, aerr)
		return
	}
	body, err := xml.Marshal(result)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>fake-%d</RequestId></ResponseMetadata></%sResponse>`,
		action, action, innerXML(body), action, len(f.Calls), action)
}

// innerXML strips the outer element xml.Marshal wrote for the result struct.
func innerXML(b []byte) string {
	s := string(b)
	i := strings.Index(s, ">")
	j := strings.LastIndex(s, "</")
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

func (f *Fake) writeError(w http.ResponseWriter, e *apiError) {
	typ := "Receiver"
	if e.senderSide {
		typ = "Sender"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	var msg strings.Builder
	_ = xml.EscapeText(&msg, []byte(e.msg))
	fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake-err</RequestId></ErrorResponse>`,
		typ, e.code, msg.String())
}

// members decodes a query-protocol list: Prefix.member.N[.Suffix].
func members(p url.Values, prefix, suffix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := fmt.Sprintf("%s.member.%d", prefix, i)
		if suffix != "" {
			k += "." + suffix
		}
		v, ok := p[k]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

func (f *Fake) now() time.Time {
	f.clock = f.clock.Add(time.Second)
	return f.clock
}

func (f *Fake) lookup(name string) *stack {
	if s := f.stacks[name]; s != nil {
		return s
	}
	return f.byID[name]
}

func notFound(name string) *apiError {
	return validation("Stack with id %s does not exist", name)
}

func (f *Fake) createChangeSet(p url.Values) (any, *apiError) {
	name, csName, typ := p.Get("StackName"), p.Get("ChangeSetName"), p.Get("ChangeSetType")
	if typ == "" {
		typ = "UPDATE"
	}
	if name == "" || csName == "" {
		return nil, validation("StackName and ChangeSetName are required")
	}
	s := f.stacks[name]
	switch typ {
	case "CREATE":
		if s != nil && s.status != "REVIEW_IN_PROGRESS" {
			return nil, &apiError{status: 400, code: "AlreadyExistsException", msg: fmt.Sprintf("Stack [%s] already exists and cannot be created again with the changeSet [%s].", name, csName), senderSide: true}
		}
	case "IMPORT":
		if s != nil && s.status != "REVIEW_IN_PROGRESS" && !strings.HasSuffix(s.status, "_COMPLETE") {
			return nil, validation("Stack [%s] is in %s state and can not be updated.", name, s.status)
		}
	case "UPDATE":
		if s == nil {
			return nil, validation("Stack [%s] does not exist", name)
		}
		if s.status == "REVIEW_IN_PROGRESS" {
			return nil, validation("Stack [%s] is in REVIEW_IN_PROGRESS state and can not be updated.", name)
		}
	default:
		return nil, validation("unsupported ChangeSetType %s", typ)
	}
	body := p.Get("TemplateBody")
	var tmpl struct {
		Resources map[string]struct {
			Type           string         `yaml:"Type"`
			DeletionPolicy string         `yaml:"DeletionPolicy"`
			Properties     map[string]any `yaml:"Properties"`
		} `yaml:"Resources"`
		Parameters map[string]any `yaml:"Parameters"`
		Outputs    map[string]struct {
			Value any `yaml:"Value"`
		} `yaml:"Outputs"`
	}
	if err := yaml.Unmarshal([]byte(body), &tmpl); err != nil || len(tmpl.Resources) == 0 {
		return nil, validation("Template format error: %v", err)
	}
	caps := members(p, "Capabilities", "")
	params := map[string]string{}
	keys := members(p, "Parameters", "ParameterKey")
	vals := members(p, "Parameters", "ParameterValue")
	for i, k := range keys {
		if i < len(vals) {
			params[k] = vals[i]
		}
	}
	for k := range tmpl.Parameters {
		if _, ok := params[k]; !ok {
			return nil, validation("Parameters: [%s] must have values", k)
		}
	}
	res := map[string]resource{}
	for id, r := range tmpl.Resources {
		if strings.HasPrefix(r.Type, "AWS::IAM::") && !slices.Contains(caps, "CAPABILITY_IAM") && !slices.Contains(caps, "CAPABILITY_NAMED_IAM") {
			return nil, &apiError{status: 400, code: "InsufficientCapabilitiesException", msg: "Requires capabilities : [CAPABILITY_IAM]", senderSide: true}
		}
		props := substParams(r.Properties, params).(map[string]any)
		res[id] = resource{Type: r.Type, Props: props, Retain: r.DeletionPolicy == "Retain"}
	}
	if s == nil {
		f.seq++
		s = &stack{
			id:   fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%08d-fake", region, account, name, f.seq),
			name: name, status: "REVIEW_IN_PROGRESS", resources: map[string]resource{},
			changeSets: map[string]*changeSet{}, created: f.now(),
		}
		f.stacks[name], f.byID[s.id] = s, s
		f.event(s, name, s.id, "AWS::CloudFormation::Stack", "REVIEW_IN_PROGRESS", "User Initiated")
	}
	outputs := map[string]any{}
	for k, o := range tmpl.Outputs {
		outputs[k] = o.Value
	}
	cs := &changeSet{
		id:   fmt.Sprintf("arn:aws:cloudformation:%s:%s:changeSet/%s/%08d", region, account, csName, f.seq),
		name: csName, typ: typ, template: body, resources: res, params: params, outputs: outputs,
		status: "CREATE_PENDING",
	}
	cs.changes = f.diff(s.resources, res)
	if typ == "IMPORT" {
		if aerr := f.importChanges(cs, p); aerr != nil {
			return nil, aerr
		}
	}
	if len(cs.changes) == 0 && maps.Equal(s.params, params) {
		cs.status = "FAILED"
		cs.reason = "The submitted information didn't contain changes. Submit different information to create a change set."
	}
	s.changeSets[csName] = cs
	return struct {
		XMLName xml.Name `xml:"R"`
		ID      string   `xml:"Id"`
		StackID string   `xml:"StackId"`
	}{ID: cs.id, StackID: s.id}, nil
}

// importChanges turns the change set's adds into imports of the resources
// named in ResourcesToImport; anything else is refused, as CloudFormation does.
func (f *Fake) importChanges(cs *changeSet, p url.Values) *apiError {
	ids := members(p, "ResourcesToImport", "LogicalResourceId")
	types := members(p, "ResourcesToImport", "ResourceType")
	if len(ids) == 0 {
		return validation("ResourcesToImport is required for an IMPORT change set")
	}
	phys := map[string]string{}
	for i, id := range ids {
		r, ok := cs.resources[id]
		if !ok || i >= len(types) || types[i] != r.Type {
			return validation("resource %s to import is not in the template as that type", id)
		}
		// ResourceIdentifier is a map: ResourcesToImport.member.N.ResourceIdentifier.entry.M.key/value
		for j := 1; ; j++ {
			pre := fmt.Sprintf("ResourcesToImport.member.%d.ResourceIdentifier.entry.%d.", i+1, j)
			k, ok := p[pre+"key"]
			if !ok {
				break
			}
			phys[id] = p.Get(pre + "value")
			_ = k
		}
		if !f.Existing[phys[id]] {
			return validation("Resource %s with identifier %q does not exist", id, phys[id])
		}
		if r.Retain == false {
			return validation("The following resources to import [%s] must have DeletionPolicy set in the template", id)
		}
	}
	for i, c := range cs.changes {
		if c.Action != "Add" || phys[c.LogicalID] == "" {
			return validation("You have modified resources [%s] in your template that are not being imported", c.LogicalID)
		}
		cs.changes[i].Action = "Import"
		r := cs.resources[c.LogicalID]
		r.PhysicalID = phys[c.LogicalID]
		cs.resources[c.LogicalID] = r
	}
	return nil
}

// substParams replaces Refs to parameters by their values, so that a new
// parameter value shows as a change of the resources that use it.
func substParams(v any, params map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["Ref"].(string); ok && len(v) == 1 {
			if val, ok := params[ref]; ok {
				return val
			}
		}
		out := map[string]any{}
		for k, e := range v {
			out[k] = substParams(e, params)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substParams(e, params)
		}
		return out
	}
	return v
}

func (f *Fake) diff(old, new map[string]resource) []rchange {
	var out []rchange
	for _, id := range slices.Sorted(maps.Keys(new)) {
		n := new[id]
		o, ok := old[id]
		if !ok {
			out = append(out, rchange{Action: "Add", LogicalID: id, Type: n.Type})
			continue
		}
		if o.Type != n.Type {
			out = append(out, rchange{Action: "Modify", LogicalID: id, Type: n.Type, Replacement: "True"})
			continue
		}
		var dets []detail
		replace := "False"
		props := slices.Sorted(maps.Keys(mapUnion(o.Props, n.Props)))
		for _, k := range props {
			if reflect.DeepEqual(o.Props[k], n.Props[k]) {
				continue
			}
			d := detail{Name: k, Recreate: "Never"}
			switch {
			case slices.Contains(f.createOnly[n.Type], k):
				d.Recreate, replace = "Always", "True"
			case slices.Contains(f.condOnly[n.Type], k):
				// CloudFormation decides at execution: it may replace.
				d.Recreate = "Conditionally"
				if replace == "False" {
					replace = "Conditional"
				}
			}
			dets = append(dets, d)
		}
		if len(dets) > 0 {
			out = append(out, rchange{Action: "Modify", LogicalID: id, Type: n.Type, Replacement: replace, Details: dets})
		}
	}
	for _, id := range slices.Sorted(maps.Keys(old)) {
		if _, ok := new[id]; !ok {
			out = append(out, rchange{Action: "Remove", LogicalID: id, Type: old[id].Type})
		}
	}
	return out
}

func mapUnion(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, b)
	return out
}

func (f *Fake) findChangeSet(p url.Values) (*stack, *changeSet, *apiError) {
	csName := p.Get("ChangeSetName")
	stackName := p.Get("StackName")
	for _, s := range f.stacks {
		if stackName != "" && s.name != stackName && s.id != stackName {
			continue
		}
		for _, cs := range s.changeSets {
			if cs.name == csName || cs.id == csName {
				return s, cs, nil
			}
		}
	}
	return nil, nil, &apiError{status: 404, code: "ChangeSetNotFound", msg: fmt.Sprintf("ChangeSet [%s] does not exist", csName), senderSide: true}
}

type xDetail struct {
	Target struct {
		Attribute          string `xml:"Attribute"`
		Name               string `xml:"Name"`
		RequiresRecreation string `xml:"RequiresRecreation"`
	} `xml:"Target"`
	Evaluation   string `xml:"Evaluation"`
	ChangeSource string `xml:"ChangeSource"`
}

type xChange struct {
	Type           string `xml:"Type"`
	ResourceChange struct {
		Action            string    `xml:"Action"`
		LogicalResourceID string    `xml:"LogicalResourceId"`
		ResourceType      string    `xml:"ResourceType"`
		Replacement       string    `xml:"Replacement,omitempty"`
		Scope             []string  `xml:"Scope>member"`
		Details           []xDetail `xml:"Details>member"`
	} `xml:"ResourceChange"`
}

func (f *Fake) describeChangeSet(p url.Values) (any, *apiError) {
	s, cs, aerr := f.findChangeSet(p)
	if aerr != nil {
		return nil, aerr
	}
	// Computing takes one poll, as on AWS.
	if cs.status == "CREATE_PENDING" {
		if cs.described {
			cs.status = "CREATE_COMPLETE"
		}
		cs.described = true
	}
	exec := "UNAVAILABLE"
	if cs.status == "CREATE_COMPLETE" {
		exec = "AVAILABLE"
	}
	var changes []xChange
	if cs.status == "CREATE_COMPLETE" {
		for _, c := range cs.changes {
			var x xChange
			x.Type = "Resource"
			rc := &x.ResourceChange
			rc.Action, rc.LogicalResourceID, rc.ResourceType = c.Action, c.LogicalID, c.Type
			if c.Action == "Modify" {
				rc.Replacement = c.Replacement
				rc.Scope = []string{"Properties"}
			}
			for _, d := range c.Details {
				var xd xDetail
				xd.Target.Attribute, xd.Target.Name, xd.Target.RequiresRecreation = "Properties", d.Name, d.Recreate
				xd.Evaluation, xd.ChangeSource = "Static", "DirectModification"
				rc.Details = append(rc.Details, xd)
			}
			changes = append(changes, x)
		}
	}
	return struct {
		XMLName         xml.Name  `xml:"R"`
		ChangeSetName   string    `xml:"ChangeSetName"`
		ChangeSetID     string    `xml:"ChangeSetId"`
		StackID         string    `xml:"StackId"`
		StackName       string    `xml:"StackName"`
		Status          string    `xml:"Status"`
		StatusReason    string    `xml:"StatusReason,omitempty"`
		ExecutionStatus string    `xml:"ExecutionStatus"`
		Changes         []xChange `xml:"Changes>member"`
	}{ChangeSetName: cs.name, ChangeSetID: cs.id, StackID: s.id, StackName: s.name, Status: cs.status, StatusReason: cs.reason, ExecutionStatus: exec, Changes: changes}, nil
}

func (f *Fake) deleteChangeSet(p url.Values) (any, *apiError) {
	s, cs, aerr := f.findChangeSet(p)
	if aerr != nil {
		return nil, aerr
	}
	delete(s.changeSets, cs.name)
	return struct {
		XMLName xml.Name `xml:"R"`
	}{}, nil
}

func (f *Fake) event(s *stack, logical, physical, typ, status, reason string) event {
	f.seq++
	e := event{ID: fmt.Sprintf("ev-%06d", f.seq), LogicalID: logical, PhysicalID: physical, Type: typ, Status: status, Reason: reason, Time: f.now()}
	s.events = append(s.events, e)
	return e
}

// queue adds an event to be released by a later DescribeStacks poll.
func (f *Fake) queue(s *stack, logical, typ, status, reason, stackStatus string, apply func()) {
	s.pending = append(s.pending, pending{ev: event{LogicalID: logical, Type: typ, Status: status, Reason: reason}, status: stackStatus, apply: apply})
}

type resourceRef struct{ typ, id string }

// release publishes up to n pending events of s and returns the resources
// created meanwhile.
func (f *Fake) release(s *stack, n int) []resourceRef {
	var created []resourceRef
	for ; n > 0 && len(s.pending) > 0; n-- {
		pd := s.pending[0]
		s.pending = s.pending[1:]
		phys := ""
		if r, ok := s.resources[pd.ev.LogicalID]; ok {
			phys = r.PhysicalID
		}
		if pd.ev.LogicalID == s.name {
			phys = s.id
		}
		f.event(s, pd.ev.LogicalID, phys, pd.ev.Type, pd.ev.Status, pd.ev.Reason)
		if pd.apply != nil {
			pd.apply()
		}
		if pd.status != "" {
			s.status = pd.status
		}
		if pd.ev.Status == "CREATE_COMPLETE" && pd.ev.LogicalID != s.name {
			created = append(created, resourceRef{pd.ev.Type, s.resources[pd.ev.LogicalID].PhysicalID})
		}
	}
	if s.status == "DELETE_COMPLETE" {
		delete(f.stacks, s.name)
	}
	return created
}

var nameProps = []string{"TableName", "QueueName", "BucketName", "FunctionName", "TopicName", "Name", "LogGroupName", "StateMachineName", "RoleName"}

func (f *Fake) physicalID(s *stack, id string, r resource) string {
	for _, p := range nameProps {
		if v, ok := r.Props[p]; ok {
			if str, ok := f.resolve(s, v).(string); ok && str != "" {
				return str
			}
		}
	}
	// Random, as CloudFormation's generated names are: tests share
	// emulators (a bucket created by OnCreate) across runs.
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strings.ToLower(fmt.Sprintf("%s-%s-%x", s.name, id, b))
}

var subRE = regexp.MustCompile(`\$\{([^}]+)\}`)

// resolve evaluates the intrinsics the fake understands, for outputs and
// physical names.
func (f *Fake) resolve(s *stack, v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if ref, ok := m["Ref"].(string); ok {
		switch ref {
		case "AWS::StackName":
			return s.name
		case "AWS::Region":
			return region
		case "AWS::AccountId":
			return account
		}
		if r, ok := s.resources[ref]; ok {
			if r.Type == "AWS::SNS::Topic" || r.Type == "AWS::StepFunctions::StateMachine" {
				return f.arn(r.Type, r.PhysicalID)
			}
			return r.PhysicalID
		}
		return s.params[ref]
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
		id, _ := ga[0].(string)
		attr, _ := ga[1].(string)
		r := s.resources[id]
		if attr == "QueueUrl" {
			return fmt.Sprintf("https://sqs.%s.amazonaws.com/%s/%s", region, account, r.PhysicalID)
		}
		return f.arn(r.Type, r.PhysicalID) + map[bool]string{true: "/stream/fake", false: ""}[attr == "StreamArn"]
	}
	if sub, ok := m["Fn::Sub"].(string); ok {
		return subRE.ReplaceAllStringFunc(sub, func(x string) string {
			ref := x[2 : len(x)-1]
			if id, attr, ok := strings.Cut(ref, "."); ok && !strings.HasPrefix(ref, "AWS::") {
				return fmt.Sprint(f.resolve(s, map[string]any{"Fn::GetAtt": []any{id, attr}}))
			}
			return fmt.Sprint(f.resolve(s, map[string]any{"Ref": ref}))
		})
	}
	return fmt.Sprint(v)
}

func (f *Fake) arn(typ, phys string) string {
	parts := strings.Split(strings.ToLower(typ), "::")
	svc := "fake"
	if len(parts) == 3 {
		svc = parts[1]
	}
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s", svc, region, account, phys)
}

func (f *Fake) executeChangeSet(p url.Values) (any, *apiError) {
	s, cs, aerr := f.findChangeSet(p)
	if aerr != nil {
		return nil, aerr
	}
	if cs.status != "CREATE_COMPLETE" {
		return nil, &apiError{status: 400, code: "InvalidChangeSetStatus", msg: fmt.Sprintf("ChangeSet [%s] cannot be executed in its current status of [%s]", cs.id, cs.status), senderSide: true}
	}
	if len(s.pending) > 0 {
		return nil, validation("Stack:%s is in %s state and can not be updated.", s.id, s.status)
	}
	create := s.status == "REVIEW_IN_PROGRESS"
	inProgress, done, rbInProgress, rbDone := "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE"
	switch {
	case cs.typ == "IMPORT":
		inProgress, done, rbInProgress, rbDone = "IMPORT_IN_PROGRESS", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS", "IMPORT_ROLLBACK_COMPLETE"
	case create:
		inProgress, done, rbInProgress, rbDone = "CREATE_IN_PROGRESS", "CREATE_COMPLETE", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"
	}
	s.status = inProgress
	s.changeSets = map[string]*changeSet{}
	f.event(s, s.name, s.id, "AWS::CloudFormation::Stack", inProgress, "User Initiated")
	old := maps.Clone(s.resources)
	oldParams := s.params
	var touched []string
	failed := false
	for _, c := range cs.changes {
		id, typ := c.LogicalID, c.Type
		switch c.Action {
		case "Import":
			r := cs.resources[id]
			f.queue(s, id, typ, "IMPORT_IN_PROGRESS", "", "", func() { s.resources[id] = r })
			f.queue(s, id, typ, "IMPORT_COMPLETE", "Resource import completed", "", func() { delete(f.Existing, r.PhysicalID) })
			touched = append(touched, id)
		case "Add", "Modify":
			verb := "CREATE"
			if c.Action == "Modify" && c.Replacement != "True" {
				verb = "UPDATE"
			}
			r := cs.resources[id]
			f.queue(s, id, typ, verb+"_IN_PROGRESS", "", "", func() {
				if r.PhysicalID == "" {
					if o, ok := old[id]; ok && verb == "UPDATE" {
						r.PhysicalID = o.PhysicalID
					} else {
						r.PhysicalID = f.physicalID(s, id, r)
					}
				}
				s.resources[id] = r
			})
			touched = append(touched, id)
			if verb == "CREATE" && f.Existing[f.physicalID(s, id, r)] {
				f.queue(s, id, typ, "CREATE_FAILED", fmt.Sprintf("Resource of type '%s' with identifier '%s' already exists.", typ, f.physicalID(s, id, r)), "", nil)
				failed = true
			} else if reason, bad := f.Fail[id]; bad {
				f.queue(s, id, typ, verb+"_FAILED", reason, "", nil)
				failed = true
			} else {
				f.queue(s, id, typ, verb+"_COMPLETE", "", "", nil)
			}
		case "Remove":
			if old[id].Retain {
				phys := old[id].PhysicalID
				f.queue(s, id, typ, "DELETE_SKIPPED", "", "", func() { delete(s.resources, id); f.Existing[phys] = true })
			} else {
				f.queue(s, id, typ, "DELETE_IN_PROGRESS", "", "", nil)
				f.queue(s, id, typ, "DELETE_COMPLETE", "", "", func() { delete(s.resources, id) })
			}
		}
		if failed {
			break
		}
	}
	if failed {
		reason := "The following resource(s) failed to create or update: [" + touched[len(touched)-1] + "]. Rollback requested by user."
		f.queue(s, s.name, "AWS::CloudFormation::Stack", rbInProgress, reason, rbInProgress, nil)
		for i := len(touched) - 1; i >= 0; i-- {
			id := touched[i]
			_, existed := old[id]
			_, failedHere := f.Fail[id]
			switch {
			case existed:
				f.queue(s, id, cs.resources[id].Type, "UPDATE_COMPLETE", "", "", func() { s.resources[id] = old[id] })
			case cs.resources[id].Retain && !failedHere:
				// A created resource with DeletionPolicy Retain survives the
				// rollback, outside the stack, as on AWS.
				f.queue(s, id, cs.resources[id].Type, "DELETE_SKIPPED", "", "", func() {
					f.Existing[s.resources[id].PhysicalID] = true
					delete(s.resources, id)
				})
			default:
				f.queue(s, id, cs.resources[id].Type, "DELETE_COMPLETE", "", "", func() { delete(s.resources, id) })
			}
		}
		f.queue(s, s.name, "AWS::CloudFormation::Stack", rbDone, "", rbDone, func() {
			s.resources, s.params = old, oldParams
		})
	} else {
		f.queue(s, s.name, "AWS::CloudFormation::Stack", done, "", done, func() {
			s.template, s.params = cs.template, cs.params
			s.outputs = map[string]string{}
			for k, v := range cs.outputs {
				s.outputs[k] = fmt.Sprint(f.resolve(s, v))
			}
		})
	}
	return struct {
		XMLName xml.Name `xml:"R"`
	}{}, nil
}

type xStack struct {
	StackName         string    `xml:"StackName"`
	StackID           string    `xml:"StackId"`
	StackStatus       string    `xml:"StackStatus"`
	StackStatusReason string    `xml:"StackStatusReason,omitempty"`
	CreationTime      string    `xml:"CreationTime"`
	Outputs           []xOutput `xml:"Outputs>member"`
}

type xOutput struct {
	OutputKey   string `xml:"OutputKey"`
	OutputValue string `xml:"OutputValue"`
}

func (f *Fake) describeStacks(p url.Values) (any, []resourceRef, *apiError) {
	name := p.Get("StackName")
	var list []*stack
	if name == "" {
		for _, n := range slices.Sorted(maps.Keys(f.stacks)) {
			list = append(list, f.stacks[n])
		}
	} else {
		s := f.lookup(name)
		if s == nil {
			return nil, nil, notFound(name)
		}
		list = []*stack{s}
	}
	var created []resourceRef
	var out []xStack
	for _, s := range list {
		// Each poll moves an operation on by two events.
		created = append(created, f.release(s, 2)...)
		x := xStack{StackName: s.name, StackID: s.id, StackStatus: s.status, StackStatusReason: s.reason, CreationTime: s.created.Format(time.RFC3339)}
		for _, k := range slices.Sorted(maps.Keys(s.outputs)) {
			x.Outputs = append(x.Outputs, xOutput{k, s.outputs[k]})
		}
		out = append(out, x)
	}
	return struct {
		XMLName xml.Name `xml:"R"`
		Stacks  []xStack `xml:"Stacks>member"`
	}{Stacks: out}, created, nil
}

type xEvent struct {
	StackID              string `xml:"StackId"`
	EventID              string `xml:"EventId"`
	StackName            string `xml:"StackName"`
	LogicalResourceID    string `xml:"LogicalResourceId"`
	PhysicalResourceID   string `xml:"PhysicalResourceId"`
	ResourceType         string `xml:"ResourceType"`
	Timestamp            string `xml:"Timestamp"`
	ResourceStatus       string `xml:"ResourceStatus"`
	ResourceStatusReason string `xml:"ResourceStatusReason,omitempty"`
}

// eventsPage is how many events one DescribeStackEvents page holds, small so
// that paging is exercised.
const eventsPage = 5

func (f *Fake) describeStackEvents(p url.Values) (any, *apiError) {
	name := p.Get("StackName")
	s := f.lookup(name)
	if s == nil || (f.stacks[name] == nil && !strings.HasPrefix(name, "arn:")) {
		return nil, notFound(name)
	}
	start := 0
	if tok := p.Get("NextToken"); tok != "" {
		start, _ = strconv.Atoi(tok)
	}
	var out []xEvent
	next := ""
	for i := len(s.events) - 1 - start; i >= 0; i-- {
		if len(out) == eventsPage {
			next = strconv.Itoa(start + len(out))
			break
		}
		e := s.events[i]
		out = append(out, xEvent{StackID: s.id, EventID: e.ID, StackName: s.name, LogicalResourceID: e.LogicalID, PhysicalResourceID: e.PhysicalID,
			ResourceType: e.Type, Timestamp: e.Time.Format("2006-01-02T15:04:05.000Z"), ResourceStatus: e.Status, ResourceStatusReason: e.Reason})
	}
	return struct {
		XMLName     xml.Name `xml:"R"`
		StackEvents []xEvent `xml:"StackEvents>member"`
		NextToken   string   `xml:"NextToken,omitempty"`
	}{StackEvents: out, NextToken: next}, nil
}

func (f *Fake) deleteStack(p url.Values) (any, *apiError) {
	name := p.Get("StackName")
	s := f.stacks[name]
	if s == nil {
		if s2 := f.byID[name]; s2 != nil {
			s = s2
		}
	}
	empty := struct {
		XMLName xml.Name `xml:"R"`
	}{}
	if s == nil || s.status == "DELETE_COMPLETE" {
		return empty, nil // deleting a stack that is gone succeeds, as on AWS
	}
	if len(s.pending) > 0 {
		return nil, validation("Stack [%s] cannot be deleted while in status %s", name, s.status)
	}
	s.status = "DELETE_IN_PROGRESS"
	s.changeSets = map[string]*changeSet{}
	f.event(s, s.name, s.id, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "User Initiated")
	if len(s.resources) == 0 {
		// Nothing to delete (a stack a plan left in REVIEW_IN_PROGRESS).
		s.status = "DELETE_COMPLETE"
		f.event(s, s.name, s.id, "AWS::CloudFormation::Stack", "DELETE_COMPLETE", "")
		delete(f.stacks, s.name)
		return empty, nil
	}
	for _, id := range slices.Sorted(maps.Keys(s.resources)) {
		r := s.resources[id]
		if r.Retain {
			phys := r.PhysicalID
			f.queue(s, id, r.Type, "DELETE_SKIPPED", "", "", func() { f.Existing[phys] = true })
			continue
		}
		f.queue(s, id, r.Type, "DELETE_IN_PROGRESS", "", "", nil)
		f.queue(s, id, r.Type, "DELETE_COMPLETE", "", "", nil)
	}
	f.queue(s, s.name, "AWS::CloudFormation::Stack", "DELETE_COMPLETE", "", "DELETE_COMPLETE", func() {
		s.resources = map[string]resource{}
	})
	return empty, nil
}

package deploy

import (
	"fmt"
	"time"

	"github.com/lfsm/lfsm/internal/spec"
)

// Logical ids of the template's resources. They are part of the contract
// with existing stacks: renaming one makes CloudFormation replace the
// resource, so they never change.
const (
	IDExecutionsTable   = "ExecutionsTable"
	IDRetriesTable      = "RetriesTable"
	IDDispatchQueue     = "DispatchQueue"
	IDDeadLetterQueue   = "DeadLetterQueue"
	IDFailureQueue      = "FailureQueue"
	IDDispatchStream    = "DispatchStream"
	IDDispatchTopic     = "DispatchTopic"
	IDDispatchTable     = "DispatchTable"
	IDSubscription      = "DispatchSubscription"
	IDQueuePolicy       = "DispatchQueuePolicy"
	IDTopicPermission   = "DispatchTopicPermission"
	IDInvokeConfig      = "FunctionInvokeConfig"
	IDDispatchMapping   = "DispatchMapping"
	IDFunction          = "Function"
	IDFunctionRole      = "FunctionRole"
	IDLogGroup          = "LogGroup"
	IDTickRule          = "TickRule"
	IDTickPermission    = "TickPermission"
	IDStateMachineRole  = "StateMachineRole"
	idStateMachinePrefx = "StateMachine"

	// The secondaries (Settings.Secondary): a second dispatch resource of
	// the same kind, consumed by the function through a mapping of its own,
	// and a second retry table for the dispatches that need one.
	IDSecondaryDispatchQueue   = "SecondaryDispatchQueue"
	IDSecondaryDispatchStream  = "SecondaryDispatchStream"
	IDSecondaryDispatchTopic   = "SecondaryDispatchTopic"
	IDSecondaryDispatchTable   = "SecondaryDispatchTable"
	IDSecondaryRetriesTable    = "SecondaryRetriesTable"
	IDSecondarySubscription    = "SecondaryDispatchSubscription"
	IDSecondaryQueuePolicy     = "SecondaryDispatchQueuePolicy"
	IDSecondaryTopicPermission = "SecondaryDispatchTopicPermission"
	IDSecondaryDispatchMapping = "SecondaryDispatchMapping"
)

// Physical name suffixes of the secondaries: <stack>-secondary is the
// secondary queue, stream, topic or dispatch table (short, since an SQS
// queue's name has at most 80 characters and a stack's 64).
const (
	suffixSecondary        = "secondary"
	suffixSecondaryRetries = "retries-secondary"
)

// Template parameters: where the function's code is. lfsm deploy fills them;
// a team's own pipeline passes its own.
const (
	ParamCodeBucket = "CodeBucket"
	ParamCodeKey    = "CodeKey"
	// ParamLeaseCache is the lease cache's endpoint (aws.lease-cache), a
	// NoEcho parameter of a stack with Settings.LeaseCache: it may carry an
	// AUTH password, which the template then never holds.
	ParamLeaseCache = "LeaseCache"
	// ParamSecondaryLeaseCache is the secondary lease cache's endpoint
	// (aws.secondary.lease-cache), NoEcho as the primary's.
	ParamSecondaryLeaseCache = "SecondaryLeaseCache"
)

// KeyType is a DynamoDB attribute type usable in a key.
type KeyType string

// Key attribute types.
const (
	KeyString KeyType = "S"
	KeyNumber KeyType = "N"
)

// Attr is a key attribute.
type Attr struct {
	Name string
	Type KeyType
}

// Index is a secondary index. Range may be empty.
type Index struct {
	Name  string
	Hash  Attr
	Range Attr
	// Local is a local secondary index (same hash key as the table).
	Local bool
	// Projection is ALL (the default) or KEYS_ONLY.
	Projection string
}

// Table is a DynamoDB table of the deployment, on-demand, encrypted, with
// point-in-time recovery.
type Table struct {
	// ID is the logical id.
	ID string
	// Suffix makes the physical name: <stack>-<suffix>.
	Suffix  string
	Hash    Attr
	Range   Attr
	Indexes []Index
	// TTL is the attribute DynamoDB expires items by; empty for none.
	TTL string
	// Stream is the stream view type (NEW_IMAGE) of a dispatch table.
	Stream string
	// Stateful tables hold executions: DeletionPolicy and
	// UpdateReplacePolicy Retain, and a change set that replaces one is
	// refused unless forced.
	Stateful bool
}

// Queue is an SQS queue of the deployment.
type Queue struct {
	ID     string
	Suffix string
	// Visibility is the visibility timeout (0 for the SQS default).
	Visibility time.Duration
	// Retention is how long a message is kept.
	Retention time.Duration
	// DeadLetter is the logical id of the dead-letter queue, and
	// MaxReceiveCount the receives before a message moves there.
	DeadLetter      string
	MaxReceiveCount int
}

// Mapping is an event source mapping from the dispatch to the function.
type Mapping struct {
	// ID is the mapping's logical id (IDDispatchMapping, or
	// IDSecondaryDispatchMapping for the secondary's).
	ID string
	// Source is the logical id of the queue, stream or table.
	Source string
	// Stream mappings (Kinesis, DynamoDB) read shards in order.
	Stream    bool
	BatchSize int
	// Streams only: bounded retries and record age, bisect on error, the
	// failure destination (a queue's logical id) and the INSERT-only filter.
	MaxRetries    int
	MaxRecordAge  time.Duration
	OnFailure     string
	InsertsOnly   bool
	StartPosition string
}

// StateMachine is one machine deployed as a Step Functions state machine.
type StateMachine struct {
	ID      string
	Machine string
	// ASL is the definition, with ${FunctionArn} where the function's ARN goes.
	ASL []byte
}

// Model is everything a deployment of one project should have. Build makes
// it; Template renders it for CloudFormation.
type Model struct {
	Settings Settings
	// Machines are the spec's machine names, in spec order.
	Machines []string
	Tables   []Table
	Queues   []Queue
	// Stream is the Kinesis dispatch stream (DispatchKinesis only).
	Stream bool
	// Topic is the SNS dispatch topic (DispatchSNS, DispatchSNSSQS).
	Topic bool
	// Mappings are the event source mappings (ModeEvents, except SNS).
	Mappings []Mapping
	// Secondary: every dispatch resource (and the retry table) has a
	// secondary of the same kind in the stack, with its own mapping.
	Secondary bool
	// Tick is the every-minute schedule of the retry poller and the repair.
	Tick          bool
	StateMachines []StateMachine
	// Endpoints are the VPC endpoints of a deployment in a VPC.
	Endpoints []Endpoint
	// Renames is the deploy's rename map as the function reads it
	// (EnvRenames, engine.EncodeRenames); empty for none. SetRenames sets it.
	Renames string
}

// SQS and stream limits and the values lfsm chooses within them.
const (
	// visibilityFactor: AWS recommends a visibility timeout of at least six
	// times the function timeout for queues that drive a function.
	visibilityFactor = 6
	// transientReceives is how many receives beyond the lease bounces a
	// message may spend on transient failures before it is dead-lettered.
	transientReceives = 5
	minReceiveCount   = 10
	sqsMaxRetention   = 14 * 24 * time.Hour
	streamMaxRetries  = 10
	streamMaxAge      = 6 * time.Hour
)

// MaxReceiveCount is the dead-letter threshold for a queue whose visibility
// timeout is visibility: a message that finds its lease held comes back
// after each visibility timeout until the lease expires, so it can bounce
// ceil(lease/visibility)+1 times without anything being wrong; on top of
// that it may fail transientReceives times. Never less than 10.
func MaxReceiveCount(lease, visibility time.Duration) int {
	bounces := int((lease+visibility-1)/visibility) + 1
	return max(minReceiveCount, bounces+transientReceives)
}

// Build returns the desired-resource model of s (a valid spec) deployed with
// settings (defaults applied here). It fails only on invalid settings or a
// machine the ASL export refuses.
func Build(s *spec.Spec, settings Settings) (*Model, error) {
	st := settings.WithDefaults()
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("deploy settings: %w", err)
	}
	m := &Model{Settings: st, Secondary: st.Secondary}
	for _, mc := range s.Machines {
		m.Machines = append(m.Machines, mc.Name)
	}
	if st.Mode == ModeStepFunctions {
		return m, m.addStateMachines(s)
	}
	if st.VPC != nil {
		m.Endpoints = endpoints(st)
	}
	m.Tables = []Table{storeTable()}
	if st.Dispatch != DispatchSQS && st.Dispatch != DispatchSNSSQS {
		m.Tables = append(m.Tables, retryTable())
		if st.Secondary {
			r := retryTable()
			r.ID, r.Suffix = IDSecondaryRetriesTable, suffixSecondaryRetries
			m.Tables = append(m.Tables, r)
		}
	}
	m.Tick = true
	visibility := visibilityFactor * st.Timeout
	queue := Queue{
		ID: IDDispatchQueue, Suffix: "dispatch",
		Visibility: visibility, Retention: sqsMaxRetention,
		DeadLetter: IDDeadLetterQueue, MaxReceiveCount: MaxReceiveCount(st.LeaseTimeout, visibility),
	}
	// The secondary queue is the primary's twin, dead-lettering into the
	// same queue.
	second := queue
	second.ID, second.Suffix = IDSecondaryDispatchQueue, suffixSecondary
	dlq := Queue{ID: IDDeadLetterQueue, Suffix: "dead-letter", Retention: sqsMaxRetention}
	failure := Queue{ID: IDFailureQueue, Suffix: "failed", Retention: sqsMaxRetention}
	stream := func(id, source string) Mapping {
		return Mapping{
			ID: id, Source: source, Stream: true, BatchSize: st.BatchSize,
			MaxRetries: streamMaxRetries, MaxRecordAge: streamMaxAge,
			OnFailure: IDFailureQueue, StartPosition: "TRIM_HORIZON",
		}
	}
	sqsMappings := func() {
		m.Queues = []Queue{queue, dlq}
		m.Mappings = []Mapping{{ID: IDDispatchMapping, Source: IDDispatchQueue, BatchSize: st.BatchSize}}
		if st.Secondary {
			m.Queues = append(m.Queues, second)
			m.Mappings = append(m.Mappings, Mapping{ID: IDSecondaryDispatchMapping, Source: IDSecondaryDispatchQueue, BatchSize: st.BatchSize})
		}
	}
	switch st.Dispatch {
	case DispatchSQS:
		sqsMappings()
	case DispatchSNSSQS:
		m.Topic = true
		sqsMappings()
	case DispatchSNS:
		m.Topic = true
		m.Queues = []Queue{failure}
	case DispatchKinesis:
		m.Stream = true
		m.Queues = []Queue{failure}
		m.Mappings = []Mapping{stream(IDDispatchMapping, IDDispatchStream)}
		if st.Secondary {
			m.Mappings = append(m.Mappings, stream(IDSecondaryDispatchMapping, IDSecondaryDispatchStream))
		}
	case DispatchDynamoDB:
		m.Tables = append(m.Tables, dispatchTable())
		m.Queues = []Queue{failure}
		mp := stream(IDDispatchMapping, IDDispatchTable)
		mp.InsertsOnly = true
		m.Mappings = []Mapping{mp}
		if st.Secondary {
			t := dispatchTable()
			t.ID, t.Suffix = IDSecondaryDispatchTable, suffixSecondary
			m.Tables = append(m.Tables, t)
			mp := stream(IDSecondaryDispatchMapping, IDSecondaryDispatchTable)
			mp.InsertsOnly = true
			m.Mappings = append(m.Mappings, mp)
		}
	}
	return m, nil
}

// TableName is the physical name the template gives table tb.
func (m *Model) TableName(tb *Table) string { return m.Settings.Stack + "-" + tb.Suffix }

// ImportTemplate is the template of a resource import of the given logical
// ids: their resources exactly as Template has them, nothing else (an
// import change set may not create, change or output anything else).
func (m *Model) ImportTemplate(ids []string) *Template {
	full := m.Template()
	t := &Template{
		AWSTemplateFormatVersion: full.AWSTemplateFormatVersion,
		Description:              full.Description,
		Parameters:               map[string]Parameter{},
		Resources:                map[string]*Resource{},
		Outputs:                  map[string]Output{},
	}
	for _, id := range ids {
		t.Resources[id] = full.Resources[id]
	}
	return t
}

// Table returns the table with logical id id, or nil.
func (m *Model) Table(id string) *Table {
	for i := range m.Tables {
		if m.Tables[i].ID == id {
			return &m.Tables[i]
		}
	}
	return nil
}

// Queue returns the queue with logical id id, or nil.
func (m *Model) Queue(id string) *Queue {
	for i := range m.Queues {
		if m.Queues[i].ID == id {
			return &m.Queues[i]
		}
	}
	return nil
}

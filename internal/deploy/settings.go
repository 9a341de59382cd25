package deploy

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Dispatch is how one step's message reaches the next invocation.
type Dispatch string

// Dispatches. SQS is the default.
const (
	// DispatchSQS: an SQS queue (with a dead-letter queue) polled by an event
	// source mapping.
	DispatchSQS Dispatch = "sqs"
	// DispatchKinesis: a Kinesis stream (partition key = correlation id).
	DispatchKinesis Dispatch = "kinesis"
	// DispatchSNS: an SNS topic the function is subscribed to (asynchronous
	// invocation, with an on-failure destination).
	DispatchSNS Dispatch = "sns"
	// DispatchSNSSQS: an SNS topic with an SQS queue subscribed (raw
	// delivery), which the function polls as with DispatchSQS.
	DispatchSNSSQS Dispatch = "sns-sqs"
	// DispatchDynamoDB: a table whose stream drives the function; each
	// message is an INSERT of its own item.
	DispatchDynamoDB Dispatch = "dynamodb"
)

// Dispatches lists the valid dispatches, default first.
func Dispatches() []Dispatch {
	return []Dispatch{DispatchSQS, DispatchKinesis, DispatchSNS, DispatchSNSSQS, DispatchDynamoDB}
}

// Mode says who drives the steps.
type Mode string

// Modes.
const (
	// ModeEvents: lfsm's own dispatch (the default).
	ModeEvents Mode = "events"
	// ModeStepFunctions: one Step Functions state machine per machine, from
	// `lfsm export asl`; the function runs only the actions.
	ModeStepFunctions Mode = "stepfunctions"
)

// Architectures the zip can be built for, as Lambda names them.
const (
	ArchARM64 = "arm64"
	ArchX8664 = "x86_64"
)

// Settings are the deployment's inputs besides the spec. The zero value of a
// field means its default (see Defaults).
type Settings struct {
	// Project names the project; it tags every resource (lfsm:project).
	Project string
	// Stack is the CloudFormation stack name. The template itself refers to
	// AWS::StackName, so it deploys under any name; emulators use this one.
	Stack string
	// Dispatch is the message transport (default sqs).
	Dispatch Dispatch
	// Mode is events (default) or stepfunctions.
	Mode Mode
	// Architecture is arm64 (default) or x86_64: the one the zip was built for.
	Architecture string
	// MemoryMB is the function's memory (default 128).
	MemoryMB int
	// Timeout is the function timeout (default 30 s, at most 900 s).
	Timeout time.Duration
	// LeaseTimeout is the lease a step holds (default 300 s, the engine's);
	// it sizes the dead-letter queue's maxReceiveCount.
	LeaseTimeout time.Duration
	// LogRetentionDays is the log group's retention (default 14).
	LogRetentionDays int
	// BatchSize is the event source mapping's batch size (default 10 for SQS,
	// 100 for streams).
	BatchSize int
	// KinesisShards is the stream's shard count; 0 means on-demand.
	KinesisShards int
	// Tags are added to every resource that takes tags, beside lfsm's own.
	Tags map[string]string
	// VPC, if not nil, runs the function in a VPC (aws.vpc in lfsm.yaml).
	VPC *VPC
	// LeaseCache makes the function keep leases on a lease cache whose
	// endpoint is the stack's NoEcho parameter ParamLeaseCache
	// (aws.lease-cache in lfsm.yaml; docs/design.md, "Lease caches").
	LeaseCache bool
	// SecondaryLeaseCache (with LeaseCache) gives the function a secondary
	// lease cache, the stack's NoEcho parameter ParamSecondaryLeaseCache
	// (aws.secondary.lease-cache): an execution's leases move there only by
	// a fenced switch (docs/design.md, "Failover").
	SecondaryLeaseCache bool
	// Secondary adds a secondary of the dispatch (and of the retry table,
	// for the dispatches that need one) to the stack, consumed by the
	// function like the primary (aws.secondary.deploy in lfsm.yaml; see
	// docs/design.md, "Failover").
	Secondary bool
	// Metrics, if not nil, turns on the function's PutMetricData publisher
	// (metrics.cloudwatch in lfsm.yaml): its environment says so, and its
	// role may put metric data in that namespace only.
	Metrics *Metrics
	// Chaos, if not empty, is a chaos SPEC the deployed function applies to
	// its AWS backends (LFSM_FUNCTION_CHAOS): its calls fail at random. Only
	// lfsm deploy's and export's --function-chaos flag sets it, on each
	// deploy (a deploy without it takes it away), never a file or the
	// environment, so that no production stack gets it by accident. The
	// caller checks the SPEC (config.ParseChaos, chaos.CheckKeys).
	Chaos string
	// Retention, when positive, is aws.retention: the function's store
	// lets DynamoDB's TTL delete finished executions this long after they
	// finished. It is in the function's environment and the stack's
	// outputs (so that the operator commands of aws.stack apply it too).
	Retention time.Duration
}

// Metrics are the settings of the function's CloudWatch publisher, one
// PutMetricData per invocation beside the EMF lines (docs/design.md,
// "CloudWatch metrics").
type Metrics struct {
	// Namespace is the metrics' namespace (default DefaultMetricsNamespace).
	Namespace string
	// SecondaryRegion, when set, is the region the publisher fails over to
	// when the function's own fails (metrics.secondary-region).
	SecondaryRegion string
}

// regionRE is the shape of a region name.
var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// DefaultMetricsNamespace is the publisher's namespace when none is set (as
// cloudwatch.DefaultNamespace).
const DefaultMetricsNamespace = "lfsm"

// namespaceRE is CloudWatch's rule for custom namespaces: 1 to 255 of
// these characters, and not starting with AWS/ (reserved for AWS).
var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9.\-_/#:]{1,255}$`)

// ValidNamespace checks a CloudWatch namespace, naming the rule it breaks.
func ValidNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("metrics namespace %q: want 1 to 255 letters, digits or . - _ / # :", ns)
	}
	if strings.HasPrefix(ns, "AWS/") {
		return fmt.Errorf("metrics namespace %q: the prefix AWS/ is reserved for AWS's own metrics", ns)
	}
	return nil
}

// Defaults used when a Settings field is zero.
const (
	DefaultMemoryMB         = 128
	DefaultTimeout          = 30 * time.Second
	DefaultLeaseTimeout     = 300 * time.Second
	DefaultLogRetentionDays = 14
	DefaultSQSBatchSize     = 10
	DefaultStreamBatchSize  = 100
)

// logRetentions are the values CloudWatch Logs accepts for RetentionInDays.
var logRetentions = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// WithDefaults returns s with every zero field set to its default.
func (s Settings) WithDefaults() Settings {
	if s.Dispatch == "" {
		s.Dispatch = DispatchSQS
	}
	if s.Mode == "" {
		s.Mode = ModeEvents
	}
	if s.Architecture == "" {
		s.Architecture = ArchARM64
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = DefaultMemoryMB
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.LeaseTimeout == 0 {
		s.LeaseTimeout = DefaultLeaseTimeout
	}
	if s.LogRetentionDays == 0 {
		s.LogRetentionDays = DefaultLogRetentionDays
	}
	if s.BatchSize == 0 {
		s.BatchSize = DefaultSQSBatchSize
		if s.Dispatch == DispatchKinesis || s.Dispatch == DispatchDynamoDB {
			s.BatchSize = DefaultStreamBatchSize
		}
	}
	if s.Stack == "" {
		s.Stack = s.Project
	}
	s.Tags = maps.Clone(s.Tags)
	if s.VPC != nil {
		v := *s.VPC
		if v.Egress == "" {
			v.Egress = EgressEndpoints
		}
		s.VPC = &v
	}
	if s.Metrics != nil {
		m := *s.Metrics
		if m.Namespace == "" {
			m.Namespace = DefaultMetricsNamespace
		}
		s.Metrics = &m
	}
	return s
}

var (
	// stackRE is CloudFormation's rule for stack names, kept short enough
	// that "<stack>-executions" fits every resource name limit (SQS: 80).
	stackRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)
	projectRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// Validate reports every setting that CloudFormation or Lambda would refuse,
// each naming the setting and the allowed values.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !projectRE.MatchString(s.Project) {
		bad("project name %q: want letters, digits, '.', '_' or '-', at most 128", s.Project)
	}
	if !stackRE.MatchString(s.Stack) {
		bad("stack name %q: want a letter, then letters, digits or '-', at most 64", s.Stack)
	}
	if !slices.Contains(Dispatches(), s.Dispatch) {
		bad("dispatch %q: want one of %s", s.Dispatch, joinNames(Dispatches()))
	}
	if s.Mode != ModeEvents && s.Mode != ModeStepFunctions {
		bad("mode %q: want %s or %s", s.Mode, ModeEvents, ModeStepFunctions)
	}
	if s.Architecture != ArchARM64 && s.Architecture != ArchX8664 {
		bad("architecture %q: want %s or %s", s.Architecture, ArchARM64, ArchX8664)
	}
	if s.MemoryMB < 128 || s.MemoryMB > 10240 {
		bad("memory %d MB: want 128 to 10240", s.MemoryMB)
	}
	if s.Timeout < time.Second || s.Timeout > 900*time.Second || s.Timeout%time.Second != 0 {
		bad("timeout %s: want whole seconds from 1s to 900s", s.Timeout)
	}
	// SQS caps the visibility timeout at 12 hours; six function timeouts
	// always fit (6 x 900 s), so only the lease needs a check.
	if s.LeaseTimeout < s.Timeout {
		bad("lease timeout %s is shorter than the function timeout %s: a step could lose its lease while it runs", s.LeaseTimeout, s.Timeout)
	}
	if s.Retention < 0 {
		bad("retention %s: want a positive duration, or none", s.Retention)
	}
	if !slices.Contains(logRetentions, s.LogRetentionDays) {
		bad("log retention %d days: want one of %s", s.LogRetentionDays, joinNames(logRetentions))
	}
	// SQS takes batches above 10 only with a batching window, which would
	// delay every step; the streams take up to 10,000.
	maxBatch := 10
	if s.Dispatch == DispatchKinesis || s.Dispatch == DispatchDynamoDB {
		maxBatch = 10000
	}
	if s.BatchSize < 1 || s.BatchSize > maxBatch {
		bad("batch size %d: want 1 to %d", s.BatchSize, maxBatch)
	}
	if s.KinesisShards < 0 || s.KinesisShards > 10000 {
		bad("kinesis shards %d: want 0 (on-demand) to 10000", s.KinesisShards)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Tags)) {
		if strings.HasPrefix(k, "aws:") || strings.HasPrefix(k, "lfsm:") {
			bad("tag %q: the prefixes aws: and lfsm: are reserved", k)
		}
	}
	if s.Chaos != "" && s.Mode == ModeStepFunctions {
		bad("function chaos: only with mode %s (in %s mode the function opens no store or dispatch to fail)", ModeEvents, ModeStepFunctions)
	}
	if s.VPC != nil {
		s.VPC.validate(bad)
		if s.Mode == ModeStepFunctions {
			bad("aws.vpc: only with mode %s (in %s mode lfsm's store and dispatch are not used)", ModeEvents, ModeStepFunctions)
		}
	}
	if s.SecondaryLeaseCache && !s.LeaseCache {
		bad("aws.secondary.lease-cache: needs aws.lease-cache (a secondary pairs with a primary)")
	}
	if s.Secondary && s.Mode == ModeStepFunctions {
		bad("aws.secondary.deploy: only with mode %s (in %s mode there is no dispatch to fail over)", ModeEvents, ModeStepFunctions)
	}
	if s.Metrics != nil {
		if err := ValidNamespace(s.Metrics.Namespace); err != nil {
			errs = append(errs, err)
		}
		if r := s.Metrics.SecondaryRegion; r != "" && !regionRE.MatchString(r) {
			bad("metrics.secondary-region %q: want a region name such as us-west-2", r)
		}
		if s.Metrics.SecondaryRegion != "" && s.VPC != nil && s.VPC.Egress == EgressEndpoints {
			bad("metrics.secondary-region %s: a function in a VPC reaches another region only through a NAT (an interface endpoint serves its own region): set aws.vpc.egress to nat, or drop the secondary region", s.Metrics.SecondaryRegion)
		}
	}
	return errors.Join(errs...)
}

func joinNames[T any](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}

package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AWS is the aws: section of lfsm.yaml: where executions live with
// --target aws. Stack names the CloudFormation stack lfsm deploy created,
// whose outputs name every resource; each explicit ARN overrides the stack's
// (and without a stack, the ARNs alone say where things are: users with
// their own infrastructure, and tests against emulators). Every key is also
// an environment variable: LFSM_AWS_ and the key in capitals, '-' as '_'
// (LFSM_AWS_STORE_TABLE_ARN), the names the deployed function reads.
type AWS struct {
	// Stack is the CloudFormation stack's name or ARN.
	Stack string `mapstructure:"stack" json:"stack,omitempty"`
	// Dispatch is how messages travel between steps: sqs (default),
	// kinesis, sns, sns-sqs or dynamodb.
	Dispatch string `mapstructure:"dispatch" json:"dispatch,omitempty"`
	// DispatchARN is the queue, stream, topic or table messages are sent to.
	DispatchARN string `mapstructure:"dispatch-arn" json:"dispatch_arn,omitempty"`
	// RetryTableARN is the DynamoDB table of delayed retries; empty means
	// the dispatch queue with DelaySeconds (SQS only).
	RetryTableARN string `mapstructure:"retry-table-arn" json:"retry_table_arn,omitempty"`
	// StoreTableARN is the execution store's table.
	StoreTableARN string `mapstructure:"store-table-arn" json:"store_table_arn,omitempty"`
	// FunctionARN is the deployed Lambda function.
	FunctionARN string `mapstructure:"function-arn" json:"function_arn,omitempty"`
	// LeaseCache is the lease cache's endpoint (redis://, rediss://,
	// memcached://, memcacheds://): leases, fences and done markers live
	// there instead of the store table (docs/design.md, "Lease caches").
	// It may hold an AUTH password, so JSON shows it redacted.
	LeaseCache LeaseCacheURL `mapstructure:"lease-cache" json:"lease_cache,omitempty"`
	// Retention, when set, makes DynamoDB's TTL delete finished executions
	// (done, failed, stopped) and their history this long after they
	// finished, keeping a tombstone so that their ids never run again: a
	// duration such as 30d or 720h (ParseAge). lfsm deploy gives it to the
	// function and to the stack's outputs; the operator commands need it
	// for the executions they stop.
	Retention string `mapstructure:"retention" json:"retention,omitempty"`
	// VPC, when its id is set, makes lfsm deploy run the function in that
	// VPC (a lease cache on ElastiCache is reachable only there).
	VPC VPC `mapstructure:"vpc" json:"vpc,omitzero"`
	// Secondary is the failover pair of the dispatch and the retry table
	// (REFERENCE.md §4: every source has a primary and an optional
	// secondary): sends that fail on the primary go there, and the function
	// consumes both.
	Secondary Secondary `mapstructure:"secondary" json:"secondary,omitzero"`
}

// Secondary is aws.secondary. Deploy makes lfsm deploy add the secondaries
// to the stack (whose outputs then name them); the ARNs name them
// explicitly, in any region (each client takes its region from its ARN).
type Secondary struct {
	// Deploy: lfsm deploy creates a secondary of the dispatch (and of the
	// retry table) in the stack, with its own event source mapping.
	Deploy bool `mapstructure:"deploy" json:"deploy,omitempty"`
	// DispatchARN is the secondary queue, stream, topic or table, of the
	// same kind as aws.dispatch.
	DispatchARN string `mapstructure:"dispatch-arn" json:"dispatch_arn,omitempty"`
	// RetryTableARN is the secondary retry table (dispatches that cannot
	// delay; with sqs the secondary queue delays its own retries).
	RetryTableARN string `mapstructure:"retry-table-arn" json:"retry_table_arn,omitempty"`
	// LeaseCache is the secondary lease cache's endpoint (as
	// aws.lease-cache): an execution's leases move there only by a fenced
	// switch when the primary fails, never call by call (docs/design.md,
	// "Failover"). It may hold an AUTH password, so JSON shows it redacted.
	LeaseCache LeaseCacheURL `mapstructure:"lease-cache" json:"lease_cache,omitempty"`
}

// VPC is aws.vpc: the network lfsm deploy attaches the function to. The
// stack adds the endpoints and permissions (docs/deploy.md, "In a VPC").
type VPC struct {
	// ID is the VPC (vpc-...).
	ID string `mapstructure:"id" json:"id,omitempty"`
	// Subnets are the function's subnets (subnet-...).
	Subnets []string `mapstructure:"subnets" json:"subnets,omitempty"`
	// SecurityGroups are the function's security groups (sg-...).
	SecurityGroups []string `mapstructure:"security-groups" json:"security_groups,omitempty"`
	// RouteTables are the subnets' route tables (rtb-...), for the
	// DynamoDB gateway endpoint.
	RouteTables []string `mapstructure:"route-tables" json:"route_tables,omitempty"`
	// Egress is endpoints (default: interface endpoints for the services
	// the function calls) or nat (the subnets have a NAT gateway).
	Egress string `mapstructure:"egress" json:"egress,omitempty"`
}

// IsZero reports whether aws.vpc is unset.
func (v VPC) IsZero() bool {
	return v.ID == "" && len(v.Subnets) == 0 && len(v.SecurityGroups) == 0 && len(v.RouteTables) == 0 && v.Egress == ""
}

// Dispatch kinds the aws.dispatch key accepts, the default first.
var dispatches = []string{"sqs", "kinesis", "sns", "sns-sqs", "dynamodb"}

// Dispatches lists the values of aws.dispatch, the default first.
func Dispatches() []string { return slices.Clone(dispatches) }

// AWSKeys lists the keys of the aws: section, as lfsm.yaml spells them.
func AWSKeys() []string {
	return []string{"aws.dispatch", "aws.dispatch-arn", "aws.function-arn",
		"aws.lease-cache", "aws.retention", "aws.retry-table-arn", "aws.secondary.deploy", "aws.secondary.dispatch-arn", "aws.secondary.lease-cache", "aws.secondary.retry-table-arn",
		"aws.stack", "aws.store-table-arn",
		"aws.vpc.egress", "aws.vpc.id", "aws.vpc.route-tables", "aws.vpc.security-groups", "aws.vpc.subnets"}
}

// StackOutputs maps each aws: key to the stack output that sets it (the
// key in CamelCase, as lfsm deploy's template names its outputs).
var StackOutputs = map[string]string{
	"dispatch":        "Dispatch",
	"dispatch-arn":    "DispatchArn",
	"retry-table-arn": "RetryTableArn",
	"store-table-arn": "StoreTableArn",
	"function-arn":    "FunctionArn",
	// The secondaries: the key's path in CamelCase.
	"secondary.dispatch-arn":    "SecondaryDispatchArn",
	"secondary.retry-table-arn": "SecondaryRetryTableArn",
	"retention":                 "Retention",
}

// ErrNoAWSStore is returned for --target aws when the settings name neither
// a stack nor a store table.
var ErrNoAWSStore = errors.New(`--target aws needs to know where executions are stored: set aws.stack to the CloudFormation stack lfsm deploy created, or name the resources yourself with aws.store-table-arn and aws.dispatch-arn (also LFSM_AWS_STACK, LFSM_AWS_STORE_TABLE_ARN, LFSM_AWS_DISPATCH_ARN); for example, in lfsm.yaml:

    target: aws
    aws:
      stack: orders-prod

lfsm never falls back to the local store for --target aws`)

// NeedsStack reports whether a resolves anything from a stack.
func (a AWS) NeedsStack() bool { return a.Stack != "" }

// WithOutputs returns a with every key it leaves empty taken from the
// stack's outputs (explicit settings win).
func (a AWS) WithOutputs(outputs map[string]string) AWS {
	fill := func(dst *string, key string) {
		if *dst == "" {
			*dst = outputs[StackOutputs[key]]
		}
	}
	fill(&a.Dispatch, "dispatch")
	fill(&a.DispatchARN, "dispatch-arn")
	fill(&a.RetryTableARN, "retry-table-arn")
	fill(&a.StoreTableARN, "store-table-arn")
	fill(&a.FunctionARN, "function-arn")
	fill(&a.Secondary.DispatchARN, "secondary.dispatch-arn")
	fill(&a.Secondary.RetryTableARN, "secondary.retry-table-arn")
	fill(&a.Retention, "retention")
	return a
}

// Resources are the AWS resources one command talks to, resolved.
type Resources struct {
	Dispatch    string
	DispatchARN ARN
	RetryTable  *ARN
	StoreTable  ARN
	Function    *LambdaARN
	// LeaseCache is the lease cache's endpoint, checked (empty: none).
	LeaseCache LeaseCacheURL
	// SecondaryDispatch and SecondaryRetryTable are the failover pairs of
	// the dispatch and the retry table (nil: none).
	SecondaryDispatch   *ARN
	SecondaryRetryTable *ARN
	// SecondaryLeaseCache is the secondary lease cache's endpoint, checked
	// (empty: none).
	SecondaryLeaseCache LeaseCacheURL
	// Retention is aws.retention parsed; 0 when unset.
	Retention     time.Duration
	dispatchGiven bool
}

// Resolve checks a (after WithOutputs, when there is a stack) and parses its
// ARNs. Without a store table it returns ErrNoAWSStore; every other problem
// is reported at once, naming the key.
func (a AWS) Resolve() (Resources, error) {
	if a.StoreTableARN == "" {
		if a.Stack != "" {
			return Resources{}, fmt.Errorf("stack %s has no %s output (is it a stack lfsm deploy created?); set aws.store-table-arn instead", a.Stack, StackOutputs["store-table-arn"])
		}
		return Resources{}, ErrNoAWSStore
	}
	r := Resources{Dispatch: a.Dispatch}
	if r.Dispatch == "" {
		r.Dispatch = dispatches[0]
	}
	var errs []error
	if !slices.Contains(dispatches, r.Dispatch) {
		errs = append(errs, fmt.Errorf("invalid aws.dispatch %q: want one of %s", r.Dispatch, strings.Join(dispatches, ", ")))
	}
	parse := func(key, s, service, resource string) *ARN {
		if s == "" {
			return nil
		}
		a, err := ParseARN(s)
		if err == nil && a.Service != service {
			err = fmt.Errorf("service is %q, not %s", a.Service, service)
		}
		if err == nil && resource != "" && !strings.HasPrefix(a.Resource, resource) {
			err = fmt.Errorf("resource %q is not a %s", a.Resource, strings.TrimSuffix(resource, "/"))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid aws.%s: %w", key, err))
			return nil
		}
		return &a
	}
	if t := parse("store-table-arn", a.StoreTableARN, "dynamodb", "table/"); t != nil {
		r.StoreTable = *t
	}
	r.RetryTable = parse("retry-table-arn", a.RetryTableARN, "dynamodb", "table/")
	service := map[string]string{"sqs": "sqs", "sns-sqs": "sqs", "kinesis": "kinesis", "sns": "sns", "dynamodb": "dynamodb"}[r.Dispatch]
	if d := parse("dispatch-arn", a.DispatchARN, service, ""); d != nil {
		r.DispatchARN, r.dispatchGiven = *d, true
	}
	r.SecondaryDispatch = parse("secondary.dispatch-arn", a.Secondary.DispatchARN, service, "")
	r.SecondaryRetryTable = parse("secondary.retry-table-arn", a.Secondary.RetryTableARN, "dynamodb", "table/")
	switch {
	case a.Secondary.DispatchARN != "" && a.DispatchARN == "":
		errs = append(errs, errors.New("aws.secondary.dispatch-arn is set but aws.dispatch-arn is not: a secondary pairs with a primary"))
	case a.Secondary.DispatchARN != "" && a.Secondary.DispatchARN == a.DispatchARN:
		errs = append(errs, errors.New("aws.secondary.dispatch-arn is aws.dispatch-arn: the secondary must be another resource"))
	}
	switch {
	case a.Secondary.RetryTableARN != "" && a.RetryTableARN == "":
		errs = append(errs, errors.New("aws.secondary.retry-table-arn is set but aws.retry-table-arn is not: a secondary pairs with a primary"))
	case a.Secondary.RetryTableARN != "" && a.Secondary.RetryTableARN == a.RetryTableARN:
		errs = append(errs, errors.New("aws.secondary.retry-table-arn is aws.retry-table-arn: the secondary must be another table"))
	}
	if a.LeaseCache != "" {
		if err := a.LeaseCache.Check(); err != nil {
			errs = append(errs, fmt.Errorf("invalid aws.lease-cache: %w", err))
		} else {
			r.LeaseCache = a.LeaseCache
		}
	}
	switch {
	case a.Secondary.LeaseCache == "":
	case a.LeaseCache == "":
		errs = append(errs, errors.New("aws.secondary.lease-cache is set but aws.lease-cache is not: a secondary pairs with a primary"))
	case a.Secondary.LeaseCache == a.LeaseCache:
		errs = append(errs, errors.New("aws.secondary.lease-cache is aws.lease-cache: the secondary must be another cache"))
	default:
		if err := a.Secondary.LeaseCache.Check(); err != nil {
			errs = append(errs, fmt.Errorf("invalid aws.secondary.lease-cache: %w", err))
		} else {
			r.SecondaryLeaseCache = a.Secondary.LeaseCache
		}
	}
	if a.FunctionARN != "" {
		f, err := ParseLambdaARN(a.FunctionARN)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid aws.function-arn: %w", err))
		} else {
			r.Function = &f
		}
	}
	if a.Retention != "" {
		d, err := ParseAge(a.Retention)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid aws.retention: %w", err))
		}
		r.Retention = d
	}
	return r, errors.Join(errs...)
}

// HasDispatch reports whether a dispatch ARN was given (commands that send,
// such as start, need one).
func (r Resources) HasDispatch() bool { return r.dispatchGiven }

// ARN is a parsed Amazon Resource Name.
type ARN struct {
	Partition, Service, Region, Account string
	// Resource is everything after the account: "table/NAME", "NAME" (SQS,
	// SNS), "stream/NAME".
	Resource string
	raw      string
}

// String returns the ARN as given.
func (a ARN) String() string { return a.raw }

// Name is the resource's name: the resource without its type prefix
// ("table/orders" is "orders").
func (a ARN) Name() string {
	if _, n, ok := strings.Cut(a.Resource, "/"); ok {
		return n
	}
	return a.Resource
}

// ParseARN parses arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE.
func ParseARN(s string) (ARN, error) {
	p := strings.SplitN(s, ":", 6)
	if len(p) != 6 || p[0] != "arn" {
		return ARN{}, fmt.Errorf("%q is not an ARN (want arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)", s)
	}
	a := ARN{Partition: p[1], Service: p[2], Region: p[3], Account: p[4], Resource: p[5], raw: s}
	switch {
	case !partitionRE.MatchString(a.Partition):
		return ARN{}, fmt.Errorf("ARN %q: bad partition %q", s, a.Partition)
	case !regionRE.MatchString(a.Region):
		return ARN{}, fmt.Errorf("ARN %q: bad region %q (each client takes its region from its resource's ARN)", s, a.Region)
	case !accountRE.MatchString(a.Account):
		return ARN{}, fmt.Errorf("ARN %q: account %q is not 12 digits", s, a.Account)
	case a.Resource == "":
		return ARN{}, fmt.Errorf("ARN %q: no resource", s)
	}
	return a, nil
}

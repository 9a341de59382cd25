package deploy

// The function's environment: what the Lambda handler reads to find the
// deployment's resources. Values are ARNs (each client takes its region from
// its resource's ARN) except the dispatch kind. The names follow the `aws:`
// keys of lfsm.yaml (LFSM_ + key, '.' and '-' as '_'), so the same setting
// names a resource whether it comes from the stack, the environment or the
// file.
const (
	EnvTarget        = "LFSM_TARGET"
	EnvDispatch      = "LFSM_AWS_DISPATCH"
	EnvDispatchARN   = "LFSM_AWS_DISPATCH_ARN"
	EnvStoreTableARN = "LFSM_AWS_STORE_TABLE_ARN"
	EnvRetryTableARN = "LFSM_AWS_RETRY_TABLE_ARN"
	// EnvLeaseCache is the lease cache's endpoint (aws.lease-cache): the
	// store keeps leases there (docs/design.md, "Lease caches").
	EnvLeaseCache = "LFSM_AWS_LEASE_CACHE"
	// EnvSecondaryLeaseCache is the secondary lease cache's endpoint
	// (aws.secondary.lease-cache), from the stack's NoEcho parameter.
	EnvSecondaryLeaseCache = "LFSM_AWS_SECONDARY_LEASE_CACHE"
	EnvLeaseTimeout        = "LFSM_LEASE_TIMEOUT"
	// EnvRenames is the deploy's rename map (engine.EncodeRenames), set only
	// by a deploy given one (lfsm deploy --rename).
	EnvRenames = "LFSM_RENAMES"
	// The secondaries (aws.secondary.dispatch-arn and retry-table-arn), set
	// only when the stack has them.
	EnvSecondaryDispatchARN   = "LFSM_AWS_SECONDARY_DISPATCH_ARN"
	EnvSecondaryRetryTableARN = "LFSM_AWS_SECONDARY_RETRY_TABLE_ARN"
	// EnvMetricsCloudWatch is "true" when the function publishes its
	// counters with PutMetricData (metrics.cloudwatch), in the namespace
	// EnvMetricsNamespace names.
	EnvMetricsCloudWatch = "LFSM_METRICS_CLOUDWATCH"
	EnvMetricsNamespace  = "LFSM_METRICS_NAMESPACE"
	// EnvMetricsSecondaryRegion is the region the publisher fails over to
	// (metrics.secondary-region), set only when there is one.
	EnvMetricsSecondaryRegion = "LFSM_METRICS_SECONDARY_REGION"
	// EnvChaos turns chaos on in the function: a chaos SPEC
	// (dynamodb.Acquire=0.2,kinesis.Send=0.1) whose calls to the AWS
	// backends fail at random. Only an explicit opt-in writes it (lfsm
	// deploy --function-chaos, lfsm dev --target aws --chaos). It is not
	// LFSM_CHAOS, the setting of local runs, so that an exported LFSM_CHAOS
	// never reaches a function by inheritance.
	EnvChaos = "LFSM_FUNCTION_CHAOS"
	// EnvChaosSeed seeds the function's draws (default: random per
	// instance).
	EnvChaosSeed = "LFSM_FUNCTION_CHAOS_SEED"
	// EnvChaosReport names a file the function rewrites after each
	// invocation with its calls and injected failures per operation (a
	// chaos.Report): lfsm dev --target aws reads it for its report. Never
	// deployed.
	EnvChaosReport = "LFSM_FUNCTION_CHAOS_REPORT"
	// EnvRetention is aws.retention (set only when it is): DynamoDB's TTL
	// deletes finished executions this long after they finished.
	EnvRetention = "LFSM_AWS_RETENTION"
)

// Stack outputs. Every resource of the stack is named by one; `aws: {stack:
// NAME}` resolves the settings from them (the output key is the setting's
// key in CamelCase: dispatch-arn is DispatchArn).
const (
	OutDispatch          = "Dispatch"
	OutDispatchARN       = "DispatchArn"
	OutDispatchURL       = "DispatchUrl"
	OutDispatchTopicARN  = "DispatchTopicArn"
	OutStoreTableARN     = "StoreTableArn"
	OutRetryTableARN     = "RetryTableArn"
	OutDispatchTableARN  = "DispatchTableArn"
	OutDeadLetterURL     = "DeadLetterQueueUrl"
	OutDeadLetterARN     = "DeadLetterQueueArn"
	OutFailureQueueURL   = "FailureQueueUrl"
	OutFailureQueueARN   = "FailureQueueArn"
	OutFunctionARN       = "FunctionArn"
	OutRetention         = "Retention"
	OutFunctionName      = "FunctionName"
	OutFunctionRoleARN   = "FunctionRoleArn"
	OutLogGroupName      = "LogGroupName"
	OutTickRuleARN       = "TickRuleArn"
	OutStateMachineRole  = "StateMachineRoleArn"
	OutMappingID         = "DispatchMappingId"
	OutStateMachinePrefx = "StateMachineArn"

	// The secondaries' outputs: the primary's name with Secondary in front
	// (aws.secondary.dispatch-arn is SecondaryDispatchArn).
	OutSecondaryDispatchARN      = "SecondaryDispatchArn"
	OutSecondaryDispatchURL      = "SecondaryDispatchUrl"
	OutSecondaryDispatchTopicARN = "SecondaryDispatchTopicArn"
	OutSecondaryRetryTableARN    = "SecondaryRetryTableArn"
	OutSecondaryDispatchTableARN = "SecondaryDispatchTableArn"
	OutSecondaryMappingID        = "SecondaryDispatchMappingId"
)

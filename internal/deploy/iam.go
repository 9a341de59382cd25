package deploy

import "slices"

// Statement is one IAM policy statement. Resources are ARNs or intrinsic
// functions that give ARNs; Condition is nil when the resources scope it.
type Statement struct {
	Sid       string
	Action    []string
	Resource  []any
	Condition map[string]any
	// Why explains a statement whose action allows no resource-level
	// permission; it goes into the role's Metadata.
	Why string
}

// DynamoDB actions the store (internal/backend/dynamodb) calls (the batched
// commit of an SQS batch writes its step items with BatchWriteItem; a
// TransactWriteItems needs only its items' PutItem and UpdateItem), and those
// the retry poller needs: it queries due items and deletes them once run.
var (
	storeActions = []string{
		"dynamodb:BatchGetItem",
		"dynamodb:BatchWriteItem",
		"dynamodb:GetItem",
		"dynamodb:PutItem",
		"dynamodb:Query",
		"dynamodb:UpdateItem",
	}
	retryActions = []string{
		"dynamodb:DeleteItem",
		"dynamodb:PutItem",
		"dynamodb:Query",
	}
	// The event source mapping's pollers run with the function's role.
	sqsPollerActions = []string{
		"sqs:ChangeMessageVisibility",
		"sqs:DeleteMessage",
		"sqs:GetQueueAttributes",
		"sqs:ReceiveMessage",
	}
	kinesisPollerActions = []string{
		"kinesis:DescribeStream",
		"kinesis:DescribeStreamSummary",
		"kinesis:GetRecords",
		"kinesis:GetShardIterator",
		"kinesis:ListShards",
	}
	ddbStreamActions = []string{
		"dynamodb:DescribeStream",
		"dynamodb:GetRecords",
		"dynamodb:GetShardIterator",
	}
)

// FunctionPolicy is the function role's policy: the actions the handler and
// the event source mappings' pollers make, each on exactly the stack's
// resources. No statement has a wildcard action; the only wildcard resource
// is for an action that has no resource-level permission, scoped by a
// condition and explained in Why.
func (m *Model) FunctionPolicy() []Statement {
	logs := Statement{
		Sid:      "Logs",
		Action:   []string{"logs:CreateLogStream", "logs:PutLogEvents"},
		Resource: []any{GetAtt(IDLogGroup, "Arn")},
	}
	if m.Settings.Mode == ModeStepFunctions {
		return append([]Statement{logs}, m.metricsStatements()...)
	}
	withIndexes := func(id string) []any {
		res := []any{GetAtt(id, "Arn")}
		for _, ix := range m.Table(id).Indexes {
			res = append(res, Sub("${"+id+".Arn}/index/"+ix.Name))
		}
		return res
	}
	sts := []Statement{
		logs,
		{Sid: "Store", Action: storeActions, Resource: withIndexes(IDExecutionsTable)},
	}
	if m.Table(IDRetriesTable) != nil {
		res := withIndexes(IDRetriesTable)
		if m.Table(IDSecondaryRetriesTable) != nil {
			res = append(res, withIndexes(IDSecondaryRetriesTable)...)
		}
		sts = append(sts, Statement{Sid: "Retries", Action: retryActions, Resource: res})
	}
	// both is the primary's resource and, with a secondary, the
	// secondary's: the function sends to and consumes both.
	both := func(primary, secondary string, attr string) []any {
		res := []any{GetAtt(primary, attr)}
		if m.Secondary {
			res = append(res, GetAtt(secondary, attr))
		}
		return res
	}
	queues := both(IDDispatchQueue, IDSecondaryDispatchQueue, "Arn")
	failure := Statement{
		Sid:      "FailureDestination",
		Action:   []string{"sqs:SendMessage"},
		Resource: []any{GetAtt(IDFailureQueue, "Arn")},
	}
	switch m.Settings.Dispatch {
	case DispatchSQS:
		sts = append(sts,
			Statement{Sid: "DispatchSend", Action: []string{"sqs:GetQueueUrl", "sqs:SendMessage"}, Resource: queues},
			Statement{Sid: "DispatchPoll", Action: sqsPollerActions, Resource: slices.Clone(queues)},
		)
	case DispatchSNSSQS:
		// lfsm sends to the subscribed queue itself (config: the dispatch
		// ARN of sns-sqs is the queue); the topic is for other publishers.
		sts = append(sts,
			Statement{Sid: "DispatchSend", Action: []string{"sqs:GetQueueUrl", "sqs:SendMessage"}, Resource: queues},
			Statement{Sid: "DispatchPoll", Action: sqsPollerActions, Resource: slices.Clone(queues)},
		)
	case DispatchSNS:
		// The SNS backend reads the topic's attributes once (FIFO or not);
		// sns:Publish also allows PublishBatch.
		topics := []any{Ref(IDDispatchTopic)}
		if m.Secondary {
			topics = append(topics, Ref(IDSecondaryDispatchTopic))
		}
		sts = append(sts,
			Statement{Sid: "DispatchSend", Action: []string{"sns:GetTopicAttributes", "sns:Publish"}, Resource: topics},
			failure,
		)
	case DispatchKinesis:
		streams := both(IDDispatchStream, IDSecondaryDispatchStream, "Arn")
		sts = append(sts,
			Statement{Sid: "DispatchSend", Action: []string{"kinesis:PutRecord", "kinesis:PutRecords"}, Resource: streams},
			Statement{Sid: "DispatchPoll", Action: kinesisPollerActions, Resource: slices.Clone(streams)},
			failure,
		)
	case DispatchDynamoDB:
		sts = append(sts,
			Statement{Sid: "DispatchSend", Action: []string{"dynamodb:PutItem"}, Resource: both(IDDispatchTable, IDSecondaryDispatchTable, "Arn")},
			Statement{Sid: "DispatchPoll", Action: ddbStreamActions, Resource: both(IDDispatchTable, IDSecondaryDispatchTable, "StreamArn")},
			Statement{
				Sid:       "DispatchListStreams",
				Action:    []string{"dynamodb:ListStreams"},
				Resource:  []any{"*"},
				Condition: map[string]any{"StringEquals": map[string]any{"aws:RequestedRegion": Ref("AWS::Region")}},
				Why: "dynamodb:ListStreams allows no resource-level permission (IAM's service authorization reference lists no resource type for it), " +
					"and Lambda's DynamoDB stream poller calls it; the statement is limited to the stack's region by aws:RequestedRegion",
			},
			failure,
		)
	}
	sts = append(sts, m.metricsStatements()...)
	if m.Settings.VPC != nil {
		sts = append(sts, m.eniStatements()...)
	}
	return sts
}

// metricsStatements allow the publisher's PutMetricData when it is on
// (Settings.Metrics), in its namespace only.
func (m *Model) metricsStatements() []Statement {
	if m.Settings.Metrics == nil {
		return nil
	}
	return []Statement{{
		Sid:       "Metrics",
		Action:    []string{"cloudwatch:PutMetricData"},
		Resource:  []any{"*"},
		Condition: map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": m.Settings.Metrics.Namespace}},
		Why: "cloudwatch:PutMetricData allows no resource-level permission (IAM's service authorization reference lists no resource type for it), " +
			"and the function publishes its counters with it once per invocation (metrics.cloudwatch); the statement is limited to the " +
			"function's namespace by cloudwatch:namespace (in any region: a secondary region, metrics.secondary-region, takes the calls the function's own fails)",
	}}
}

// policyNotes is the role's Metadata: why each unscoped statement exists.
func (m *Model) policyNotes() map[string]any {
	notes := map[string]any{
		"least_privilege": "every statement names the stack's own resources; no action is a wildcard",
	}
	for _, s := range m.FunctionPolicy() {
		if s.Why != "" {
			notes[s.Sid] = s.Why
		}
	}
	return notes
}

// policyDocument renders statements as an IAM policy document.
func policyDocument(sts []Statement) map[string]any {
	var list []any
	for _, s := range sts {
		st := map[string]any{
			"Sid":      s.Sid,
			"Effect":   "Allow",
			"Action":   slices.Clone(s.Action),
			"Resource": slices.Clone(s.Resource),
		}
		if s.Condition != nil {
			st["Condition"] = s.Condition
		}
		list = append(list, st)
	}
	return map[string]any{"Version": "2012-10-17", "Statement": list}
}

package deploy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kintypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// The clients ApplyLocal needs; the SDK's clients implement them.
type (
	// DynamoDBAPI creates and inspects tables.
	DynamoDBAPI interface {
		DescribeTable(context.Context, *dynamodb.DescribeTableInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
		CreateTable(context.Context, *dynamodb.CreateTableInput, ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
		DeleteTable(context.Context, *dynamodb.DeleteTableInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteTableOutput, error)
		DescribeTimeToLive(context.Context, *dynamodb.DescribeTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
		UpdateTimeToLive(context.Context, *dynamodb.UpdateTimeToLiveInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	}
	// SQSAPI creates and inspects queues.
	SQSAPI interface {
		GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
		CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
		GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
		SetQueueAttributes(context.Context, *sqs.SetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
	}
	// KinesisAPI creates and inspects streams.
	KinesisAPI interface {
		DescribeStreamSummary(context.Context, *kinesis.DescribeStreamSummaryInput, ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
		CreateStream(context.Context, *kinesis.CreateStreamInput, ...func(*kinesis.Options)) (*kinesis.CreateStreamOutput, error)
	}
	// SNSAPI creates topics and subscriptions.
	SNSAPI interface {
		ListTopics(context.Context, *sns.ListTopicsInput, ...func(*sns.Options)) (*sns.ListTopicsOutput, error)
		CreateTopic(context.Context, *sns.CreateTopicInput, ...func(*sns.Options)) (*sns.CreateTopicOutput, error)
		ListSubscriptionsByTopic(context.Context, *sns.ListSubscriptionsByTopicInput, ...func(*sns.Options)) (*sns.ListSubscriptionsByTopicOutput, error)
		Subscribe(context.Context, *sns.SubscribeInput, ...func(*sns.Options)) (*sns.SubscribeOutput, error)
	}
)

// LocalClients are the emulators' clients. A nil client is an emulator that
// is not there: resources of its service fail to apply, naming it.
type LocalClients struct {
	DynamoDB DynamoDBAPI
	SQS      SQSAPI
	Kinesis  KinesisAPI
	SNS      SNSAPI
	// Region and Account name the tables in the ARNs ApplyLocal reports
	// (DynamoDB Local's own ARNs say region "ddblocal").
	Region, Account string
	// Force recreates stateful tables that differ (and loses their data).
	Force bool
}

// LocalAction is what ApplyLocal did with one resource.
type LocalAction struct {
	LogicalID string `json:"logical_id"`
	Type      string `json:"type"`
	Name      string `json:"name,omitempty"`
	// Action is created, unchanged, updated, recreated, differs (a
	// stateful table left as it is), or skipped (no emulator for the type).
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// LocalResult is the outcome of ApplyLocal: one action per resource of the
// template, in logical id order, and the aws: settings that name what
// exists now (there is no stack to read outputs from).
type LocalResult struct {
	Actions  []LocalAction     `json:"actions"`
	Settings map[string]string `json:"settings"`
}

// Changed reports whether anything was created, updated or recreated.
func (r *LocalResult) Changed() bool {
	for _, a := range r.Actions {
		if a.Action == "created" || a.Action == "updated" || a.Action == "recreated" {
			return true
		}
	}
	return false
}

// ApplyLocal applies the model to local emulators of the services that have
// one (DynamoDB, SQS, SNS, Kinesis): it creates what is missing, updates
// queue attributes in place, reports tables whose keys differ (and recreates
// them with Force), and lists every other resource as skipped.
func (m *Model) ApplyLocal(ctx context.Context, c LocalClients) (*LocalResult, error) {
	if m.Settings.Mode != ModeEvents {
		return nil, errors.New("the emulators have no Step Functions: deploy --emulators needs mode events")
	}
	res := &LocalResult{Settings: map[string]string{"dispatch": string(m.Settings.Dispatch)}}
	tmpl := m.Template()
	done := map[string]bool{}
	arns := map[string]string{}
	for i := range m.Tables {
		tb := &m.Tables[i]
		a, arn, err := m.applyTable(ctx, c, tb)
		if err != nil {
			return res, err
		}
		res.Actions, done[tb.ID], arns[tb.ID] = append(res.Actions, a), true, arn
	}
	// Dead-letter queues first: the dispatch queue's redrive names them.
	queues := slices.Clone(m.Queues)
	slices.SortStableFunc(queues, func(a, b Queue) int {
		return boolInt(a.DeadLetter != "") - boolInt(b.DeadLetter != "")
	})
	for _, q := range queues {
		a, arn, err := m.applyQueue(ctx, c, q, arns)
		if err != nil {
			return res, err
		}
		res.Actions, done[q.ID], arns[q.ID] = append(res.Actions, a), true, arn
	}
	if m.Stream {
		streams := [][2]string{{IDDispatchStream, "dispatch"}}
		if m.Secondary {
			streams = append(streams, [2]string{IDSecondaryDispatchStream, suffixSecondary})
		}
		for _, st := range streams {
			a, arn, err := m.applyStream(ctx, c, st[0], st[1])
			if err != nil {
				return res, err
			}
			res.Actions, done[st[0]], arns[st[0]] = append(res.Actions, a), true, arn
		}
	}
	if m.Topic {
		topics := []topicIDs{primaryTopic}
		if m.Secondary {
			topics = append(topics, secondaryTopic)
		}
		for _, ids := range topics {
			as, arn, err := m.applyTopic(ctx, c, ids, arns)
			if err != nil {
				return res, err
			}
			res.Actions = append(res.Actions, as...)
			done[ids.topic], arns[ids.topic] = true, arn
			if m.Settings.Dispatch == DispatchSNSSQS {
				done[ids.subscription], done[ids.policy] = true, true
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(tmpl.Resources)) {
		if !done[id] {
			res.Actions = append(res.Actions, LocalAction{LogicalID: id, Type: tmpl.Resources[id].Type, Action: "skipped", Detail: "no local emulator"})
		}
	}
	slices.SortFunc(res.Actions, func(a, b LocalAction) int { return strings.Compare(a.LogicalID, b.LogicalID) })
	res.Settings["store-table-arn"] = arns[IDExecutionsTable]
	if arn := arns[IDRetriesTable]; arn != "" {
		res.Settings["retry-table-arn"] = arn
	}
	switch m.Settings.Dispatch {
	case DispatchSQS, DispatchSNSSQS:
		res.Settings["dispatch-arn"] = arns[IDDispatchQueue]
	case DispatchSNS:
		res.Settings["dispatch-arn"] = arns[IDDispatchTopic]
	case DispatchKinesis:
		res.Settings["dispatch-arn"] = arns[IDDispatchStream]
	case DispatchDynamoDB:
		res.Settings["dispatch-arn"] = arns[IDDispatchTable]
	}
	if m.Secondary {
		for _, id := range []string{IDSecondaryDispatchQueue, IDSecondaryDispatchStream, IDSecondaryDispatchTable} {
			if arns[id] != "" {
				res.Settings["secondary.dispatch-arn"] = arns[id]
			}
		}
		if m.Settings.Dispatch == DispatchSNS {
			res.Settings["secondary.dispatch-arn"] = arns[IDSecondaryDispatchTopic]
		}
		if arn := arns[IDSecondaryRetriesTable]; arn != "" {
			res.Settings["secondary.retry-table-arn"] = arn
		}
	}
	return res, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (m *Model) localName(suffix string) string { return m.Settings.Stack + "-" + suffix }

func (m *Model) tableInput(tb *Table) *dynamodb.CreateTableInput {
	attrs := map[string]KeyType{}
	keys := func(h, r Attr) []ddbtypes.KeySchemaElement {
		ks := []ddbtypes.KeySchemaElement{{AttributeName: aws.String(h.Name), KeyType: ddbtypes.KeyTypeHash}}
		attrs[h.Name] = h.Type
		if r.Name != "" {
			ks = append(ks, ddbtypes.KeySchemaElement{AttributeName: aws.String(r.Name), KeyType: ddbtypes.KeyTypeRange})
			attrs[r.Name] = r.Type
		}
		return ks
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(m.TableName(tb)),
		BillingMode: ddbtypes.BillingModePayPerRequest,
		KeySchema:   keys(tb.Hash, tb.Range),
	}
	for _, ix := range tb.Indexes {
		proj := ddbtypes.ProjectionType(ix.Projection)
		if proj == "" {
			proj = ddbtypes.ProjectionTypeAll
		}
		p := &ddbtypes.Projection{ProjectionType: proj}
		if ix.Local {
			in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, ddbtypes.LocalSecondaryIndex{IndexName: aws.String(ix.Name), KeySchema: keys(ix.Hash, ix.Range), Projection: p})
		} else {
			in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddbtypes.GlobalSecondaryIndex{IndexName: aws.String(ix.Name), KeySchema: keys(ix.Hash, ix.Range), Projection: p})
		}
	}
	for _, n := range slices.Sorted(maps.Keys(attrs)) {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{AttributeName: aws.String(n), AttributeType: ddbtypes.ScalarAttributeType(attrs[n])})
	}
	if tb.Stream != "" {
		in.StreamSpecification = &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewType(tb.Stream)}
	}
	return in
}

// keyShape is a table's keys and indexes as comparable text.
func keyShape(ks []ddbtypes.KeySchemaElement, gsis []string, lsis []string, stream string) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	slices.Sort(gsis)
	slices.Sort(lsis)
	return fmt.Sprintf("keys %s; global indexes %s; local indexes %s; stream %s", strings.Join(parts, ","), strings.Join(gsis, ","), strings.Join(lsis, ","), stream)
}

func indexShape(name string, ks []ddbtypes.KeySchemaElement, proj *ddbtypes.Projection) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, aws.ToString(k.AttributeName))
	}
	p := ""
	if proj != nil {
		p = string(proj.ProjectionType)
	}
	return name + "(" + strings.Join(parts, ",") + " " + p + ")"
}

func wantShape(in *dynamodb.CreateTableInput) string {
	var g, l []string
	for _, ix := range in.GlobalSecondaryIndexes {
		g = append(g, indexShape(aws.ToString(ix.IndexName), ix.KeySchema, ix.Projection))
	}
	for _, ix := range in.LocalSecondaryIndexes {
		l = append(l, indexShape(aws.ToString(ix.IndexName), ix.KeySchema, ix.Projection))
	}
	stream := "off"
	if in.StreamSpecification != nil {
		stream = string(in.StreamSpecification.StreamViewType)
	}
	return keyShape(in.KeySchema, g, l, stream)
}

func haveShape(t *ddbtypes.TableDescription) string {
	var g, l []string
	for _, ix := range t.GlobalSecondaryIndexes {
		g = append(g, indexShape(aws.ToString(ix.IndexName), ix.KeySchema, ix.Projection))
	}
	for _, ix := range t.LocalSecondaryIndexes {
		l = append(l, indexShape(aws.ToString(ix.IndexName), ix.KeySchema, ix.Projection))
	}
	stream := "off"
	if t.StreamSpecification != nil && aws.ToBool(t.StreamSpecification.StreamEnabled) {
		stream = string(t.StreamSpecification.StreamViewType)
	}
	return keyShape(t.KeySchema, g, l, stream)
}

func (m *Model) applyTable(ctx context.Context, c LocalClients, tb *Table) (LocalAction, string, error) {
	name := m.TableName(tb)
	a := LocalAction{LogicalID: tb.ID, Type: "AWS::DynamoDB::Table", Name: name}
	arn := fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", c.Region, c.Account, name)
	if c.DynamoDB == nil {
		return a, "", fmt.Errorf("table %s: no DynamoDB emulator (set AWS_ENDPOINT_URL_DYNAMODB)", name)
	}
	in := m.tableInput(tb)
	out, err := c.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var nf *ddbtypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		a.Action = "created"
	case err != nil:
		return a, "", fmt.Errorf("describe table %s: %w", name, err)
	default:
		want, have := wantShape(in), haveShape(out.Table)
		if want == have {
			a.Action = "unchanged"
			break
		}
		if tb.Stateful && !c.Force {
			a.Action, a.Detail = "differs", fmt.Sprintf("has %s; the model wants %s; its keys cannot change in place: --force recreates it (and deletes its items)", have, want)
			return a, arn, nil
		}
		if _, err := c.DynamoDB.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
			return a, "", fmt.Errorf("delete table %s to recreate it: %w", name, err)
		}
		a.Action, a.Detail = "recreated", "had "+have
	}
	if a.Action != "unchanged" {
		if _, err := c.DynamoDB.CreateTable(ctx, in); err != nil {
			return a, "", fmt.Errorf("create table %s: %w", name, err)
		}
	}
	if tb.TTL != "" {
		ttl, err := c.DynamoDB.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
		if err != nil {
			return a, "", fmt.Errorf("describe TTL of table %s: %w", name, err)
		}
		d := ttl.TimeToLiveDescription
		if d == nil || aws.ToString(d.AttributeName) != tb.TTL || (d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled && d.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabling) {
			_, err := c.DynamoDB.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(name),
				TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(tb.TTL), Enabled: aws.Bool(true)}})
			if err != nil {
				return a, "", fmt.Errorf("enable TTL on table %s: %w", name, err)
			}
			if a.Action == "unchanged" {
				a.Action, a.Detail = "updated", "TTL on "+tb.TTL
			}
		}
	}
	return a, arn, nil
}

func (m *Model) queueAttributes(q Queue, arns map[string]string) map[string]string {
	attrs := map[string]string{"MessageRetentionPeriod": strconv.Itoa(seconds(q.Retention))}
	if q.Visibility > 0 {
		attrs["VisibilityTimeout"] = strconv.Itoa(seconds(q.Visibility))
	}
	if q.DeadLetter != "" {
		attrs["RedrivePolicy"] = fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, arns[q.DeadLetter], q.MaxReceiveCount)
	}
	return attrs
}

func (m *Model) applyQueue(ctx context.Context, c LocalClients, q Queue, arns map[string]string) (LocalAction, string, error) {
	name := m.localName(q.Suffix)
	a := LocalAction{LogicalID: q.ID, Type: "AWS::SQS::Queue", Name: name}
	if c.SQS == nil {
		return a, "", fmt.Errorf("queue %s: no SQS emulator (set AWS_ENDPOINT_URL_SQS)", name)
	}
	want := m.queueAttributes(q, arns)
	var url string
	got, err := c.SQS.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	var missing *sqstypes.QueueDoesNotExist
	switch {
	case errors.As(err, &missing):
		out, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: want})
		if err != nil {
			return a, "", fmt.Errorf("create queue %s: %w", name, err)
		}
		url, a.Action = aws.ToString(out.QueueUrl), "created"
	case err != nil:
		return a, "", fmt.Errorf("look up queue %s: %w", name, err)
	default:
		url, a.Action = aws.ToString(got.QueueUrl), "unchanged"
		have, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			return a, "", fmt.Errorf("read attributes of queue %s: %w", name, err)
		}
		diff := map[string]string{}
		var what []string
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if !sameAttr(k, have.Attributes[k], want[k]) {
				diff[k] = want[k]
				what = append(what, fmt.Sprintf("%s %s -> %s", k, have.Attributes[k], want[k]))
			}
		}
		if len(diff) > 0 {
			if _, err := c.SQS.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(url), Attributes: diff}); err != nil {
				return a, "", fmt.Errorf("update queue %s: %w", name, err)
			}
			a.Action, a.Detail = "updated", strings.Join(what, "; ")
		}
	}
	out, err := c.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
	if err != nil {
		return a, "", fmt.Errorf("read the ARN of queue %s: %w", name, err)
	}
	return a, out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
}

// sameAttr compares queue attributes; a redrive policy is JSON whose
// spelling (spaces, number or string count) varies by server.
func sameAttr(k, have, want string) bool {
	if k != "RedrivePolicy" {
		return have == want
	}
	norm := func(s string) string {
		return strings.NewReplacer(" ", "", `"maxReceiveCount":"`, `"maxReceiveCount":`, `"}`, "}").Replace(s)
	}
	return norm(have) == norm(want)
}

func (m *Model) applyStream(ctx context.Context, c LocalClients, id, suffix string) (LocalAction, string, error) {
	name := m.localName(suffix)
	a := LocalAction{LogicalID: id, Type: "AWS::Kinesis::Stream", Name: name}
	if c.Kinesis == nil {
		return a, "", fmt.Errorf("stream %s: no Kinesis emulator (set AWS_ENDPOINT_URL_KINESIS)", name)
	}
	out, err := c.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	var nf *kintypes.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		// Emulators have no on-demand mode: a provisioned stream stands in.
		shards := int32(max(1, m.Settings.KinesisShards))
		if _, err := c.Kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
			return a, "", fmt.Errorf("create stream %s: %w", name, err)
		}
		a.Action = "created"
		out, err = c.Kinesis.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			return a, "", fmt.Errorf("describe stream %s: %w", name, err)
		}
	case err != nil:
		return a, "", fmt.Errorf("describe stream %s: %w", name, err)
	default:
		a.Action = "unchanged"
	}
	return a, aws.ToString(out.StreamDescriptionSummary.StreamARN), nil
}

func (m *Model) applyTopic(ctx context.Context, c LocalClients, ids topicIDs, arns map[string]string) ([]LocalAction, string, error) {
	name := m.localName(ids.suffix)
	a := LocalAction{LogicalID: ids.topic, Type: "AWS::SNS::Topic", Name: name, Action: "unchanged"}
	if c.SNS == nil {
		return nil, "", fmt.Errorf("topic %s: no SNS emulator (set AWS_ENDPOINT_URL_SNS)", name)
	}
	// CreateTopic returns an existing topic: look first whether it is new.
	exists := false
	var token *string
	for {
		lt, err := c.SNS.ListTopics(ctx, &sns.ListTopicsInput{NextToken: token})
		if err != nil {
			return nil, "", fmt.Errorf("list topics: %w", err)
		}
		for _, t := range lt.Topics {
			if strings.HasSuffix(aws.ToString(t.TopicArn), ":"+name) {
				exists = true
			}
		}
		if token = lt.NextToken; token == nil || exists {
			break
		}
	}
	if !exists {
		a.Action = "created"
	}
	out, err := c.SNS.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		return nil, "", fmt.Errorf("create topic %s: %w", name, err)
	}
	arn := aws.ToString(out.TopicArn)
	subs, err := c.SNS.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: aws.String(arn)})
	if err != nil {
		return nil, "", fmt.Errorf("list subscriptions of topic %s: %w", name, err)
	}
	actions := []LocalAction{a}
	if m.Settings.Dispatch != DispatchSNSSQS {
		return actions, arn, nil
	}
	queue := m.localName(m.Queue(ids.queue).Suffix)
	sub := LocalAction{LogicalID: ids.subscription, Type: "AWS::SNS::Subscription", Name: name + " -> " + queue, Action: "unchanged"}
	found := slices.ContainsFunc(subs.Subscriptions, func(s snstypes.Subscription) bool {
		return aws.ToString(s.Protocol) == "sqs" && aws.ToString(s.Endpoint) == arns[ids.queue]
	})
	if !found {
		_, err := c.SNS.Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(arn), Protocol: aws.String("sqs"),
			Endpoint: aws.String(arns[ids.queue]), Attributes: map[string]string{"RawMessageDelivery": "true"}})
		if err != nil {
			return nil, "", fmt.Errorf("subscribe queue %s to topic %s: %w", queue, name, err)
		}
		sub.Action = "created"
	}
	return append(actions, sub, LocalAction{LogicalID: ids.policy, Type: "AWS::SQS::QueuePolicy", Action: "skipped", Detail: "the emulator delivers without a queue policy"}), arn, nil
}

package cli

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/cloudformation/cfntest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/esm"
)

// awsEnv copies the emulators' environment (AWS_*) into a script's, since
// testscript starts scripts with an almost empty one.
func awsEnv(env *testscript.Env) {
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") || k == "EMU_BIN" {
			env.Setenv(k, v)
		}
	}
	if os.Getenv("EMU_BIN") == "" {
		if d := rieDir(); d != "" {
			env.Setenv("EMU_BIN", d)
		}
	}
}

// rieDir is the repository's .emu/bin when it holds aws-lambda-rie
// (scripts/emulators/emu-install.sh's default EMU_DIR), for runs whose
// environment names no EMU_BIN.
func rieDir() string {
	d, err := filepath.Abs(filepath.Join("..", "..", ".emu", "bin"))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(d, esm.RIEBinary)); err != nil {
		return ""
	}
	return d
}

// cmdAWSTarget creates a fresh store table on DynamoDB Local and a dispatch
// queue on the SQS emulator and points the script's lfsm at them with the
// explicit aws: settings (no stack: there is no CloudFormation emulator):
//
//	awstarget
//	awstarget kinesis    # a Kinesis stream (kinesalite) and a retry table instead
//	awstarget dynamodb   # a DynamoDB-stream dispatch table and a retry table instead
//	awstarget secondary  # and a secondary queue (aws.secondary.dispatch-arn; $SECONDARY_ARN)
//	awstarget sns-sqs    # the queue subscribed to a topic with raw delivery ($TOPIC_ARN)
//
// Scripts guard it with [!aws] skip (see awsCondition), and the stream
// dispatches with [!kinesis] skip.
func cmdAWSTarget(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 || (len(args) == 1 && args[0] != "kinesis" && args[0] != "dynamodb" && args[0] != "secondary" && args[0] != "sns-sqs") {
		ts.Fatalf("usage: awstarget [kinesis|dynamodb|secondary|sns-sqs]")
	}
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, "us-east-1", nil)
	ts.Check(err)
	table := awstest.Name("lfsm-script")
	dc := ddb.NewFromConfig(cfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	ts.Check(dynamodb.CreateTable(ctx, dc, table))
	ts.Defer(func() { _, _ = dc.DeleteTable(ctx, &ddb.DeleteTableInput{TableName: aws.String(table)}) })
	sc := awssqs.NewFromConfig(cfg)
	q, err := sc.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-script"))})
	ts.Check(err)
	ts.Defer(func() { _, _ = sc.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: q.QueueUrl}) })
	attrs, err := sc.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	ts.Check(err)
	ts.Setenv("LFSM_TARGET", "aws")
	// DynamoDB Local's own ARNs name the region "ddblocal"; clients take
	// their region from the ARN, so the script names the table in us-east-1.
	ts.Setenv("LFSM_AWS_STORE_TABLE_ARN", "arn:aws:dynamodb:us-east-1:000000000000:table/"+table)
	ts.Setenv("LFSM_AWS_DISPATCH_ARN", attrs.Attributes[string(types.QueueAttributeNameQueueArn)])
	ts.Setenv("QUEUE_URL", aws.ToString(q.QueueUrl))
	if len(args) == 0 {
		return
	}
	if args[0] == "secondary" {
		q2, err := sc.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(awstest.Name("lfsm-script-secondary"))})
		ts.Check(err)
		ts.Defer(func() { _, _ = sc.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: q2.QueueUrl}) })
		attrs, err := sc.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: q2.QueueUrl,
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
		ts.Check(err)
		arn := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
		ts.Setenv("LFSM_AWS_SECONDARY_DISPATCH_ARN", arn)
		ts.Setenv("SECONDARY_ARN", arn)
		ts.Setenv("PRIMARY_ARN", ts.Getenv("LFSM_AWS_DISPATCH_ARN"))
		return
	}
	if args[0] == "sns-sqs" {
		// SQS's path, fed by a topic: lfsm sends its own messages to the
		// queue, other publishers to the topic; no retry table.
		nc := awssns.NewFromConfig(cfg)
		top, err := nc.CreateTopic(ctx, &awssns.CreateTopicInput{Name: aws.String(awstest.Name("lfsm-script"))})
		ts.Check(err)
		ts.Defer(func() { _, _ = nc.DeleteTopic(ctx, &awssns.DeleteTopicInput{TopicArn: top.TopicArn}) })
		_, err = nc.Subscribe(ctx, &awssns.SubscribeInput{TopicArn: top.TopicArn, Protocol: aws.String("sqs"),
			Endpoint: aws.String(attrs.Attributes[string(types.QueueAttributeNameQueueArn)]), Attributes: map[string]string{"RawMessageDelivery": "true"}})
		ts.Check(err)
		ts.Setenv("LFSM_AWS_DISPATCH", args[0])
		ts.Setenv("TOPIC_ARN", aws.ToString(top.TopicArn))
		return
	}
	retries := awstest.Name("lfsm-script-retry")
	ts.Check(dynamodb.CreateRetryTable(ctx, dc, retries))
	ts.Defer(func() { _, _ = dc.DeleteTable(ctx, &ddb.DeleteTableInput{TableName: aws.String(retries)}) })
	ts.Setenv("LFSM_AWS_RETRY_TABLE_ARN", "arn:aws:dynamodb:us-east-1:000000000000:table/"+retries)
	ts.Setenv("LFSM_AWS_DISPATCH", args[0])
	switch args[0] {
	case "kinesis":
		kc := awskinesis.NewFromConfig(cfg)
		name := awstest.Name("lfsm-script")
		_, err := kc.CreateStream(ctx, &awskinesis.CreateStreamInput{StreamName: &name, ShardCount: aws.Int32(2)})
		ts.Check(err)
		ts.Defer(func() { _, _ = kc.DeleteStream(ctx, &awskinesis.DeleteStreamInput{StreamName: &name}) })
		out, err := awskinesis.NewStreamExistsWaiter(kc, func(o *awskinesis.StreamExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond }).
			WaitForOutput(ctx, &awskinesis.DescribeStreamInput{StreamName: &name}, 30*time.Second)
		ts.Check(err)
		ts.Setenv("LFSM_AWS_DISPATCH_ARN", aws.ToString(out.StreamDescription.StreamARN))
	case "dynamodb":
		name := awstest.Name("lfsm-script-dispatch")
		_, err := dynamodb.CreateStreamTable(ctx, dc, name)
		ts.Check(err)
		ts.Defer(func() { _, _ = dc.DeleteTable(ctx, &ddb.DeleteTableInput{TableName: aws.String(name)}) })
		ts.Setenv("LFSM_AWS_DISPATCH_ARN", "arn:aws:dynamodb:us-east-1:000000000000:table/"+name)
	}
}

// cmdCFNStack serves a fake CloudFormation whose stack NAME has the outputs
// lfsm deploy's template gives (StoreTableArn, DispatchArn, Dispatch: the
// resources awstarget made), points the SDK at it, and replaces the explicit
// aws: settings by aws.stack, so that lfsm resolves everything from the
// stack. It is a fake because no CloudFormation emulator exists; it decodes
// the query protocol the SDK really sends (cfntest.Fake):
//
//	cfnstack orders-prod
func cmdCFNStack(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: cfnstack NAME")
	}
	fake := &cfntest.Fake{Stacks: map[string]map[string]string{args[0]: {
		"Dispatch":      "sqs",
		"DispatchArn":   ts.Getenv("LFSM_AWS_DISPATCH_ARN"),
		"StoreTableArn": ts.Getenv("LFSM_AWS_STORE_TABLE_ARN"),
	}}}
	srv := httptest.NewServer(fake)
	ts.Defer(srv.Close)
	ts.Setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", srv.URL)
	ts.Setenv("LFSM_AWS_DISPATCH_ARN", "")
	ts.Setenv("LFSM_AWS_STORE_TABLE_ARN", "")
	ts.Setenv("LFSM_AWS_STACK", args[0])
}

// awsCondition is the script condition [aws]: the DynamoDB and SQS
// emulators are there. Under CI=true their absence is an error, not a skip.
func awsCondition(cond string) (bool, error) {
	if cond == "rie" {
		// aws-lambda-rie, on PATH or in $EMU_BIN (or the repository's .emu/bin,
		// where scripts/emulators installs it: see rieDir).
		_, err := esm.FindRIE()
		if err != nil && rieDir() != "" {
			err = nil
		}
		if err != nil && os.Getenv("CI") == "true" {
			return false, err
		}
		return err == nil, nil
	}
	svcs := []string{"DYNAMODB", "SQS"}
	switch cond {
	case "aws":
	case "kinesis":
		svcs = []string{"KINESIS", "DYNAMODB_STREAMS"}
	default:
		return false, fmt.Errorf("unknown condition %q", cond)
	}
	for _, svc := range svcs {
		if os.Getenv("AWS_ENDPOINT_URL_"+svc) == "" {
			if os.Getenv("CI") == "true" {
				return false, fmt.Errorf("AWS_ENDPOINT_URL_%s is not set under CI=true: .ci/run starts the emulators", svc)
			}
			return false, nil
		}
	}
	return true, nil
}

// cmdPublish publishes a file's content to the script's topic ($TOPIC_ARN,
// from awstarget sns-sqs), as another publisher of the dispatch does:
//
//	publish start.json
func cmdPublish(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: publish FILE")
	}
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, "us-east-1", nil)
	ts.Check(err)
	_, err = awssns.NewFromConfig(cfg).Publish(ctx, &awssns.PublishInput{TopicArn: aws.String(ts.Getenv("TOPIC_ARN")),
		Message: aws.String(ts.ReadFile(args[0]))})
	ts.Check(err)
}

// cmdQueued checks how many messages the script's dispatch queue holds
// (visible or delayed), without receiving them:
//
//	queued 4
func cmdQueued(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: queued N")
	}
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, "us-east-1", nil)
	ts.Check(err)
	out, err := awssqs.NewFromConfig(cfg).GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{
		QueueUrl: aws.String(ts.Getenv("QUEUE_URL")),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
			types.QueueAttributeNameApproximateNumberOfMessagesDelayed, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	ts.Check(err)
	n := 0
	for _, k := range []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible} {
		v, _ := strconv.Atoi(out.Attributes[string(k)])
		n += v
	}
	if got := strconv.Itoa(n); got != args[0] {
		ts.Fatalf("the dispatch queue holds %d messages, want %s", n, args[0])
	}
}

package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/ddbstream"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/kinesis"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/deploy"
	awsdispatch "github.com/lfsm/lfsm/internal/dispatch"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

// devAWS is lfsm dev --target aws: Lambda's event source mapping played
// locally against the deployment's (or the emulators') SQS queue and store,
// invoking the project binary's handler, or the real bootstrap under
// aws-lambda-rie with --rie.
func runDevAWS(ctx context.Context, opts *DevOptions, t target) error {
	s, err := loadValidSpec(opts.IO, opts.WorkDir, opts.File)
	if err != nil {
		return err
	}
	b, err := openAWS(ctx, t.aws)
	if err != nil {
		return err
	}
	res := b.res
	if !res.HasDispatch() || res.Dispatch == awsdispatch.SNS {
		return usageErrorf("lfsm dev --target aws reads the dispatch's queue, stream or table (aws.dispatch sqs, sns-sqs, kinesis or dynamodb): set aws.dispatch-arn (or aws.stack) to one (aws.dispatch %s: SNS invokes the function itself)", res.Dispatch)
	}
	bo := build.BuildOptions{}
	if opts.RIE {
		bo.Lambda, bo.GOARCH = true, goarch()
	}
	built, _, err := buildProjectWith(ctx, opts.IO, opts.WorkDir, opts.File, bo, true)
	if err != nil {
		return err
	}
	env := []string{
		"LFSM_AWS_DISPATCH=" + res.Dispatch,
		"LFSM_AWS_DISPATCH_ARN=" + res.DispatchARN.String(),
		"LFSM_AWS_STORE_TABLE_ARN=" + res.StoreTable.String(),
	}
	if res.RetryTable != nil {
		env = append(env, "LFSM_AWS_RETRY_TABLE_ARN="+res.RetryTable.String())
	}
	if res.SecondaryDispatch != nil {
		env = append(env, "LFSM_AWS_SECONDARY_DISPATCH_ARN="+res.SecondaryDispatch.String())
	}
	if res.SecondaryRetryTable != nil {
		env = append(env, "LFSM_AWS_SECONDARY_RETRY_TABLE_ARN="+res.SecondaryRetryTable.String())
	}
	if res.LeaseCache != "" {
		// The function's environment only: never printed (it may hold a password).
		env = append(env, "LFSM_AWS_LEASE_CACHE="+string(res.LeaseCache))
		if res.SecondaryLeaseCache != "" {
			env = append(env, "LFSM_AWS_SECONDARY_LEASE_CACHE="+string(res.SecondaryLeaseCache))
		}
	}
	inj := opts.Chaos.injectorFor(opts.IO, "the AWS backends (in dev and in the function)")
	if inj != nil {
		// A failed step comes back after the bounce delay (at most the
		// lease) or the visibility timeout: seconds under chaos, not minutes.
		opts.LeaseTimeout = cmp.Or(opts.LeaseTimeout, chaosLeaseAWS)
		opts.Visibility = cmp.Or(opts.Visibility, chaosVisibilityAWS)
	}
	if res.Retention > 0 {
		env = append(env, "LFSM_AWS_RETENTION="+res.Retention.String())
	}
	if opts.LeaseTimeout > 0 {
		env = append(env, "LFSM_LEASE_TIMEOUT="+opts.LeaseTimeout.String())
	}
	var reportFile string
	if inj != nil {
		dir, err := os.MkdirTemp("", "lfsm-chaos-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		reportFile = filepath.Join(dir, "function.json")
		env = append(env, deploy.EnvChaos+"="+opts.Chaos.Spec.String(),
			deploy.EnvChaosSeed+"="+strconv.FormatUint(opts.Chaos.Seed+1, 10), deploy.EnvChaosReport+"="+reportFile)
	}
	if os.Getenv("LFSM_LOG_LEVEL") == "" {
		// The λ lines say what ran; the function's own step lines would say it twice.
		env = append(env, "LFSM_LOG_LEVEL=warn")
	}
	var fn interface {
		esm.Invoker
		Close() error
	}
	if opts.RIE {
		rie, err := esm.FindRIE()
		if err != nil {
			return err
		}
		r, err := esm.StartRIE(ctx, esm.RIEOptions{RIE: rie, Bootstrap: built.Binary, Env: append(processAWSEnv(), env...),
			Stdout: opts.IO.ErrOut, Stderr: opts.IO.ErrOut})
		if err != nil {
			return err
		}
		fn = r
	} else {
		p, err := esm.StartProcess(built.Binary, env, opts.IO.ErrOut)
		if err != nil {
			return err
		}
		fn = p
	}
	defer fn.Close()

	cfg, err := awsconfig.Load(ctx, res.DispatchARN.Region, nil)
	if err != nil {
		return err
	}
	lines := newLambdaLines(opts.IO.ErrOut, s, opts.IO.ErrOutIsTerminal)
	if res.Dispatch == awsdispatch.Kinesis || res.Dispatch == awsdispatch.DynamoDB {
		err := devStream(ctx, opts, res, cfg, fn, lines, inj)
		return finishDevAWS(opts, inj, reportFile, err)
	}
	how := "the project binary"
	if opts.RIE {
		how = "the Lambda bootstrap under aws-lambda-rie"
	}
	// One mapping per queue, the secondary's too (a message failed over to
	// it must run), each polled on its own as Lambda's mappings are; the
	// invoker serialises their invocations.
	queues := []config.ARN{res.DispatchARN}
	if res.SecondaryDispatch != nil {
		queues = append(queues, *res.SecondaryDispatch)
	}
	var mappings []*esm.Mapping
	for _, q := range queues {
		qcfg := cfg
		if q.Region != res.DispatchARN.Region {
			if qcfg, err = awsconfig.Load(ctx, q.Region, nil); err != nil {
				return err
			}
		}
		var qc esm.SQSAPI = awssqs.NewFromConfig(qcfg)
		if inj != nil {
			qc = chaosSQS{SQSAPI: qc, inj: inj.For("sqs")}
		}
		m, err := esm.New(ctx, esm.Options{Client: qc, QueueARN: q.String(), Invoker: fn, Wait: 2 * time.Second, Visibility: opts.Visibility,
			OnBatch: lines.batch, Logger: opts.Log.logger(opts.IO)})
		if err != nil {
			return err
		}
		mappings = append(mappings, m)
		fmt.Fprintf(opts.IO.ErrOut, "dev: reading %s into %s (store %s)\n", q, how, res.StoreTable)
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	idle := func() (bool, error) {
		for _, m := range mappings {
			if ok, err := m.Idle(pctx); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	}
	var wg sync.WaitGroup
	var once sync.Once
	var idleErr error
	emptied := false
	for _, m := range mappings {
		wg.Go(func() {
			for pctx.Err() == nil {
				n, err := m.Poll(pctx)
				if err != nil && pctx.Err() == nil {
					fmt.Fprintf(opts.IO.ErrOut, "dev: %v\n", err)
					continue
				}
				if n == 0 && opts.UntilIdle {
					ok, err := idle()
					if err != nil && pctx.Err() == nil {
						once.Do(func() { idleErr = err; stop() })
						return
					}
					if ok {
						once.Do(func() { emptied = true; stop() })
						return
					}
				}
			}
		})
	}
	wg.Wait()
	lines.flush()
	switch {
	case idleErr != nil:
		return finishDevAWS(opts, inj, reportFile, idleErr)
	case emptied:
		fmt.Fprintln(opts.IO.ErrOut, "dev: queue empty, exiting")
		return finishDevAWS(opts, inj, reportFile, nil)
	}
	fmt.Fprintln(opts.IO.ErrOut, "dev: stopped; the batch in flight finished")
	return finishDevAWS(opts, inj, reportFile, ctx.Err())
}

// finishDevAWS ends dev --target aws with its report: the calls dev made
// itself (the mapping's) and those of the function, which it wrote to
// reportFile after each invocation.
func finishDevAWS(opts *DevOptions, inj *chaos.Injector, reportFile string, err error) error {
	var rep *chaos.Report
	if inj != nil {
		fr, rerr := chaos.ReadFile(reportFile)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		r := inj.Report().Merge(fr)
		rep = &r
	}
	if ferr := finishDev(opts, "aws", rep); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// The lease and visibility timeout of dev --target aws under chaos, unless
// given: a record put off by an injected failure bounces for at most the
// lease, and one whose visibility change failed comes back after the
// visibility timeout.
const (
	chaosLeaseAWS      = 2 * time.Second
	chaosVisibilityAWS = 5 * time.Second
)

// tickEvery is how often dev --target aws runs the scheduled invocation (the
// retry table's poll and the repair) for a stream dispatch: every minute in
// AWS, more often locally, so that a retry's backoff is not a minute.
const tickEvery = 2 * time.Second

// scheduledEvent is an EventBridge scheduled event, as the deployment's
// every-minute rule sends it.
const scheduledEvent = `{"version":"0","id":"lfsm-dev","detail-type":"Scheduled Event","source":"aws.events","account":"000000000000","region":"us-east-1","resources":[],"detail":{}}`

// devStream is dev --target aws on a Kinesis or DynamoDB-stream dispatch:
// the dispatch's shards read as Lambda's mapping reads them (each in order,
// one batch at a time), and the scheduled invocation every tickEvery.
func devStream(ctx context.Context, opts *DevOptions, res config.Resources, cfg aws.Config, fn esm.Invoker, lines *lambdaLines, inj *chaos.Injector) error {
	// The primary's shards and, with a secondary, the secondary's too (a
	// message failed over to it must run), read in turn.
	polls := []func(context.Context) (int, error){}
	p, err := streamPoll(ctx, opts, res.Dispatch, res.DispatchARN, cfg, fn, lines, inj)
	if err != nil {
		return err
	}
	polls = append(polls, p)
	if s := res.SecondaryDispatch; s != nil {
		scfg := cfg
		if s.Region != res.DispatchARN.Region {
			if scfg, err = awsconfig.Load(ctx, s.Region, nil); err != nil {
				return err
			}
		}
		p, err := streamPoll(ctx, opts, res.Dispatch, *s, scfg, fn, lines, inj)
		if err != nil {
			return fmt.Errorf("secondary: %w", err)
		}
		polls = append(polls, p)
		fmt.Fprintf(opts.IO.ErrOut, "dev: reading %s (secondary) too\n", s)
	}
	poll := func(ctx context.Context) (int, error) {
		n := 0
		var errs []error
		for _, p := range polls {
			k, err := p(ctx)
			n += k
			if err != nil {
				errs = append(errs, err)
			}
		}
		return n, errors.Join(errs...)
	}
	var tables []*dynamodb.RetryTable
	for _, t := range []*config.ARN{res.RetryTable, res.SecondaryRetryTable} {
		if t == nil {
			continue
		}
		rc, err := awsconfig.Load(ctx, t.Region, nil)
		if err != nil {
			return err
		}
		dc := ddb.NewFromConfig(rc, func(o *ddb.Options) { o.DisableValidateResponseChecksum = emulated() })
		r, err := dynamodb.NewRetryTable(dynamodb.RetryOptions{Client: dc, Table: t.Name(), Queue: unsupportedDispatch("")})
		if err != nil {
			return err
		}
		tables = append(tables, r)
	}
	fmt.Fprintf(opts.IO.ErrOut, "dev: reading %s into %s (store %s)\n", res.DispatchARN, devHow(opts), res.StoreTable)
	var lastTick time.Time
	for ctx.Err() == nil {
		n, err := poll(ctx)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintf(opts.IO.ErrOut, "dev: %v\n", err)
		}
		ticked := false
		if time.Since(lastTick) >= tickEvery {
			if _, err := fn.Invoke(context.WithoutCancel(ctx), []byte(scheduledEvent)); err != nil {
				fmt.Fprintf(opts.IO.ErrOut, "dev: scheduled invocation: %v\n", err)
			}
			lastTick, ticked = time.Now(), true
		}
		// A round after the scheduled invocation is never the idle one: the
		// invocation may just have moved a due retry from the retry table
		// (which is then empty) to the stream, after this round read it.
		if n > 0 || err != nil || ticked {
			continue
		}
		if opts.UntilIdle {
			pending := false
			for _, r := range tables {
				p, err := r.Pending(ctx)
				if err != nil {
					return err
				}
				pending = pending || p
			}
			if !pending {
				lines.flush()
				fmt.Fprintln(opts.IO.ErrOut, "dev: stream read to its end, exiting")
				return nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	lines.flush()
	fmt.Fprintln(opts.IO.ErrOut, "dev: stopped; the batch in flight finished")
	return ctx.Err()
}

// streamPoll is one stream's (or dispatch table's) mapping: each shard in
// order, one batch at a time.
func streamPoll(ctx context.Context, opts *DevOptions, kind string, arn config.ARN, cfg aws.Config, fn esm.Invoker, lines *lambdaLines, inj *chaos.Injector) (func(context.Context) (int, error), error) {
	logger := opts.Log.logger(opts.IO)
	switch kind {
	case awsdispatch.Kinesis:
		var kc kinesis.ReadAPI = awskinesis.NewFromConfig(cfg)
		if inj != nil {
			kc = chaosKinesis{ReadAPI: kc, inj: inj.For("kinesis")}
		}
		r, err := kinesis.NewReader(kinesis.ReaderOptions{Client: kc, ARN: arn.String(), Invoker: fn,
			Logger: logger, OnBatch: func(_ string, recs []events.KinesisEventRecord, from string, err error) {
				msgs := make([]events.SQSMessage, len(recs))
				failed := map[string]bool{}
				for i, r := range recs {
					msgs[i] = events.SQSMessage{MessageId: r.Kinesis.SequenceNumber, Body: string(r.Kinesis.Data)}
					failed[r.Kinesis.SequenceNumber] = from != "" && (failed[recs[max(i-1, 0)].Kinesis.SequenceNumber] || r.Kinesis.SequenceNumber == from)
				}
				lines.batch(msgs, failed, err)
			}})
		if err != nil {
			return nil, err
		}
		return r.Poll, nil
	case awsdispatch.DynamoDB:
		dc := ddb.NewFromConfig(cfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = emulated() })
		out, err := dc.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(arn.Name())})
		if err != nil {
			return nil, fmt.Errorf("find the stream of dispatch table %s: %w", arn, err)
		}
		streamARN := aws.ToString(out.Table.LatestStreamArn)
		if streamARN == "" {
			return nil, fmt.Errorf("dispatch table %s has no stream: enable one with NEW_IMAGE (lfsm deploy does)", arn)
		}
		var sc ddbstream.API = streams.NewFromConfig(cfg)
		if inj != nil {
			sc = chaosStreams{API: sc, inj: inj.For("dynamodb")}
		}
		r, err := ddbstream.New(ddbstream.Options{Client: sc, StreamARN: streamARN, Invoker: fn,
			Logger: logger, OnBatch: func(_ string, recs []events.DynamoDBEventRecord, from string, err error) {
				msgs := make([]events.SQSMessage, len(recs))
				failed := map[string]bool{}
				for i, r := range recs {
					seq := r.Change.SequenceNumber
					msgs[i] = events.SQSMessage{MessageId: seq, Body: r.Change.NewImage["payload"].String()}
					failed[seq] = from != "" && (failed[recs[max(i-1, 0)].Change.SequenceNumber] || seq == from)
				}
				lines.batch(msgs, failed, err)
			}})
		if err != nil {
			return nil, err
		}
		return r.Poll, nil
	}
	return nil, fmt.Errorf("dispatch %s has no stream", kind)
}

func devHow(opts *DevOptions) string {
	if opts.RIE {
		return "the Lambda bootstrap under aws-lambda-rie"
	}
	return "the project binary"
}

// processAWSEnv is the process's AWS_* environment (credentials, region,
// endpoints), which aws-lambda-rie's function gets as Lambda's would.
func processAWSEnv() []string {
	var env []string
	for _, kv := range environ() {
		if strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

// lambdaLines prints one λ line per step the function handled, as lfsm run
// does, from the messages the mapping handed it: on a terminal at most
// linesPerSecond a second, the rest counted.
type lambdaLines struct {
	mu       sync.Mutex
	w        io.Writer
	traces   map[string]*local.Trace
	limit    bool
	second   time.Time
	printed  int
	skipped  int
	failures int
}

const linesPerSecond = 20

func newLambdaLines(w io.Writer, s *spec.Spec, terminal bool) *lambdaLines {
	l := &lambdaLines{w: w, traces: map[string]*local.Trace{}, limit: terminal}
	for _, m := range s.Machines {
		l.traces[m.Name] = local.NewTrace(m)
	}
	return l
}

func (l *lambdaLines) batch(recs []events.SQSMessage, failed map[string]bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		fmt.Fprintf(l.w, "dev: invocation failed, %d messages come back: %v\n", len(recs), err)
		return
	}
	for _, r := range recs {
		if failed[r.MessageId] {
			l.failures++
			continue
		}
		msg, err := engine.DecodeMessage([]byte(r.Body))
		if err != nil {
			continue
		}
		sys := msg.System
		line := fmt.Sprintf("%s %s -(%s)-> ?", sys.MachineName, sys.CurrentState, sys.CurrentEvent)
		if t := l.traces[sys.MachineName]; t != nil {
			if n, to, ok := t.Find(sys.CurrentState, sys.CurrentEvent); ok {
				line = fmt.Sprintf("λ%-3d %s -(%s)-> %s", n, sys.CurrentState, sys.CurrentEvent, to)
			}
		}
		short := sys.CorrelationID
		if len(short) > 8 {
			short = short[:8]
		}
		if sys.Retries > 0 {
			line += fmt.Sprintf("  retry %d", sys.Retries)
		}
		l.print(line + "  " + short)
	}
}

func (l *lambdaLines) print(line string) {
	if l.limit {
		now := time.Now().Truncate(time.Second)
		if !now.Equal(l.second) {
			l.flushLocked()
			l.second, l.printed = now, 0
		}
		if l.printed >= linesPerSecond {
			l.skipped++
			return
		}
		l.printed++
	}
	fmt.Fprintln(l.w, line)
}

func (l *lambdaLines) flushLocked() {
	if l.skipped > 0 {
		fmt.Fprintf(l.w, "(%d more steps)\n", l.skipped)
		l.skipped = 0
	}
}

func (l *lambdaLines) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked()
}

func goarch() string { return runtime.GOARCH }

func environ() []string { return os.Environ() }

package host

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	awscw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/failover"
	"github.com/lfsm/lfsm/internal/backend/leasecache/endpoint"
	"github.com/lfsm/lfsm/internal/config"
	awsdispatch "github.com/lfsm/lfsm/internal/dispatch"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/lambda"
	"github.com/lfsm/lfsm/internal/spec"
)

// envRuntimeAPI is set by Lambda (and aws-lambda-rie) for the bootstrap:
// Main then runs the Lambda handler instead of a command line.
const envRuntimeAPI = "AWS_LAMBDA_RUNTIME_API"

// The function's environment, as internal/deploy writes it (its contract.go;
// a test checks that the two agree): which dispatch, and each resource by ARN.
const (
	envDispatch      = "LFSM_AWS_DISPATCH"
	envDispatchARN   = "LFSM_AWS_DISPATCH_ARN"
	envStoreTableARN = "LFSM_AWS_STORE_TABLE_ARN"
	envRetryTableARN = "LFSM_AWS_RETRY_TABLE_ARN"
	envLeaseTimeout  = "LFSM_LEASE_TIMEOUT"
	// The secondaries, when the stack has them: sends and retries fail over
	// to them (docs/design.md, "Failover").
	envSecondaryDispatchARN   = "LFSM_AWS_SECONDARY_DISPATCH_ARN"
	envSecondaryRetryTableARN = "LFSM_AWS_SECONDARY_RETRY_TABLE_ARN"
	// envLeaseCache is the lease cache's endpoint (redis://, rediss://,
	// memcached://, memcacheds://); unset: leases live in the store table.
	envLeaseCache = "LFSM_AWS_LEASE_CACHE"
	// envSecondaryLeaseCache is the secondary lease cache's endpoint: the
	// store's fenced switch of an execution's lease store (docs/design.md,
	// "Failover").
	envSecondaryLeaseCache = "LFSM_AWS_SECONDARY_LEASE_CACHE"
	// envRenames holds the rename map of the deploy (engine.EncodeRenames):
	// how messages of the deployed spec's versions continue on this one.
	envRenames = "LFSM_RENAMES"
	// envMetricsCloudWatch ("true") turns on the PutMetricData publisher,
	// in the namespace envMetricsNamespace names (default lfsm).
	envMetricsCloudWatch = "LFSM_METRICS_CLOUDWATCH"
	envMetricsNamespace  = "LFSM_METRICS_NAMESPACE"
	// envMetricsSecondaryRegion is the region the publisher fails over to.
	envMetricsSecondaryRegion = "LFSM_METRICS_SECONDARY_REGION"
	// envChaos, envChaosSeed and envChaosReport turn chaos on in the
	// function (docs/design.md, "Chaos"): the SPEC, the draws' seed, and a
	// file the counts are written to after each invocation (lfsm dev).
	envChaos       = "LFSM_FUNCTION_CHAOS"
	envChaosSeed   = "LFSM_FUNCTION_CHAOS_SEED"
	envChaosReport = "LFSM_FUNCTION_CHAOS_REPORT"
	// envRetention is aws.retention: DynamoDB's TTL deletes finished
	// executions this long after they finished (30d, 720h).
	envRetention = "LFSM_AWS_RETENTION"
	// envLogLevel sets the log level: debug, info (default), warn or error.
	envLogLevel = "LFSM_LOG_LEVEL"
)

// Dispatch kinds of envDispatch.
const (
	dispatchSQS           = "sqs"
	dispatchStepFunctions = "stepfunctions"
)

// newStore returns the DynamoDB execution store of the table ARN, which is
// also the engine's queue and retrier: it commits a step first and sends its
// message after (docs/design.md, "The DynamoDB store").
func newStore(ctx context.Context, tableARN, leaseCache, secondaryCache string, retention time.Duration, q engine.Queue, r engine.Retrier, m *awsconfig.Meter, tx bool, inj *chaos.Injector) (*dynamodb.Store, error) {
	region, table, err := parseTableARN(tableARN)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envStoreTableARN, err)
	}
	o := dynamodb.Options{Queue: q, Retrier: r, Table: table, TransactCommit: tx}
	if leaseCache != "" {
		// The function keeps its connections for its lifetime: the cache is
		// never closed.
		if o.Cache, err = endpoint.Open(leaseCache); err != nil {
			return nil, fmt.Errorf("%s: invalid %w", envLeaseCache, err)
		}
		if inj != nil {
			o.Cache = inj.For(cacheBackend(leaseCache)).Cache(o.Cache)
		}
	}
	if secondaryCache != "" {
		if leaseCache == "" {
			return nil, fmt.Errorf("%s is set but %s is not: a secondary lease cache pairs with a primary", envSecondaryLeaseCache, envLeaseCache)
		}
		if o.SecondaryCache, err = endpoint.Open(secondaryCache); err != nil {
			return nil, fmt.Errorf("%s: invalid %w", envSecondaryLeaseCache, err)
		}
		if inj != nil {
			o.SecondaryCache = inj.For(cacheBackend(secondaryCache)).Cache(o.SecondaryCache)
		}
	}
	cfg, err := awsconfig.Load(ctx, region, m)
	if err != nil {
		return nil, err
	}
	// DynamoDB Local's error responses fail the SDK's checksum validation.
	emulated := os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != ""
	o.Client = ddb.NewFromConfig(cfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = emulated })
	o.Retention = retention
	return dynamodb.New(o)
}

// cacheBackend is the chaos backend name of a lease cache endpoint: redis
// for redis:// and rediss://, memcached for memcached:// and memcacheds://.
func cacheBackend(endpoint string) string {
	if strings.HasPrefix(endpoint, "memcached") {
		return "memcached"
	}
	return "redis"
}

// parseTableARN splits arn:aws:dynamodb:REGION:ACCOUNT:table/NAME.
func parseTableARN(s string) (region, table string, err error) {
	p := strings.SplitN(s, ":", 6)
	if len(p) != 6 || p[0] != "arn" || p[2] != "dynamodb" || p[3] == "" || !strings.HasPrefix(p[5], "table/") || len(p[5]) == len("table/") {
		return "", "", fmt.Errorf("invalid DynamoDB table ARN %q (want arn:aws:dynamodb:REGION:ACCOUNT:table/NAME)", s)
	}
	return p[3], strings.TrimPrefix(p[5], "table/"), nil
}

// dispatchHook, if set (by tests), adjusts the dispatch's options before it
// is opened: chaos on the primary alone, a fake clock for the breaker.
var dispatchHook func(*awsdispatch.Options)

// dispatchOptions are the dispatch's options as the environment getenv
// reads names them: the dispatch, its retry table and their secondaries.
func dispatchOptions(getenv func(string) string, meter *awsconfig.Meter) awsdispatch.Options {
	o := awsdispatch.Options{Kind: strings.ToLower(strings.TrimSpace(getenv(envDispatch))), ARN: getenv(envDispatchARN),
		RetryTableARN: getenv(envRetryTableARN), Meter: meter,
		SecondaryARN: getenv(envSecondaryDispatchARN), SecondaryRetryTableARN: getenv(envSecondaryRetryTableARN)}
	return o
}

// awsHandler builds the Lambda handler from the environment getenv reads.
func awsHandler(ctx context.Context, s *spec.Spec, resolve engine.Resolver, getenv func(string) string,
	logger *slog.Logger, metrics *lambda.EMF, meter *awsconfig.Meter) (awslambda.Handler, error) {
	inj, report, err := functionChaos(getenv, logger)
	if err != nil {
		return nil, err
	}
	h, err := newAWSHandler(ctx, s, resolve, getenv, logger, metrics, meter, wiring{chaos: inj})
	if err != nil {
		return nil, err
	}
	if report != "" {
		return &reportingHandler{Handler: h, inj: inj, path: report}, nil
	}
	return h, nil
}

// functionChaos reads the function's chaos setting: nil when envChaos is
// unset or empty; the report file is envChaosReport's.
func functionChaos(getenv func(string) string, logger *slog.Logger) (*chaos.Injector, string, error) {
	v := getenv(envChaos)
	if strings.TrimSpace(v) == "" {
		return nil, "", nil
	}
	c, err := config.ParseChaos(v)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", envChaos, err)
	}
	if err := chaos.CheckKeys(c.Ops, chaos.AWSBackends()); err != nil {
		return nil, "", fmt.Errorf("%s: %w", envChaos, err)
	}
	if !c.Enabled() {
		return nil, "", nil
	}
	seed := rand.Uint64N(1 << 31)
	if sv := getenv(envChaosSeed); sv != "" {
		if seed, err = strconv.ParseUint(sv, 10, 64); err != nil {
			return nil, "", fmt.Errorf("%s=%q: want a whole number", envChaosSeed, sv)
		}
	}
	if logger != nil {
		logger.Warn("chaos is on: calls to the AWS backends fail at random", "chaos", c.String(), "seed", seed)
	}
	return chaos.New(c.Config(seed)), getenv(envChaosReport), nil
}

// reportingHandler writes the chaos counts to a file after each
// invocation, for lfsm dev's report.
type reportingHandler struct {
	*lambda.Handler
	inj  *chaos.Injector
	path string
}

func (h *reportingHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := h.Handler.Invoke(ctx, payload)
	if werr := h.inj.Report().WriteFile(h.path); werr != nil && err == nil {
		return out, werr
	}
	return out, err
}

// wiring is what newAWSHandler adds to what the environment names.
type wiring struct {
	// chaos, if set, fails calls of every backend the handler opens.
	chaos *chaos.Injector
	// repairGrace, if set, is the scheduled repair's grace (default
	// engine.DefaultRepairGrace): the soak's runs are minutes long.
	repairGrace time.Duration
}

// newAWSHandler is awsHandler with chaos, when w.chaos is not nil, on every
// backend it opens: the store as dynamodb (its lease cache, LFSM_AWS_LEASE_CACHE,
// as redis or memcached), the dispatch and the retry table under their names
// (dispatch.Options.Chaos), SQS's visibility changes as sqs, the retry
// table's poll as dynamodb.Poll and the metrics flush as cloudwatch.Flush.
func newAWSHandler(ctx context.Context, s *spec.Spec, resolve engine.Resolver, getenv func(string) string,
	logger *slog.Logger, metrics *lambda.EMF, meter *awsconfig.Meter, w wiring) (*lambda.Handler, error) {
	inj := w.chaos
	machines := make([]*engine.Machine, 0, len(s.Machines))
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, resolve)
		if err != nil {
			return nil, err
		}
		machines = append(machines, cm)
	}
	opts := lambda.Options{Machines: machines, Metrics: metrics, Logger: logger}
	var emf engine.Metrics
	if metrics != nil { // a nil *EMF in the interface would be called
		emf = metrics
	}
	pub, err := newPublisher(ctx, getenv, meter, emf, logger)
	if err != nil {
		return nil, err
	}
	if pub != nil { // a nil *Publisher in the interface would be called
		opts.Publisher = pub
		if inj != nil {
			opts.Publisher = inj.For("cloudwatch").Publisher(pub)
		}
	}
	dispatch := strings.ToLower(strings.TrimSpace(getenv(envDispatch)))
	if dispatch == "" {
		dispatch = dispatchSQS
	}
	if dispatch == dispatchStepFunctions {
		return lambda.New(opts)
	}
	if !slices.Contains(awsdispatch.Kinds, dispatch) {
		return nil, fmt.Errorf("%s=%q: want one of %s or %s", envDispatch, dispatch, strings.Join(awsdispatch.Kinds, ", "), dispatchStepFunctions)
	}
	var retention time.Duration
	if v := getenv(envRetention); v != "" {
		if retention, err = config.ParseAge(v); err != nil {
			return nil, fmt.Errorf("%s: %w", envRetention, err)
		}
	}
	dispatchARN := getenv(envDispatchARN)
	if dispatchARN == "" {
		return nil, fmt.Errorf("%s is not set: it names the %s dispatch's queue, topic, stream or table by ARN", envDispatchARN, dispatch)
	}
	do := dispatchOptions(getenv, meter)
	do.Kind = dispatch
	if metrics != nil { // a nil *EMF in the interface would be called
		do.Failover.Metrics = metrics
	}
	do.Failover.Logger = logger
	do.Chaos = inj
	if dispatchHook != nil {
		dispatchHook(&do)
	}
	d, err := awsdispatch.Open(ctx, do)
	if err != nil {
		return nil, fmt.Errorf("%s=%s, %s: %w", envDispatch, dispatch, envDispatchARN, err)
	}
	tableARN := getenv(envStoreTableARN)
	if tableARN == "" {
		return nil, fmt.Errorf("%s is not set: it names the DynamoDB table of the execution store", envStoreTableARN)
	}
	ddbStore, err := newStore(ctx, tableARN, getenv(envLeaseCache), getenv(envSecondaryLeaseCache), retention, d.Queue, d.Retrier, meter, d.TransactCommit, inj)
	if err != nil {
		return nil, err
	}
	var store chaos.BatchStore = ddbStore
	if inj != nil {
		store = inj.For("dynamodb").BatchStore(ddbStore)
	}
	eo := engine.Options{Machines: machines, Store: store, Queue: store, Retrier: store, Logger: logger, MaxMessageBytes: d.MaxMessageBytes}
	eo.Metrics = engine.Tee(emf, opts.Publisher)
	if lt := getenv(envLeaseTimeout); lt != "" {
		d, err := time.ParseDuration(lt)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q: want a positive duration such as 300s", envLeaseTimeout, lt)
		}
		eo.LeaseTimeout = d
		// A bounced record waits for the lease to expire at most.
		opts.BounceDelay = min(lambda.DefaultBounceDelay, d)
	}
	if rn := getenv(envRenames); rn != "" {
		if eo.Renames, err = engine.DecodeRenames([]byte(rn)); err != nil {
			return nil, fmt.Errorf("%s: %w", envRenames, err)
		}
	}
	eng, err := engine.New(eo)
	if err != nil {
		if len(eo.Renames) > 0 {
			return nil, fmt.Errorf("%s: %w", envRenames, err)
		}
		return nil, err
	}
	opts.Engine, opts.Store, opts.Retrier = eng, store, d.Retrier
	if d.Visibility != nil { // a nil *Visibility in the interface would be called
		opts.Visibility = d.Visibility
		if inj != nil {
			opts.Visibility = inj.For("sqs").Visibility(d.Visibility)
		}
	}
	opts.Poller = lambda.RepairPoller{Engine: eng, Options: engine.RepairOptions{Grace: w.repairGrace}}
	if d.Retries != nil {
		tables := []*dynamodb.RetryTable{d.Retries}
		if d.SecondaryRetries != nil {
			tables = append(tables, d.SecondaryRetries)
		}
		rp := retryPoller{retries: tables, repair: opts.Poller}
		if inj != nil {
			rp.chaos = inj.For("dynamodb")
		}
		opts.Poller = rp
	}
	return lambda.New(opts)
}

// newPublisher returns the PutMetricData publisher when the environment
// turns it on (envMetricsCloudWatch), else nil. It sends at most one call
// per invocation (MaxCalls 1), in the function's own region, or through a
// failover pair with envMetricsSecondaryRegion; the pair counts its
// failovers in the EMF lines, which need no CloudWatch call.
func newPublisher(ctx context.Context, getenv func(string) string, meter *awsconfig.Meter, emf engine.Metrics, logger *slog.Logger) (*cloudwatch.Publisher, error) {
	v := strings.TrimSpace(getenv(envMetricsCloudWatch))
	if v == "" {
		return nil, nil
	}
	on, err := strconv.ParseBool(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: want true or false", envMetricsCloudWatch, v)
	}
	if !on {
		return nil, nil
	}
	cfg, err := awsconfig.Load(ctx, "", meter)
	if err != nil {
		return nil, err
	}
	var client cloudwatch.API = awscw.NewFromConfig(cfg)
	if sr := strings.TrimSpace(getenv(envMetricsSecondaryRegion)); sr != "" {
		scfg, err := awsconfig.Load(ctx, sr, meter)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", envMetricsSecondaryRegion, sr, err)
		}
		client = cloudwatch.NewFailover(client, awscw.NewFromConfig(scfg), failover.Options{Metrics: emf, Logger: logger})
	}
	return cloudwatch.New(cloudwatch.Options{Client: client, Namespace: getenv(envMetricsNamespace), MaxCalls: 1})
}

// retryPoller is the scheduled poll of a dispatch with a retry table: the
// due retries first (one Query when none is due; the secondary table's
// too, where retries failed over to), then the repair.
type retryPoller struct {
	retries []*dynamodb.RetryTable
	repair  lambda.Poller
	// chaos, if set, may fail the retry table's poll (dynamodb.Poll).
	chaos *chaos.Injector
}

func (p retryPoller) Poll(ctx context.Context, now time.Time) (lambda.PollResult, error) {
	if p.chaos != nil {
		if err := p.chaos.Fail(chaos.OpPoll); err != nil {
			return lambda.PollResult{}, err
		}
	}
	var sent int
	more := false
	var errs []error
	for _, t := range p.retries {
		r, err := t.Poll(ctx, now)
		sent += r.Sent
		more = more || r.More
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return lambda.PollResult{Retried: sent}, err
	}
	res, err := p.repair.Poll(ctx, now)
	res.Retried += sent
	res.More = res.More || more
	return res, err
}

// logLevel reads envLogLevel (default info).
func logLevel(getenv func(string) string) (slog.Level, error) {
	var l slog.Level
	v := getenv(envLogLevel)
	if v == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return l, fmt.Errorf("%s=%q: want debug, info, warn or error", envLogLevel, v)
	}
	return l, nil
}

// lambdaMain runs the function under the Lambda runtime API: logs as JSON on
// stderr, metrics as EMF on stdout. It returns only if the handler cannot be
// built (lambda.Start never returns).
func lambdaMain(ctx context.Context, s *spec.Spec, resolve engine.Resolver, stdout, stderr io.Writer) int {
	level, err := logLevel(os.Getenv)
	logger := slog.New(lambda.NewLogHandler(stderr, level))
	if err != nil {
		logger.Error("bad environment", "err", err)
		return exitUsage
	}
	h, err := awsHandler(ctx, s, resolve, os.Getenv, logger, lambda.NewEMF(stdout, nil), nil)
	if err != nil {
		// The runtime reports an init error when the bootstrap exits.
		logger.Error("cannot start the function", "err", err)
		return exitFailure
	}
	awslambda.StartWithOptions(h, awslambda.WithContext(ctx))
	return exitOK
}

// invokeCmd runs the Lambda handler on events read from stdin, one JSON
// value after another, and writes one JSON line per event to stdout:
// {"response": ...} or {"error": {"errorType", "errorMessage"}}. lfsm dev
// --target aws hands its batches to the project binary this way; the
// environment names the AWS resources as it does in Lambda.
func invokeCmd(ctx context.Context, s *spec.Spec, resolve engine.Resolver, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "error: invoke takes no arguments; it reads events from stdin")
		return exitUsage
	}
	level, err := logLevel(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitUsage
	}
	logger := slog.New(lambda.NewLogHandler(stderr, level))
	h, err := awsHandler(ctx, s, resolve, os.Getenv, logger, nil, nil)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	dec := json.NewDecoder(bufio.NewReaderSize(stdin, 1<<20))
	out := bufio.NewWriter(stdout)
	for {
		var ev json.RawMessage
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return exitOK
			}
			fmt.Fprintf(stderr, "error: read event: %v\n", err)
			return exitFailure
		}
		resp, err := h.Invoke(ctx, ev)
		line := invokeLine{Response: resp}
		if err != nil {
			line = invokeLine{Error: &invokeError{Type: fmt.Sprintf("%T", err), Message: err.Error()}}
		}
		b, _ := json.Marshal(line)
		out.Write(b)
		out.WriteByte('\n')
		if err := out.Flush(); err != nil {
			return exitFailure
		}
	}
}

// invokeLine is one answer of invokeCmd.
type invokeLine struct {
	Response json.RawMessage `json:"response,omitempty"`
	Error    *invokeError    `json:"error,omitempty"`
}

type invokeError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

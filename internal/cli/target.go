package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	cfn "github.com/aws/aws-sdk-go-v2/service/cloudformation"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/cloudformation"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/leasecache/endpoint"
	"github.com/lfsm/lfsm/internal/config"
	awsdispatch "github.com/lfsm/lfsm/internal/dispatch"
	"github.com/lfsm/lfsm/internal/engine"
)

// opStore is what the operator commands (start, ls, inspect, tail, send,
// stop, resume) need of a target: the store, and the queue start, send and
// resume enqueue on.
type opStore interface {
	engine.Store
	engine.Queue
	Close() error
}

// target says which store the operator commands open: the local SQLite
// file, or the AWS resources of the aws: settings. Commands get it from the
// Factory when they run; a zero target is local.
type target struct {
	kind config.Target
	aws  config.AWS
}

func (f *Factory) target() target { return target{kind: f.Config.Target, aws: f.Config.AWS} }

func (t target) isAWS() bool { return t.kind == config.TargetAWS }

// open opens the target's store: the local file at path (which must exist
// if mustExist), or the DynamoDB store and dispatch queue the aws: settings
// name. name is what results call the store (the file, or the table's ARN).
func (t target) open(ctx context.Context, path string, mustExist bool) (s opStore, name string, err error) {
	if !t.isAWS() {
		db, err := openStore(ctx, path, mustExist)
		if err != nil {
			return nil, "", err
		}
		return db, path, nil
	}
	b, err := openAWS(ctx, t.aws)
	if err != nil {
		return nil, "", err
	}
	return b, b.res.StoreTable.String(), nil
}

// awsStore is the DynamoDB store with the dispatch queue it sends to (and
// the lease cache it keeps leases on, if aws.lease-cache names one).
type awsStore struct {
	*dynamodb.Store
	res   config.Resources
	cache endpoint.Cache
	// cache2 is the secondary lease cache (aws.secondary.lease-cache).
	cache2 endpoint.Cache
}

func (s awsStore) Close() error {
	var errs []error
	for _, c := range []endpoint.Cache{s.cache, s.cache2} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// emulated reports whether the environment points the SDK at an emulator
// (AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_DYNAMODB): DynamoDB Local's error
// responses then fail the SDK's checksum validation, which is turned off.
func emulated() bool {
	return os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_DYNAMODB") != ""
}

// openAWS resolves a (from its stack's outputs when it names one) and opens
// the store and the queue, each client in its resource's region.
func openAWS(ctx context.Context, a config.AWS) (*awsStore, error) {
	res, err := resolveAWS(ctx, a)
	if err != nil {
		return nil, err
	}
	return openResolved(ctx, res)
}

// resolveAWS resolves a, from its stack's outputs when it names one.
func resolveAWS(ctx context.Context, a config.AWS) (config.Resources, error) {
	if a.Stack != "" {
		region := ""
		if arn, err := config.ParseARN(a.Stack); err == nil {
			region = arn.Region
		}
		cfg, err := awsconfig.Load(ctx, region, nil)
		if err != nil {
			return config.Resources{}, err
		}
		outs, err := cloudformation.Outputs(ctx, cfn.NewFromConfig(cfg), a.Stack)
		if err != nil {
			return config.Resources{}, err
		}
		a = a.WithOutputs(outs)
	}
	res, err := a.Resolve()
	if err != nil {
		if errors.Is(err, config.ErrNoAWSStore) {
			return res, usageErrorf("%w", err)
		}
		return res, fmt.Errorf("aws settings: %w", err)
	}
	return res, nil
}

// openResolved opens the store and the queue of res, each client in its
// resource's region.
func openResolved(ctx context.Context, res config.Resources) (*awsStore, error) {
	dcfg, err := awsconfig.Load(ctx, res.StoreTable.Region, nil)
	if err != nil {
		return nil, err
	}
	client := ddb.NewFromConfig(dcfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = emulated() })
	// The retention too: a stop made here finishes an execution as the
	// function's commits do (its ttl and tombstone).
	o := dynamodb.Options{Client: client, Table: res.StoreTable.Name(), Retention: res.Retention}
	if res.HasDispatch() {
		retryARN := ""
		if res.RetryTable != nil {
			retryARN = res.RetryTable.String()
		}
		do := awsdispatch.Options{Kind: res.Dispatch, ARN: res.DispatchARN.String(), RetryTableARN: retryARN}
		// start, send and resume fail over as the function does.
		if res.SecondaryDispatch != nil {
			do.SecondaryARN = res.SecondaryDispatch.String()
		}
		if res.SecondaryRetryTable != nil {
			do.SecondaryRetryTableARN = res.SecondaryRetryTable.String()
		}
		d, err := awsdispatch.Open(ctx, do)
		if err != nil {
			return nil, fmt.Errorf("aws.dispatch %s: %w", res.Dispatch, err)
		}
		o.Queue, o.Retrier = d.Queue, d.Retrier
	} else {
		o.Queue = unsupportedDispatch("")
	}
	var cache endpoint.Cache
	if res.LeaseCache != "" {
		// The operator calls must reach the cache the function uses: a stop
		// or resume forgets the cached record (docs/design.md, "Lease caches").
		if cache, err = endpoint.Open(string(res.LeaseCache)); err != nil {
			return nil, fmt.Errorf("aws.lease-cache: %w", err)
		}
		o.Cache = cache
	}
	var cache2 endpoint.Cache
	if res.SecondaryLeaseCache != "" {
		if cache2, err = endpoint.Open(string(res.SecondaryLeaseCache)); err != nil {
			return nil, fmt.Errorf("aws.secondary.lease-cache: %w", err)
		}
		o.SecondaryCache = cache2
	}
	s, err := dynamodb.New(o)
	if err != nil {
		return nil, err
	}
	return &awsStore{Store: s, res: res, cache: cache, cache2: cache2}, nil
}

// unsupportedDispatch stands in for a missing dispatch, so that commands
// that only read work and those that send say why they cannot.
type unsupportedDispatch string

func (d unsupportedDispatch) Send(context.Context, engine.OutMessage) (string, error) {
	return "", errors.New("no dispatch to send to: set aws.dispatch-arn (or aws.stack)")
}

// localOnly refuses --target aws for a command that runs executions on the
// local store, rather than running them there silently.
func localOnly(f *Factory, command string) error {
	if f.Config.Target != config.TargetAWS {
		return nil
	}
	return usageErrorf("lfsm %s runs executions on the local store and cannot use --target aws%s: deployed executions run in Lambda; start, ls, inspect, send, stop and resume operate them", command, f.sourceNote("target"))
}

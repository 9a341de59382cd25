package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	goredis "github.com/redis/go-redis/v9"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/chaos"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
)

// soakRepairGrace is the scheduled repair's grace in the soak (5 min in a
// deployment): longer than any legitimate wait of the run (a 5 s visibility
// timeout, a 2 s bounce), so that what it repairs had no message at all.
const soakRepairGrace = 15 * time.Second

// TestSoak is the soak benchmark (scripts/soak.sh), not a test: it runs
// only with LFSM_SOAK=1, never in CI. LFSM_SOAK_EXECUTIONS executions
// (default 1000) of a 10-step machine run through the function's handler on
// the emulators, half on the composite store with a Redis lease cache and
// half with Memcached (each its own server, started here), with
// LFSM_SOAK_FAULTS (default 0.1) injected on every operation of every
// backend (chaos default=P: DynamoDB, SQS in the function and in the
// mapping, the cache), a FLUSHALL of the Redis server when half the
// records of its phase have been handled, and a restart of the Memcached
// server at the same point. It fails if an execution is not done, a step is
// in a history twice or missing; it logs "soak:" lines with wall time, the
// faults per operation and the calls per step against a baseline without
// faults (LFSM_SOAK_BASELINE executions, default a tenth). LFSM_SOAK_CACHES
// (default redis,memcached) splits the executions otherwise; "none" is the
// DynamoDB store without a cache.
func TestSoak(t *testing.T) {
	if os.Getenv("LFSM_SOAK") == "" {
		t.Skip("the soak benchmark runs with LFSM_SOAK=1: scripts/soak.sh")
	}
	n := soakInt(t, "LFSM_SOAK_EXECUTIONS", 1000)
	base := soakInt(t, "LFSM_SOAK_BASELINE", max(n/10, 10))
	workers := soakInt(t, "LFSM_SOAK_WORKERS", 4)
	faults := 0.1
	if v := os.Getenv("LFSM_SOAK_FAULTS"); v != "" {
		var err error
		if faults, err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("LFSM_SOAK_FAULTS=%q: %v", v, err)
		}
	}
	t.Logf("soak: %d executions x %d steps (half on each cache), %.0f%% faults on every backend, %d function instances; baseline %d executions without faults",
		n, chainSteps, faults*100, workers, base)
	caches := []string{"redis", "memcached"}
	if v := os.Getenv("LFSM_SOAK_CACHES"); v != "" {
		caches = strings.Split(v, ",") // "none" is the DynamoDB store alone
	}
	var total soakResult
	for _, cache := range caches {
		b := soakPhase(t, cache, base/len(caches), 0, workers, false)
		r := soakPhase(t, cache, n/len(caches), faults, workers, true)
		r.log(t, cache, b)
		total.add(r)
	}
	t.Logf("soak: total: %d executions, %d lost (not done), %d steps committed twice, %d missing from the history; %s; %d of %d calls failed; %d executions repaired by the schedule",
		total.executions, total.notDone, total.twice, total.missing, total.wall.Round(time.Second), total.report.Failures, total.report.Calls, total.repaired)
	if total.notDone+total.twice+total.missing > 0 {
		t.Errorf("soak: %d lost, %d twice, %d missing; first: %s", total.notDone, total.twice, total.missing, total.first)
	}
}

func soakInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

// soakResult is what one phase did.
type soakResult struct {
	executions, notDone, twice, missing int
	first                               string
	wall                                time.Duration
	report                              chaos.Report
	// awsCalls are the AWS calls of the function and the mapping (the
	// meter's); cacheCalls the lease cache's (the injector's counts).
	awsCalls, cacheCalls int64
	drained              drained
	event                string
	// repaired counts the executions the scheduled repair sent on again
	// (their message was gone: the step committed, its send not).
	repaired int
}

func (r *soakResult) add(o soakResult) {
	r.executions += o.executions
	r.notDone += o.notDone
	r.twice += o.twice
	r.missing += o.missing
	if r.first == "" {
		r.first = o.first
	}
	r.wall += o.wall
	r.repaired += o.repaired
	r.report = r.report.Merge(o.report)
}

func (r soakResult) perStep() float64 {
	return float64(r.awsCalls+r.cacheCalls) / float64(r.executions*chainSteps)
}

func (r soakResult) log(t *testing.T, cache string, base soakResult) {
	steps := r.executions * chainSteps
	extra := float64(r.awsCalls+r.cacheCalls) - base.perStep()*float64(steps)
	t.Logf("soak: %s: %d executions in %s (%.0f steps/s); %s; %d lost, %d twice, %d missing; %d records handed to the function, %d reported back; %d repaired by the schedule",
		cache, r.executions, r.wall.Round(time.Second), float64(steps)/r.wall.Seconds(), r.event, r.notDone, r.twice, r.missing, r.drained.records, r.drained.failed, r.repaired)
	t.Logf("soak: %s: %d of %d calls failed; %.2f calls per step (%d AWS, %d cache) against %.2f without faults: the faults cost %.0f extra calls (%.0f%%)",
		cache, r.report.Failures, r.report.Calls, r.perStep(), r.awsCalls, r.cacheCalls, base.perStep(), extra, 100*extra/(base.perStep()*float64(steps)))
	var parts []string
	for _, o := range r.report.Ops {
		if o.Failures > 0 {
			parts = append(parts, fmt.Sprintf("%s %d/%d", o.Op, o.Failures, o.Calls))
		}
	}
	t.Logf("soak: %s: faults by operation (failed/calls): %s", cache, strings.Join(parts, ", "))
}

// soakPhase runs n executions on the composite store with the named cache
// (its own server), with faults on every operation; loss makes the cache
// lose everything when half the records have been handled.
func soakPhase(t *testing.T, cache string, n int, faults float64, workers int, loss bool) soakResult {
	t.Helper()
	r := newRig(t)
	ctx := context.Background()
	var lose func()
	switch cache {
	case "redis":
		srv := awstest.StartServer(t, "redis-server", awstest.RedisArgs)
		r.env[envLeaseCache] = "redis://" + srv.Addr
		admin := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
		t.Cleanup(func() { admin.Close() })
		lose = func() {
			if err := admin.FlushAll(ctx).Err(); err != nil {
				t.Errorf("FLUSHALL: %v", err)
			}
		}
	case "memcached":
		srv := awstest.StartServer(t, "memcached", awstest.MemcachedArgs)
		r.env[envLeaseCache] = "memcached://" + srv.Addr
		lose = func() { srv.Restart(t) }
	case "none":
		lose = func() {}
	default:
		t.Fatalf("LFSM_SOAK_CACHES: unknown cache %q (want redis, memcached or none)", cache)
	}
	// The store for starting and checking (the cache too), without chaos;
	// the handlers open their own from the environment, as the function does.
	plain, err := newStore(ctx, r.env[envStoreTableARN], r.env[envLeaseCache], "", 0, r.disp.Queue, r.disp.Retrier, nil, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.store = plain
	m, err := engine.Compile(r.spec.Machines[0], resolveNext)
	if err != nil {
		t.Fatal(err)
	}
	if r.eng, err = engine.New(engine.Options{Machines: []*engine.Machine{m}, Store: plain, Queue: plain, Retrier: plain}); err != nil {
		t.Fatal(err)
	}
	ids := r.start(n)

	spec, err := config.ParseChaos(strconv.FormatFloat(faults, 'g', -1, 64))
	if err != nil {
		t.Fatal(err)
	}
	inj := chaos.New(spec.Config(uint64(time.Now().UnixNano())))
	meter := &awsconfig.Meter{}
	var hs []*lambdaHandler
	for range workers {
		hs = append(hs, r.handler(nil, meter, wiring{chaos: inj, repairGrace: soakRepairGrace}))
	}
	mcfg, err := awsconfig.Load(ctx, "us-east-1", meter)
	if err != nil {
		t.Fatal(err)
	}
	mapping := chaosSQS{SQSAPI: awssqs.NewFromConfig(mcfg), inj: inj.For("sqs")}
	res := soakResult{executions: n, event: "no cache loss"}
	half := int64(n * chainSteps / 2)
	lost := false
	// Drained means no execution left running too: one whose message is
	// gone (stranded) is repaired by the scheduled event, as the deployed
	// function's every-minute schedule does, with a short grace here.
	r.done = func() bool {
		p, err := plain.List(ctx, engine.ListFilter{Status: engine.StatusRunning, Limit: 1})
		return err == nil && len(p.Executions) == 0 && p.Next == ""
	}
	var lastTick time.Time
	started := time.Now()
	res.drained = r.drain(hs, mapping, 30*time.Minute, func(records int64) {
		if loss && !lost && records >= half {
			lost = true
			lose()
			if cache != "none" {
				res.event = fmt.Sprintf("cache lost (%s) after %d records", map[string]string{"redis": "FLUSHALL", "memcached": "restart"}[cache], records)
			}
		}
		if time.Since(lastTick) >= 2*time.Second {
			lastTick = time.Now()
			out, err := hs[0].Invoke(ctx, []byte(scheduledEvent))
			var pr struct {
				Repaired int `json:"repaired"`
			}
			if err == nil && json.Unmarshal(out, &pr) == nil {
				res.repaired += pr.Repaired
			}
		}
	})
	res.wall = time.Since(started)
	if loss && !lost {
		t.Errorf("%s: the run ended before half its records: no cache loss", cache)
	}
	res.notDone, res.twice, res.missing, res.first = r.check(ids)
	res.report = inj.Report()
	res.awsCalls = meter.Calls()
	for _, o := range res.report.Ops {
		if strings.HasPrefix(o.Op, cache+".") {
			res.cacheCalls += int64(o.Calls)
		}
	}
	return res
}

package esm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/dynamodb"
	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/build"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/esm"
	"github.com/lfsm/lfsm/internal/spec"
)

// The end-to-end project: the seed's Example, a machine whose step fails
// twice and then succeeds, and one whose step can be killed mid-way (it
// writes its pid to $LFSM_E2E_MARKER and sleeps, the first time only).
const e2eSpec = `machines:
- name: Example
  states:
  - name: FirstState
    initial: true
    entry_action: example.com/e2e/actions.Noop
    do_action: example.com/e2e/actions.Done
    exit_action: example.com/e2e/actions.Noop
    transitions:
    - target: SecondState
      event: done
  - name: SecondState
    entry_action: example.com/e2e/actions.Noop
    do_action: example.com/e2e/actions.Done
    exit_action: example.com/e2e/actions.Noop
    transitions:
    - target: ThirdState
      event: done
  - name: ThirdState
    final: true
    entry_action: example.com/e2e/actions.Noop
    do_action: example.com/e2e/actions.Noop
    exit_action: example.com/e2e/actions.Noop
- name: Flaky
  states:
  - name: Try
    initial: true
    do_action: example.com/e2e/actions.FailTwice
    transitions:
    - target: Done
      event: ok
  - name: Done
    final: true
- name: Slow
  states:
  - name: Work
    initial: true
    do_action: example.com/e2e/actions.Slow
    transitions:
    - target: Done
      event: ok
  - name: Done
    final: true
`

const e2eActions = `package actions

import (
	"context"
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/lfsm/lfsm/fsm"
)

func Noop(context.Context, *fsm.Context) (string, error) { return "", nil }

func Done(context.Context, *fsm.Context) (string, error) { return "done", nil }

func FailTwice(_ context.Context, c *fsm.Context) (string, error) {
	if c.Facts().Retries < 2 {
		return "", errors.New("not yet")
	}
	return "ok", nil
}

// Slow writes its pid to $LFSM_E2E_MARKER and sleeps the first time, so a
// test can kill the process mid-step (5 s); later attempts succeed at once.
func Slow(ctx context.Context, _ *fsm.Context) (string, error) {
	p := os.Getenv("LFSM_E2E_MARKER")
	if _, err := os.Stat(p); p != "" && err != nil {
		os.WriteFile(p+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o644)
		os.Rename(p+".tmp", p)
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
	}
	return "ok", nil
}
`

var (
	bootOnce sync.Once
	bootPath string
	bootErr  error
)

// bootstrap builds the end-to-end project for Lambda (this machine's
// architecture, so that aws-lambda-rie can run it), once per test binary.
func bootstrap(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a Lambda bootstrap")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	bootOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lfsm-e2e-")
		if err != nil {
			bootErr = err
			return
		}
		repo, _ := filepath.Abs(filepath.Join("..", ".."))
		files := map[string]string{
			"go.mod": "module example.com/e2e\n\ngo 1.26.8\n\nrequire github.com/lfsm/lfsm v0.0.0-00010101000000-000000000000\n\n" +
				"replace github.com/lfsm/lfsm => " + repo + "\n",
			"fsm.yaml":           e2eSpec,
			"actions/actions.go": e2eActions,
			// As in examples/seed: go mod tidy keeps what fsm/host needs.
			"tools.go": "//go:build tools\n\npackage e2e\n\nimport _ \"github.com/lfsm/lfsm/fsm/host\"\n",
		}
		for name, body := range files {
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if bootErr = os.WriteFile(p, []byte(body), 0o644); bootErr != nil {
				return
			}
		}
		tidy := exec.Command("go", "mod", "tidy")
		tidy.Dir = dir
		tidy.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := tidy.CombinedOutput(); err != nil {
			bootErr = fmt.Errorf("go mod tidy: %v\n%s", err, out)
			return
		}
		res, diags, err := build.Build(context.Background(), build.BuildOptions{Dir: dir, Lambda: true, GOARCH: runtime.GOARCH})
		if err == nil && diags.HasErrors() {
			err = fmt.Errorf("diagnostics: %v", diags)
		}
		bootPath, bootErr = res.Binary, err
	})
	if bootErr != nil {
		t.Fatalf("build the end-to-end bootstrap: %v", bootErr)
	}
	return bootPath
}

// rig is the emulated deployment: an SQS queue on fauxqs, the store's table
// on DynamoDB Local, the engine the operator commands use (start), and the
// function's environment.
type rig struct {
	t        testing.TB
	sqs      *awssqs.Client
	queueARN string
	table    string
	store    *dynamodb.Store
	eng      *engine.Engine
	env      []string
}

func newRig(t testing.TB) *rig {
	t.Helper()
	qcfg := awstest.Config(t, "SQS", nil)
	dcfg := awstest.Config(t, "DYNAMODB", nil)
	r := &rig{t: t, sqs: awssqs.NewFromConfig(qcfg)}
	ctx := t.Context()
	qname := awstest.Name("lfsm-e2e")
	out, err := r.sqs.CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(qname)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.sqs.DeleteQueue(context.WithoutCancel(ctx), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	attrs, err := r.sqs.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	r.queueARN = attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	table := awstest.Name("lfsm-e2e")
	r.table = table
	dc := ddb.NewFromConfig(dcfg, func(o *ddb.Options) { o.DisableValidateResponseChecksum = true })
	if err := dynamodb.CreateTable(ctx, dc, table); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dc.DeleteTable(context.WithoutCancel(ctx), &ddb.DeleteTableInput{TableName: aws.String(table)})
	})
	q, err := sqs.New(ctx, sqs.Options{Client: r.sqs, ARN: r.queueARN})
	if err != nil {
		t.Fatal(err)
	}
	if r.store, err = dynamodb.New(dynamodb.Options{Client: dc, Table: table, Queue: q, Retrier: q}); err != nil {
		t.Fatal(err)
	}
	s, diags := loadSpec(t)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var machines []*engine.Machine
	for _, m := range s.Machines {
		cm, err := engine.Compile(m, engine.SimulateActions(m, engine.SimulateOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		machines = append(machines, cm)
	}
	if r.eng, err = engine.New(engine.Options{Machines: machines, Store: r.store, Queue: r.store, Retrier: r.store}); err != nil {
		t.Fatal(err)
	}
	r.env = []string{
		"LFSM_AWS_DISPATCH=sqs", "LFSM_AWS_DISPATCH_ARN=" + r.queueARN,
		"LFSM_AWS_STORE_TABLE_ARN=arn:aws:dynamodb:us-east-1:000000000000:table/" + table,
		"LFSM_LEASE_TIMEOUT=2s", "LFSM_LOG_LEVEL=warn",
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") {
			r.env = append(r.env, kv)
		}
	}
	return r
}

func loadSpec(t testing.TB) (*spec.Spec, spec.Diagnostics) {
	p := filepath.Join(t.TempDir(), "fsm.yaml")
	os.WriteFile(p, []byte(e2eSpec), 0o644)
	return spec.Load(p)
}

// start starts n executions of machine, as lfsm start --target aws does.
func (r *rig) start(machine string, n int) []string {
	var ids []string
	for range n {
		id, err := r.eng.Start(r.t.Context(), engine.StartRequest{Machine: machine, Context: map[string]any{}})
		if err != nil {
			r.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// mapping runs an event source mapping onto inv until the test ends.
func (r *rig) mapping(inv esm.Invoker) context.CancelFunc {
	m, err := esm.New(r.t.Context(), esm.Options{Client: r.sqs, QueueARN: r.queueARN, Invoker: inv,
		Wait: time.Second, Visibility: 2 * time.Second})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.t.Context())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return cancel
}

// waitDone polls the store until every execution is done.
func (r *rig) waitDone(ids []string, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		pending := 0
		for _, id := range ids {
			x, err := r.store.Get(r.t.Context(), id)
			if err != nil || x.Status != engine.StatusDone {
				pending++
			}
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, id := range ids {
				x, err := r.store.Get(r.t.Context(), id)
				r.t.Logf("%s: %s %s/%s err=%v last=%q", id, x.Status, x.State, x.Event, err, x.LastError)
			}
			r.t.Fatalf("%d of %d executions not done within %s", pending, len(ids), within)
		}
		time.Sleep(200 * time.Millisecond) // polling an emulator's state with a deadline
	}
}

// checkHistory asserts that id's history runs its steps in order, each
// committed once: want lists the (step, retries, outcome) entries.
func (r *rig) checkHistory(id string, want []string) {
	r.t.Helper()
	hist, err := r.store.History(r.t.Context(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	var got []string
	for _, e := range hist {
		got = append(got, fmt.Sprintf("%d.%d %s", e.Step, e.Retries, e.Outcome))
	}
	if !slices.Equal(got, want) {
		r.t.Errorf("%s history %v, want %v", id, got, want)
	}
}

// rieOrSkip finds aws-lambda-rie: on PATH, in $EMU_BIN, or in the
// repository's .emu/bin (scripts/emulators/emu-install.sh's default).
func rieOrSkip(t *testing.T) string {
	p, err := esm.FindRIE()
	if err != nil {
		if d, aerr := filepath.Abs(filepath.Join("..", "..", ".emu", "bin", esm.RIEBinary)); aerr == nil {
			if _, serr := os.Stat(d); serr == nil {
				return d
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// The seed's Example and a step that fails twice, through the real bootstrap
// under aws-lambda-rie, fed from SQS on fauxqs, the store on DynamoDB Local:
// every execution done, every step once in its history.
func TestEndToEndRIE(t *testing.T) {
	rie := rieOrSkip(t)
	boot := bootstrap(t)
	r := newRig(t)
	fn, err := esm.StartRIE(t.Context(), esm.RIEOptions{RIE: rie, Bootstrap: boot, Env: r.env, Stdout: os.Stderr, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	examples := r.start("Example", 3)
	flaky := r.start("Flaky", 2)
	r.mapping(fn)
	r.waitDone(append(slices.Clone(examples), flaky...), 60*time.Second)
	for _, id := range examples {
		r.checkHistory(id, []string{"0.0 next", "1.0 next", "2.0 next", "3.0 done"})
	}
	for _, id := range flaky {
		r.checkHistory(id, []string{"0.0 retry", "0.1 retry", "0.2 next", "1.0 done"})
	}
}

// The project binary's invoke command serves the same mapping.
func TestEndToEndProcess(t *testing.T) {
	boot := bootstrap(t)
	r := newRig(t)
	// The Lambda build has the handler too; invoke is a command of every build.
	fn, err := esm.StartProcess(boot, r.env, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	ids := r.start("Example", 2)
	r.mapping(fn)
	r.waitDone(ids, 30*time.Second)
	for _, id := range ids {
		r.checkHistory(id, []string{"0.0 next", "1.0 next", "2.0 next", "3.0 done"})
	}
}

// kill -9 of the bootstrap mid-step: the step's message comes back after its
// visibility timeout, its lease expires, and the step runs again and is
// committed once; the other executions are not held up for good.
func TestEndToEndKillBootstrap(t *testing.T) {
	rie := rieOrSkip(t)
	boot := bootstrap(t)
	r := newRig(t)
	marker := filepath.Join(t.TempDir(), "pid")
	env := append(slices.Clone(r.env), "LFSM_E2E_MARKER="+marker)
	fn, err := esm.StartRIE(t.Context(), esm.RIEOptions{RIE: rie, Bootstrap: boot, Env: env, Stdout: os.Stderr, Stderr: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	slow := r.start("Slow", 1)
	r.mapping(fn)
	pid := waitPID(t, marker, 30*time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	others := r.start("Example", 2)
	r.waitDone(append(slices.Clone(slow), others...), 60*time.Second)
	r.checkHistory(slow[0], []string{"0.0 next", "1.0 done"})
	for _, id := range others {
		r.checkHistory(id, []string{"0.0 next", "1.0 next", "2.0 next", "3.0 done"})
	}
}

func waitPID(t *testing.T, marker string, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(marker); err == nil {
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // polling for the action's marker with a deadline
	}
	t.Fatalf("the slow action did not start within %s", within)
	return 0
}

func TestMain(m *testing.M) {
	if os.Getenv("LFSM_ESM_HELPER") == "poller" {
		os.Exit(pollerHelper())
	}
	os.Exit(m.Run())
}

// pollerHelper is a poller process of its own (this test binary run again):
// an event source mapping into the bootstrap under aws-lambda-rie, until it
// is killed. The function's environment is the helper's LFSM_* and AWS_*.
func pollerHelper() int {
	ctx := context.Background()
	cfg, err := awsconfig.Load(ctx, "us-east-1", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || (strings.HasPrefix(kv, "LFSM_") && !strings.HasPrefix(kv, "LFSM_ESM_")) {
			env = append(env, kv)
		}
	}
	fn, err := esm.StartRIE(ctx, esm.RIEOptions{RIE: os.Getenv("LFSM_ESM_RIE"), Bootstrap: os.Getenv("LFSM_ESM_BOOTSTRAP"),
		Env: env, Stdout: os.Stderr, Stderr: os.Stderr})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := esm.New(ctx, esm.Options{Client: awssqs.NewFromConfig(cfg), QueueARN: os.Getenv("LFSM_ESM_QUEUE_ARN"), Invoker: fn,
		Wait: time.Second, Visibility: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m.Run(ctx)
	return 0
}

// startPoller runs pollerHelper in a process of its own.
func (r *rig) startPoller(t *testing.T, rie, boot string, extra ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "LFSM_ESM_HELPER=poller", "LFSM_ESM_RIE="+rie, "LFSM_ESM_BOOTSTRAP="+boot,
		"LFSM_ESM_QUEUE_ARN="+r.queueARN), append(slices.Clone(r.env), extra...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// kill -9 of the poller mid-step (its emulator dies with it): a new poller
// takes over, and every execution finishes with each step committed once
// (the orphaned function finishes its step, or the step's lease expires and
// it runs again).
func TestEndToEndKillPoller(t *testing.T) {
	rie := rieOrSkip(t)
	boot := bootstrap(t)
	r := newRig(t)
	marker := filepath.Join(t.TempDir(), "pid")
	slow := r.start("Slow", 1)
	others := r.start("Example", 3)
	first := r.startPoller(t, rie, boot, "LFSM_E2E_MARKER="+marker)
	waitPID(t, marker, 30*time.Second)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	r.startPoller(t, rie, boot, "LFSM_E2E_MARKER="+marker)
	r.waitDone(append(slices.Clone(slow), others...), 90*time.Second)
	r.checkHistory(slow[0], []string{"0.0 next", "1.0 done"})
	for _, id := range others {
		r.checkHistory(id, []string{"0.0 next", "1.0 next", "2.0 next", "3.0 done"})
	}
}

package lambda_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch/cwfake"
	"github.com/lfsm/lfsm/internal/engine"
)

// newPublisher is the handler's Publisher: the real cloudwatch.Publisher
// (MaxCalls 1, as fsm/host builds it), stamping with the harness's clock. The
// CloudWatch it talks to is cwfake, an httptest fake, because no
// CloudWatch emulator exists (EMULATORS.md); the fake decodes the
// rpc-v2-cbor requests the SDK really sends.
func newPublisher(t *testing.T, h func() *harness) (*cwfake.Fake, *cloudwatch.Publisher) {
	t.Helper()
	f := cwfake.New(t)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := cw.New(cw.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		}),
	})
	p, err := cloudwatch.New(cloudwatch.Options{Client: c, Namespace: "orders", MaxCalls: 1,
		Clock: func() time.Time { return h().clock.Now() }})
	if err != nil {
		t.Fatal(err)
	}
	return f, p
}

// sums are counters keyed as cwfake.Fake.Sums keys them.
func sums(ns string, c *engine.Counters) map[string]float64 {
	out := map[string]float64{}
	for k, n := range c.Snapshot() {
		var ds []string
		for _, d := range [][2]string{{"Machine", k.Machine}, {"State", k.State}, {"Event", k.Event}} {
			if d[1] != "" {
				ds = append(ds, d[0]+"="+d[1])
			}
		}
		out[ns+" "+k.Name+" "+strings.Join(ds, ",")] += float64(n)
	}
	return out
}

// TestPublisherOneCallPerInvocation: the handler flushes its publisher once
// at the end of each invocation, so N invocations that count make exactly N
// PutMetricData calls whatever their batch (here SQS batches of up to 10
// committed together), and what reached CloudWatch is every counter the
// engine and the handler counted, with its dimensions.
func TestPublisherOneCallPerInvocation(t *testing.T) {
	var h *harness
	f, pub := newPublisher(t, func() *harness { return h })
	counters := engine.NewCounters()
	h = newHarness(t, harnessOpts{batch: true, publisher: pub, counters: counters})
	for i := range 25 {
		h.direct(fmt.Sprintf(`{"command":"start","machine":"Example","correlation_id":"e%02d"}`, i))
	}
	startCalls := len(f.Calls())
	invocations := 0
	for {
		before := len(f.Calls())
		if _, ok := h.pump(); !ok {
			break
		}
		invocations++
		if got := len(f.Calls()) - before; got != 1 {
			t.Fatalf("invocation %d made %d PutMetricData calls, want 1", invocations, got)
		}
	}
	if invocations < 10 {
		t.Fatalf("%d invocations ran the executions; want batches of several records", invocations)
	}
	if n := len(f.Calls()) - startCalls; n != invocations {
		t.Errorf("%d PutMetricData calls for %d invocations, want one each", n, invocations)
	}
	// 25 executions of 4 steps: the calls per transition the publisher adds.
	t.Logf("%d transitions in %d invocations (SQS batches of up to 10): %d PutMetricData calls, %.2f per transition",
		100, invocations, len(f.Calls())-startCalls, float64(len(f.Calls())-startCalls)/100)
	for i := range 25 {
		if st, _ := h.history(fmt.Sprintf("e%02d", i)); st != engine.StatusDone {
			t.Fatalf("e%02d is %s, want done", i, st)
		}
	}
	want := sums("orders", counters)
	if want[`orders dispatch Machine=Example,State=SecondState,Event=done`] != 25 || want[`orders done Machine=Example,State=ThirdState,Event=pseudo_final`] != 25 {
		t.Fatalf("the engine counted %v; want 25 of each step of Example", want)
	}
	if d := cmp.Diff(want, f.Sums()); d != "" {
		t.Errorf("counters in CloudWatch (-counted +sent):\n%s", d)
	}
	for _, c := range f.Calls() {
		if c.Namespace != "orders" || len(c.Data) == 0 {
			t.Errorf("call %+v: want the namespace orders and data", c)
		}
	}
}

// TestPublisherFailureKeepsCounts: a PutMetricData that fails at the end of
// an invocation fails nothing: the invocation's response and its records'
// fate are those of an invocation whose flush succeeded, and its counts go
// with the next invocation's call, so none is lost.
func TestPublisherFailureKeepsCounts(t *testing.T) {
	var logs string
	run := func(fail bool) (responses []string, sent map[string]float64, calls []cwfake.Call, counted map[string]float64) {
		var h *harness
		f, pub := newPublisher(t, func() *harness { return h })
		counters := engine.NewCounters()
		h = newHarness(t, harnessOpts{batch: true, publisher: pub, counters: counters})
		for i := range 5 {
			h.direct(fmt.Sprintf(`{"command":"start","machine":"Example","correlation_id":"e%d"}`, i))
		}
		if fail {
			f.Fail(2) // the first two invocations' flushes
		}
		for {
			resp, ok := h.pump()
			if !ok {
				break
			}
			responses = append(responses, fmt.Sprintf("%+v", resp))
		}
		for i := range 5 {
			if st, _ := h.history(fmt.Sprintf("e%d", i)); st != engine.StatusDone {
				t.Fatalf("fail=%v: e%d is %s, want done", fail, i, st)
			}
		}
		logs = h.logs.String()
		return responses, f.Sums(), f.Calls(), sums("orders", counters)
	}
	okResp, okSent, _, _ := run(false)
	resp, sent, calls, counted := run(true)
	if d := cmp.Diff(okResp, resp); d != "" {
		t.Errorf("responses with failed flushes differ from those without (-ok +failed):\n%s", d)
	}
	if len(calls) < 3 || !calls[0].Failed || !calls[1].Failed || calls[2].Failed {
		t.Fatalf("calls %+v: want two failed, then sent", calls)
	}
	if d := cmp.Diff(counted, sent); d != "" {
		t.Errorf("counters after two failed flushes (-counted +in CloudWatch):\n%s", d)
	}
	if d := cmp.Diff(okSent, sent); d != "" {
		t.Errorf("CloudWatch's sums with and without failures (-ok +failed):\n%s", d)
	}
	if !strings.Contains(logs, `"msg":"cannot publish the metrics; they are kept for the next invocation"`) {
		t.Errorf("no warning of the failed flush in the logs:\n%s", logs)
	}
}

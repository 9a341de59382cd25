// Package awstest finds the local AWS emulators for integration tests.
//
// Tests find an emulator through the environment the SDK reads
// (AWS_ENDPOINT_URL_<SERVICE>, set by scripts/emulators/emu-start.sh). Without
// it a test skips, except under CI=true, where it fails: CI starts the
// emulators, so a missing one is a broken build, not a reason to pass.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
)

// Endpoint returns the emulator endpoint for service (the SDK's env name:
// "DYNAMODB", "SQS", ...), skipping or failing t when there is none. The
// endpoint must be on 127.0.0.1 or localhost: tests never reach real AWS.
func Endpoint(t testing.TB, service string) string {
	t.Helper()
	name := "AWS_ENDPOINT_URL_" + service
	ep := os.Getenv(name)
	if ep == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI=true: .ci/run starts the emulators (scripts/emulators/emu-start.sh)", name)
		}
		t.Skipf("%s not set: start the emulators (eval \"$(scripts/emulators/emu-start.sh)\")", name)
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
		t.Fatalf("%s=%q: tests talk only to emulators on 127.0.0.1", name, ep)
	}
	return ep
}

// Config returns an SDK configuration for the emulator of service (see
// Endpoint) in us-east-1, with dummy credentials when none are set and the
// catch-all AWS_ENDPOINT_URL pointed at a closed port, so that a client of any
// other service cannot reach real AWS either. m meters it if not nil.
func Config(t testing.TB, service string, m *awsconfig.Meter) aws.Config {
	t.Helper()
	Endpoint(t, service)
	if os.Getenv("AWS_ENDPOINT_URL") == "" {
		t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		t.Setenv("AWS_ACCESS_KEY_ID", "test")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	}
	cfg, err := awsconfig.Load(t.Context(), "us-east-1", m)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Name returns prefix followed by a random suffix, for tables and queues that
// other tests running against the same emulator must not see.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return strings.TrimSuffix(prefix, "-") + "-" + hex.EncodeToString(b)
}

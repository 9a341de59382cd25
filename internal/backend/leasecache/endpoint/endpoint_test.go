package endpoint_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/leasecache/endpoint"
	"github.com/lfsm/lfsm/internal/engine"
)

// TestOpen opens each kind of endpoint on the shared servers and checks that
// it reaches them (a miss, not a connection error).
func TestOpen(t *testing.T) {
	for _, u := range []string{"redis://" + awstest.Addr(t, "REDIS_ADDR") + "/0", "memcached://" + awstest.Addr(t, "MEMCACHED_ADDR")} {
		c, err := endpoint.Open(u)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		_, _, err = c.Acquire(t.Context(), engine.AcquireRequest{CorrelationID: awstest.Name("lfsm-endpoint"), Now: time.Now(), Expires: time.Now().Add(time.Minute)})
		if !errors.Is(err, leasecache.ErrMiss) {
			t.Errorf("Acquire on %s = %v, want ErrMiss", u, err)
		}
		c.Close()
	}
}

func TestOpenBad(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:6379", "http://127.0.0.1:6379", "redis://user:s3cret@host:notaport", "memcached://", "memcached://host"} {
		_, err := endpoint.Open(u)
		if err == nil {
			t.Errorf("Open(%q) accepted it", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v: the password is in the error", u, err)
		}
	}
}

package redis_test

import (
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/redis"
	"github.com/lfsm/lfsm/internal/backend/storetest"
)

// newCache is a cache on addr whose keys no other test shares.
func newCache(t *testing.T, addr string) *redis.Cache {
	t.Helper()
	c, err := redis.New(redis.Options{URL: "redis://" + addr, Prefix: awstest.Name("lfsm-test") + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCache runs the conformance suite on the shared redis-server
// (REDIS_ADDR), with a key prefix per test.
func TestCache(t *testing.T) {
	addr := awstest.Addr(t, "REDIS_ADDR")
	storetest.RunLeaseCache(t, func(t *testing.T) leasecache.Cache { return newCache(t, addr) }, nil)
}

// TestCacheLoss runs the suite on a redis-server of the test's own, whose
// records it loses both ways a node does: FLUSHALL, and a restart without
// persistence (after which the server has forgotten the scripts too).
func TestCacheLoss(t *testing.T) {
	srv := awstest.StartServer(t, "redis-server", awstest.RedisArgs)
	for _, loss := range []struct {
		name string
		lose func(t *testing.T)
	}{
		{"FLUSHALL", func(t *testing.T) {
			c := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
			defer c.Close()
			if err := c.FlushAll(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
		}},
		{"restart", func(t *testing.T) { srv.Restart(t) }},
	} {
		t.Run(loss.name, func(t *testing.T) {
			storetest.RunLeaseCache(t, func(t *testing.T) leasecache.Cache { return newCache(t, srv.Addr) }, loss.lose)
		})
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, u := range []string{"", "http://127.0.0.1:6379", "memcached://127.0.0.1:11211", "redis://user:s3cret@host:notaport", "rediss://user:s3cret@host:6379/x"} {
		_, err := redis.New(redis.Options{URL: u})
		if err == nil {
			t.Errorf("New(%q) accepted it", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("New(%q) = %v: the password is in the error", u, err)
		}
	}
}

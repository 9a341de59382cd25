// Package endpoint opens the lease cache an endpoint URL names (aws.lease-cache,
// LFSM_AWS_LEASE_CACHE): redis:// and rediss:// on Redis or Valkey,
// memcached:// and memcacheds:// on Memcached. It is apart from leasecache
// because it links both clients, which the seam does not need.
package endpoint

import (
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/memcached"
	"github.com/lfsm/lfsm/internal/backend/redis"
)

// Cache is an open lease cache; Close closes its connections.
type Cache interface {
	leasecache.Cache
	io.Closer
}

// Example is the endpoints an error suggests.
const Example = "redis://host:6379/0, rediss://user:password@host:6379, memcached://host:11211 or memcacheds://host:11211"

// Open returns the lease cache rawURL names. It makes no call: a server
// that is down fails the first acquire. Errors never quote the password.
func Open(rawURL string) (Cache, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("lease cache endpoint %s: want %s", Redact(rawURL), Example)
	}
	switch scheme {
	case "redis", "rediss":
		c, err := redis.New(redis.Options{URL: rawURL})
		if err != nil {
			return nil, err
		}
		return c, nil
	case "memcached", "memcacheds":
		c, err := memcached.New(memcached.Options{URL: rawURL})
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("lease cache endpoint %s: unknown scheme %q; want %s", Redact(rawURL), scheme, Example)
}

// Redact is rawURL with its password replaced by xxxxx (or a placeholder
// when it does not parse), for messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(an endpoint that is not a URL)"
	}
	return u.Redacted()
}

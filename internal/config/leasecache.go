package config

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// LeaseCacheURL is aws.lease-cache: the endpoint of the lease cache, one of
//
//	redis://[user:password@]host:port[/db]    Redis or Valkey
//	rediss://[user:password@]host:port[/db]   the same over TLS (ElastiCache in-transit encryption, AUTH)
//	memcached://host:port[,host:port...]      Memcached
//	memcacheds://host:port[,host:port...]     Memcached over TLS
//
// It may carry a password: String and JSON show it redacted, and errors
// never quote it.
type LeaseCacheURL string

// LeaseCacheExample is what an error about aws.lease-cache suggests.
const LeaseCacheExample = "redis://host:6379/0, rediss://user:password@host:6379, memcached://host:11211 or memcacheds://host:11211"

// Check reports what is wrong with the endpoint, naming an example.
func (u LeaseCacheURL) Check() error {
	p, err := url.Parse(string(u))
	if err != nil || p.Scheme == "" {
		return fmt.Errorf("%s is not a URL with a scheme; want %s", u.Redacted(), LeaseCacheExample)
	}
	switch p.Scheme {
	case "redis", "rediss":
		if _, _, err := net.SplitHostPort(p.Host); err != nil || p.Hostname() == "" {
			return fmt.Errorf("%s: want host:port, as in %s", u.Redacted(), LeaseCacheExample)
		}
		if db := strings.Trim(p.Path, "/"); db != "" {
			if n, err := strconv.Atoi(db); err != nil || n < 0 {
				return fmt.Errorf("%s: the path is the database number (/0), not %q", u.Redacted(), p.Path)
			}
		}
	case "memcached", "memcacheds":
		if p.User != nil {
			return fmt.Errorf("%s: Memcached has no AUTH; want %s", u.Redacted(), LeaseCacheExample)
		}
		for _, h := range strings.Split(p.Host, ",") {
			if host, _, err := net.SplitHostPort(h); err != nil || host == "" {
				return fmt.Errorf("%s: server %q is not host:port, as in %s", u.Redacted(), h, LeaseCacheExample)
			}
		}
	default:
		return fmt.Errorf("%s: unknown scheme %q; want %s", u.Redacted(), p.Scheme, LeaseCacheExample)
	}
	return nil
}

// Redacted is the endpoint with its password replaced by xxxxx.
func (u LeaseCacheURL) Redacted() string {
	p, err := url.Parse(string(u))
	if err != nil {
		return "(a lease cache endpoint that is not a URL)"
	}
	return p.Redacted()
}

// String is Redacted: a password never reaches a log line or an output.
func (u LeaseCacheURL) String() string { return u.Redacted() }

// MarshalJSON writes the redacted endpoint.
func (u LeaseCacheURL) MarshalJSON() ([]byte, error) { return json.Marshal(u.Redacted()) }

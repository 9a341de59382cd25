package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLeaseCacheURL(t *testing.T) {
	for _, u := range []string{
		"redis://127.0.0.1:6379", "redis://cache.example:6379/0", "rediss://default:s3cret@cache.example:6379/1",
		"memcached://127.0.0.1:11211", "memcached://a:11211,b:11211", "memcacheds://cache.example:11211",
	} {
		if err := LeaseCacheURL(u).Check(); err != nil {
			t.Errorf("Check(%q) = %v, want ok", u, err)
		}
	}
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:6379", `unknown scheme "http"`},
		{"127.0.0.1:6379", "not a URL with a scheme"},
		{"cache.example:6379", "unknown scheme"},
		{"redis://", "want host:port"},
		{"redis://host", "want host:port"},
		{"redis://host:6379/x", "database number"},
		{"rediss://user:s3cret@host/x", "want host:port"},
		{"memcached://host", `server "host" is not host:port`},
		{"memcached://user:s3cret@host:11211", "no AUTH"},
	} {
		err := LeaseCacheURL(tc.url).Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%q) = %v, want an error containing %q", tc.url, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Check(%q) = %v: the password is in the error", tc.url, err)
		}
		if !strings.Contains(err.Error(), "redis://host:6379/0") && !strings.Contains(err.Error(), "database number") && !strings.Contains(err.Error(), "no AUTH") {
			t.Errorf("Check(%q) = %v: no example", tc.url, err)
		}
	}
}

func TestLeaseCacheURLRedacted(t *testing.T) {
	a := AWS{StoreTableARN: "arn:aws:dynamodb:us-east-1:123456789012:table/t", LeaseCache: "rediss://default:s3cret@cache.example:6379"}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") || !strings.Contains(string(b), "rediss://default:xxxxx@cache.example:6379") {
		t.Errorf("JSON of the aws settings = %s, want the password redacted", b)
	}
	r, err := a.Resolve()
	if err != nil || r.LeaseCache != a.LeaseCache {
		t.Errorf("Resolve = %+v, %v; want the lease cache kept", r.LeaseCache, err)
	}
	a.LeaseCache = "rediss://default:s3cret@cache.example"
	if _, err := a.Resolve(); err == nil || !strings.Contains(err.Error(), "aws.lease-cache") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Resolve of a bad endpoint = %v, want an error naming aws.lease-cache without the password", err)
	}
}

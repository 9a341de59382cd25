package memcached_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/lfsm/lfsm/internal/backend/awstest"
	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/backend/memcached"
	"github.com/lfsm/lfsm/internal/backend/storetest"
)

func newCache(t *testing.T, url string, cfg *tls.Config) *memcached.Cache {
	t.Helper()
	c, err := memcached.New(memcached.Options{URL: url, TLS: cfg, Prefix: awstest.Name("lfsm-test") + ":"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCache runs the conformance suite on the shared memcached
// (MEMCACHED_ADDR), with a key prefix per test.
func TestCache(t *testing.T) {
	addr := awstest.Addr(t, "MEMCACHED_ADDR")
	storetest.RunLeaseCache(t, func(t *testing.T) leasecache.Cache { return newCache(t, "memcached://"+addr, nil) }, nil)
}

// TestCacheLoss runs the suite on a memcached of the test's own, whose
// records it loses by flush_all and by a restart.
func TestCacheLoss(t *testing.T) {
	srv := awstest.StartServer(t, "memcached", awstest.MemcachedArgs)
	for _, loss := range []struct {
		name string
		lose func(t *testing.T)
	}{
		{"flush_all", func(t *testing.T) {
			if err := memcache.New(srv.Addr).FlushAll(); err != nil {
				t.Fatal(err)
			}
		}},
		{"restart", func(t *testing.T) { srv.Restart(t) }},
	} {
		t.Run(loss.name, func(t *testing.T) {
			storetest.RunLeaseCache(t, func(t *testing.T) leasecache.Cache { return newCache(t, "memcached://"+srv.Addr, nil) }, loss.lose)
		})
	}
}

// TestTLS runs the suite over memcacheds:// through a TLS-terminating
// proxy in front of the shared memcached (the Debian build has no TLS of its
// own; ElastiCache terminates TLS in the node), so the wrapped dialer is what
// carries every call. The proxy counts its TLS connections to prove it.
func TestTLS(t *testing.T) {
	addr := awstest.Addr(t, "MEMCACHED_ADDR")
	cert := httptest.NewTLSServer(nil) // only for its self-signed certificate
	cert.Close()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cert.TLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var conns atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).HandshakeContext(t.Context()); err != nil {
					return
				}
				conns.Add(1)
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(cert.Certificate())
	storetest.RunLeaseCache(t, func(t *testing.T) leasecache.Cache {
		return newCache(t, "memcacheds://"+l.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "example.com"})
	}, nil)
	if conns.Load() == 0 {
		t.Error("no connection went through the TLS proxy")
	}
	// A client that does not trust the proxy's certificate gets nothing.
	c := newCache(t, "memcacheds://"+l.Addr().String(), &tls.Config{ServerName: "example.com"})
	if _, err := c.Get(t.Context(), "c"); err == nil || errors.Is(err, leasecache.ErrMiss) {
		t.Errorf("Get over an untrusted TLS connection = %v, want a certificate error", err)
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, u := range []string{"", "redis://127.0.0.1:6379", "memcached://", "memcached://127.0.0.1"} {
		if _, err := memcached.New(memcached.Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted it", u)
		}
	}
}

// TestLongIDs keys ids Memcached cannot take as they are (too long, spaces)
// by their hash, without two ids meeting.
func TestLongIDs(t *testing.T) {
	c := newCache(t, "memcached://"+awstest.Addr(t, "MEMCACHED_ADDR"), nil)
	long := string(make([]byte, 300))
	ids := []string{long, long + "x", "with space", "#with space"}
	for i, id := range ids {
		if _, err := c.Seed(t.Context(), id, leasecache.NewRecord(int64(i))); err != nil {
			t.Fatalf("Seed %q: %v", id, err)
		}
	}
	for i, id := range ids {
		rec, err := c.Get(t.Context(), id)
		if err != nil || rec.Epoch != int64(i) {
			t.Errorf("Get %q = epoch %d, %v; want epoch %d", id, rec.Epoch, err, i)
		}
	}
}

// Package memcached is the lease cache (leasecache.Cache) on Memcached, one
// of ElastiCache's engines: one item per execution holding its
// leasecache.Record as JSON, changed only by compare-and-swap, so that the
// acquire rule, the fence increment and the done marker are each one atomic
// step (a lost race reads the item again and reapplies the rule). The client
// has no TLS of its own; memcacheds:// wraps its dialer in crypto/tls. See
// docs/design.md, "Lease caches".
package memcached

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/engine"
)

// DefaultTTL is how long a record outlives its last write (an expired
// record is a cache miss: the next acquire reseeds it).
const DefaultTTL = 24 * time.Hour

// maxRounds bounds the compare-and-swap retries of one call: each lost round
// means another writer of the same execution won, which only a duplicate
// storm makes frequent.
const maxRounds = 64

// Options configure a Cache.
type Options struct {
	// URL is the endpoint: memcached://host:port[,host:port...], or
	// memcacheds:// for TLS (ElastiCache with in-transit encryption).
	URL string
	// TLS configures memcacheds:// (nil: the system roots, the host's name).
	TLS *tls.Config
	// Prefix starts every key ("lfsm:" when empty).
	Prefix string
	// TTL is a record's lifetime after its last write (DefaultTTL when 0;
	// at most 30 days, Memcached's limit for relative expirations).
	TTL time.Duration
	// Timeout is the socket timeout (memcache.DefaultTimeout when 0).
	Timeout time.Duration
}

// Cache is a leasecache.Cache on Memcached. It is safe for concurrent use.
type Cache struct {
	c      *memcache.Client
	prefix string
	ttl    int32
}

var _ leasecache.Cache = (*Cache)(nil)

// New returns a Cache on the servers opts.URL names.
func New(opts Options) (*Cache, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "memcached" && u.Scheme != "memcacheds") || u.Host == "" {
		return nil, fmt.Errorf("memcached endpoint %q: want memcached://host:port[,host:port...] or memcacheds://...", opts.URL)
	}
	servers := strings.Split(u.Host, ",")
	for _, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("memcached endpoint %q: server %q: %w", opts.URL, s, err)
		}
	}
	c := &Cache{c: memcache.New(servers...), prefix: opts.Prefix}
	c.c.Timeout = opts.Timeout
	c.c.MaxIdleConns = 16
	if u.Scheme == "memcacheds" {
		c.c.DialContext = tlsDialer(opts.TLS)
	}
	if c.prefix == "" {
		c.prefix = "lfsm:"
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	c.ttl = int32(min(ttl, 30*24*time.Hour) / time.Second)
	return c, nil
}

// tlsDialer dials TLS: the client speaks its protocol over whatever
// connection its DialContext returns.
func tlsDialer(cfg *tls.Config) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c := cfg.Clone()
		if c == nil {
			c = &tls.Config{}
		}
		if c.ServerName == "" {
			host, _, _ := net.SplitHostPort(address)
			c.ServerName = host
		}
		d := tls.Dialer{Config: c}
		return d.DialContext(ctx, network, address)
	}
}

// Close closes the client's idle connections.
func (c *Cache) Close() error { return c.c.Close() }

// key is id's item key. Memcached keys are at most 250 bytes with no space
// or control character, so other ids are keyed by "#" and their SHA-256;
// ids starting with "#" are hashed too, so the two forms never meet.
func (c *Cache) key(id string) string {
	k := c.prefix + id
	if len(k) <= 250 && !strings.HasPrefix(id, "#") &&
		!strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return k
	}
	return fmt.Sprintf("%s#%x", c.prefix, sha256.Sum256([]byte(id)))
}

// Seed implements leasecache.Cache.
func (c *Cache) Seed(ctx context.Context, id string, rec leasecache.Record) (leasecache.Record, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return leasecache.Record{}, fmt.Errorf("seed the lease record of %s: %w", id, err)
	}
	it := &memcache.Item{Key: c.key(id), Value: b, Expiration: c.ttl}
	err = c.c.Add(it)
	if err != nil && !errors.Is(err, memcache.ErrNotStored) {
		// A dead pooled connection (see read). Adding again is safe: if the
		// first add landed, this one is not stored, and the record read
		// back is ours.
		err = c.c.Add(it)
	}
	switch {
	case err == nil:
		return rec, nil
	case errors.Is(err, memcache.ErrNotStored):
		got, _, err := c.read(id)
		if err != nil {
			return leasecache.Record{}, fmt.Errorf("seed the lease record of %s: %w", id, err)
		}
		return got, nil
	default:
		return leasecache.Record{}, fmt.Errorf("seed the lease record of %s: %w", id, err)
	}
}

// read returns id's record and item (for its CAS id), or ErrMiss.
func (c *Cache) read(id string) (leasecache.Record, *memcache.Item, error) {
	it, err := c.c.Get(c.key(id))
	if err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		// The client pools connections and finds one dead (a restarted or
		// replaced node) only by using it. A read is idempotent, and every
		// call starts with one: try once more, on a new connection.
		it, err = c.c.Get(c.key(id))
	}
	if errors.Is(err, memcache.ErrCacheMiss) {
		return leasecache.Record{}, nil, leasecache.ErrMiss
	}
	if err != nil {
		return leasecache.Record{}, nil, err
	}
	var rec leasecache.Record
	if err := json.Unmarshal(it.Value, &rec); err != nil {
		return leasecache.Record{}, nil, fmt.Errorf("cached record: %w", err)
	}
	return rec, it, nil
}

// update applies f to id's record with compare-and-swap until it wins, f
// refuses (its error is returned and nothing written), or ctx ends.
func (c *Cache) update(ctx context.Context, id string, f func(*leasecache.Record) error) (leasecache.Record, error) {
	for range maxRounds {
		if err := ctx.Err(); err != nil {
			return leasecache.Record{}, err
		}
		rec, it, err := c.read(id)
		if err != nil {
			return leasecache.Record{}, err
		}
		before := rec
		if err := f(&rec); err != nil {
			return before, err
		}
		if it.Value, err = json.Marshal(rec); err != nil {
			return leasecache.Record{}, err
		}
		it.Expiration = c.ttl
		err = c.c.CompareAndSwap(it)
		switch {
		case err == nil:
			return rec, nil
		case errors.Is(err, memcache.ErrCASConflict):
			continue // another writer won this round: read again
		case errors.Is(err, memcache.ErrNotStored), errors.Is(err, memcache.ErrCacheMiss):
			return leasecache.Record{}, leasecache.ErrMiss // deleted or evicted under us
		default:
			return leasecache.Record{}, err
		}
	}
	return leasecache.Record{}, fmt.Errorf("%d compare-and-swap rounds lost to other writers", maxRounds)
}

// Acquire implements leasecache.Cache.
func (c *Cache) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, leasecache.Record, error) {
	var l engine.Lease
	rec, err := c.update(ctx, q.CorrelationID, func(r *leasecache.Record) (err error) {
		l, err = leasecache.Grant(r, q)
		return err
	})
	if err != nil {
		if isRule(err) {
			return engine.Lease{}, rec, err
		}
		return engine.Lease{}, rec, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, err)
	}
	return l, rec, nil
}

// isRule reports whether err is a refusal of the rules (already worded).
func isRule(err error) bool {
	return errors.Is(err, engine.ErrDuplicate) || errors.Is(err, engine.ErrLeaseHeld) ||
		errors.Is(err, engine.ErrInactive) || errors.Is(err, engine.ErrFenceLost)
}

// Renew implements leasecache.Cache.
func (c *Cache) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	_, err := c.update(ctx, r.CorrelationID, func(rec *leasecache.Record) error { return leasecache.Extend(rec, r) })
	if err != nil && !isRule(err) {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, err)
	}
	return err
}

// Settle implements leasecache.Cache.
func (c *Cache) Settle(ctx context.Context, s leasecache.Settlement) error {
	_, err := c.update(ctx, s.CorrelationID, func(rec *leasecache.Record) error { return leasecache.Settle(rec, s) })
	if err != nil && !isRule(err) {
		return fmt.Errorf("settle %s step %d fence %d: %w", s.CorrelationID, s.Step, s.Fence, err)
	}
	return err
}

// Forget implements leasecache.Cache.
func (c *Cache) Forget(ctx context.Context, id string) error {
	if err := c.c.Delete(c.key(id)); err != nil && !errors.Is(err, memcache.ErrCacheMiss) {
		return fmt.Errorf("forget the lease record of %s: %w", id, err)
	}
	return nil
}

// Get implements leasecache.Cache.
func (c *Cache) Get(ctx context.Context, id string) (leasecache.Record, error) {
	rec, _, err := c.read(id)
	if err != nil {
		return leasecache.Record{}, fmt.Errorf("read the lease record of %s: %w", id, err)
	}
	return rec, nil
}

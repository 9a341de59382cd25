package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/engine"
)

// DefaultTTL is how long a record outlives its last write. An expired record
// is a cache miss like any other loss: the next acquire reseeds it from the
// durable store.
const DefaultTTL = 24 * time.Hour

// Options configure a Cache.
type Options struct {
	// URL is the endpoint: redis://[user:password@]host:port[/db] or
	// rediss:// for TLS (ElastiCache with in-transit encryption and AUTH).
	// Ignored when Client is set.
	URL string
	// Client, if set, is used instead of one built from URL (a cluster
	// client, say). The Cache does not close it.
	Client goredis.UniversalClient
	// Prefix starts every key ("lfsm:" when empty).
	Prefix string
	// TTL is a record's lifetime after its last write (DefaultTTL when 0).
	TTL time.Duration
}

// Cache is a leasecache.Cache on Redis. It is safe for concurrent use.
type Cache struct {
	c      goredis.UniversalClient
	own    bool
	prefix string
	ttl    string
}

var _ leasecache.Cache = (*Cache)(nil)

// New returns a Cache on the server opts names.
func New(opts Options) (*Cache, error) {
	c := &Cache{c: opts.Client, prefix: opts.Prefix}
	if c.c == nil {
		o, err := goredis.ParseURL(opts.URL)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // its text quotes the URL, password and all
			}
			return nil, fmt.Errorf("redis endpoint %s: %v (want redis://[user:password@]host:port or rediss://...)", redact(opts.URL), err)
		}
		c.c, c.own = goredis.NewClient(o), true
	}
	if c.prefix == "" {
		c.prefix = "lfsm:"
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	c.ttl = strconv.FormatInt(int64((ttl+time.Second-1)/time.Second), 10)
	return c, nil
}

// redact drops the password from an endpoint for error messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(an endpoint that is not a URL)"
	}
	return p.Redacted()
}

// Close closes the client New built (not one passed in Options.Client).
func (c *Cache) Close() error {
	if c.own {
		return c.c.Close()
	}
	return nil
}

// key is id's hash; the braces make id the cluster hash tag.
func (c *Cache) key(id string) string { return c.prefix + "{" + id + "}" }

// fields is the order in which the scripts return a record.
var fields = []any{"ep", "f", "ds", "ls", "le", "fs", "fa", "to", "st", "rs", "cf", "rt", "ga"}

// The scripts. A record is a hash of the fields above; times are
// leasecache.FormatTime strings, compared as strings. Every script returns
// {status, record...}, status "miss" when the hash does not exist.
const readRecord = `
local function read(k)
  return redis.call('HMGET', k, 'ep','f','ds','ls','le','fs','fa','to','st','rs','cf','rt','ga')
end
`

// acquireScript is leasecache.Grant in Lua. ARGV: step, attempt, now,
// expires, restarted, ttl. A refusal returns "no" and the record, from which
// Go's Grant rebuilds the refusal's error (the same rule on the same record).
var acquireScript = goredis.NewScript(readRecord + `
local k = KEYS[1]
local r = read(k)
if not r[1] then return {'miss'} end
local step, att = tonumber(ARGV[1]), tonumber(ARGV[2])
local ds, ls, le, fs, fa, to = tonumber(r[3]), tonumber(r[4]), r[5], tonumber(r[6]), tonumber(r[7]), tonumber(r[8])
local zero = '` + leasecache.ZeroTime + `'
local refused = r[9] == '1' or ARGV[5] < r[10] or ds >= step
  or (le ~= zero and ARGV[3] < le and ls >= step)
  or (fs == step and fa >= att)
if refused then
  table.insert(r, 1, 'no')
  return r
end
if le ~= zero and ls == step then to = to + 1 elseif ls ~= step then to = 0 end
redis.call('HINCRBY', k, 'f', 1)
redis.call('HSET', k, 'ls', ARGV[1], 'le', ARGV[4], 'to', to, 'rt', ARGV[2], 'ga', ARGV[3])
redis.call('EXPIRE', k, ARGV[6])
r = read(k)
table.insert(r, 1, 'ok')
return r
`)

// renewScript is leasecache.Extend. ARGV: fence, expires, ttl.
var renewScript = goredis.NewScript(readRecord + `
local k = KEYS[1]
local r = read(k)
if not r[1] then return {'miss'} end
if r[2] ~= ARGV[1] or r[5] == '` + leasecache.ZeroTime + `' then return {'lost'} end
redis.call('HSET', k, 'le', ARGV[2])
redis.call('EXPIRE', k, ARGV[3])
return {'ok'}
`)

// settleScript is leasecache.Settle. ARGV: fence, step, attempt, retry
// (1 or 0), stopped (1 or 0), ttl.
var settleScript = goredis.NewScript(readRecord + `
local k = KEYS[1]
local r = read(k)
if not r[1] then return {'miss'} end
if r[2] ~= ARGV[1] or r[5] == '` + leasecache.ZeroTime + `' then return {'lost'} end
local step, att = tonumber(ARGV[2]), tonumber(ARGV[3])
if ARGV[4] == '1' then
  if tonumber(r[6]) ~= step then
    redis.call('HSET', k, 'fs', ARGV[2], 'fa', ARGV[3])
  elseif att > tonumber(r[7]) then
    redis.call('HSET', k, 'fa', ARGV[3])
  end
elseif step > tonumber(r[3]) then
  redis.call('HSET', k, 'ds', ARGV[2])
end
redis.call('HSET', k, 'le', '` + leasecache.ZeroTime + `', 'st', ARGV[5], 'cf', ARGV[1])
redis.call('EXPIRE', k, ARGV[6])
return {'ok'}
`)

// seedScript stores a record unless one exists, and returns the one held.
// ARGV: the fields in order, then ttl.
var seedScript = goredis.NewScript(readRecord + `
local k = KEYS[1]
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 'ep',ARGV[1],'f',ARGV[2],'ds',ARGV[3],'ls',ARGV[4],'le',ARGV[5],'fs',ARGV[6],'fa',ARGV[7],'to',ARGV[8],'st',ARGV[9],'rs',ARGV[10],'cf',ARGV[11],'rt',ARGV[12],'ga',ARGV[13])
  redis.call('EXPIRE', k, ARGV[14])
end
local r = read(k)
table.insert(r, 1, 'ok')
return r
`)

// Seed implements leasecache.Cache.
func (c *Cache) Seed(ctx context.Context, id string, rec leasecache.Record) (leasecache.Record, error) {
	args := append(encode(rec), c.ttl)
	res, err := seedScript.Run(ctx, c.c, []string{c.key(id)}, args...).StringSlice()
	if err != nil {
		return leasecache.Record{}, fmt.Errorf("seed the lease record of %s: %w", id, err)
	}
	got, err := decode(res[1:])
	if err != nil {
		return leasecache.Record{}, fmt.Errorf("seed the lease record of %s: %w", id, err)
	}
	return got, nil
}

// Acquire implements leasecache.Cache.
func (c *Cache) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, leasecache.Record, error) {
	res, err := c.run(ctx, acquireScript, q.CorrelationID, strconv.Itoa(q.Step), strconv.Itoa(q.Retries),
		leasecache.FormatTime(q.Now), leasecache.FormatTime(q.Expires), leasecache.FormatTime(q.Restarted), c.ttl)
	if err != nil {
		return engine.Lease{}, leasecache.Record{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, err)
	}
	rec, err := decode(res[1:])
	if err != nil {
		return engine.Lease{}, leasecache.Record{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, err)
	}
	if res[0] == "ok" {
		return engine.Lease{Fence: rec.Fence, Takeovers: rec.Takeovers, Expires: q.Expires}, rec, nil
	}
	before := rec
	if _, err := leasecache.Grant(&rec, q); err != nil {
		return engine.Lease{}, before, err
	}
	return engine.Lease{}, before, fmt.Errorf("acquire %s step %d: the script refused a grant the rule allows (record %+v)", q.CorrelationID, q.Step, before)
}

// Renew implements leasecache.Cache.
func (c *Cache) Renew(ctx context.Context, r engine.LeaseRenewal) error {
	res, err := c.run(ctx, renewScript, r.CorrelationID, strconv.FormatInt(r.Fence, 10), leasecache.FormatTime(r.Expires), c.ttl)
	if err != nil {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, err)
	}
	if res[0] == "lost" {
		return fmt.Errorf("renew the lease of %s fence %d: %w", r.CorrelationID, r.Fence, engine.ErrFenceLost)
	}
	return nil
}

// Settle implements leasecache.Cache.
func (c *Cache) Settle(ctx context.Context, s leasecache.Settlement) error {
	res, err := c.run(ctx, settleScript, s.CorrelationID, strconv.FormatInt(s.Fence, 10), strconv.Itoa(s.Step),
		strconv.Itoa(s.Retries), flag(s.Outcome == engine.OutcomeRetry), flag(s.Stopped), c.ttl)
	if err != nil {
		return fmt.Errorf("settle %s step %d fence %d: %w", s.CorrelationID, s.Step, s.Fence, err)
	}
	if res[0] == "lost" {
		return fmt.Errorf("settle %s step %d fence %d: %w", s.CorrelationID, s.Step, s.Fence, engine.ErrFenceLost)
	}
	return nil
}

// Forget implements leasecache.Cache.
func (c *Cache) Forget(ctx context.Context, id string) error {
	if err := c.c.Del(ctx, c.key(id)).Err(); err != nil {
		return fmt.Errorf("forget the lease record of %s: %w", id, err)
	}
	return nil
}

// Get implements leasecache.Cache.
func (c *Cache) Get(ctx context.Context, id string) (leasecache.Record, error) {
	vals, err := c.c.HMGet(ctx, c.key(id), fields2...).Result()
	if err != nil {
		return leasecache.Record{}, fmt.Errorf("read the lease record of %s: %w", id, err)
	}
	if vals[0] == nil {
		return leasecache.Record{}, fmt.Errorf("read the lease record of %s: %w", id, leasecache.ErrMiss)
	}
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i], _ = v.(string)
	}
	rec, err := decode(s)
	if err != nil {
		return leasecache.Record{}, fmt.Errorf("read the lease record of %s: %w", id, err)
	}
	return rec, nil
}

var fields2 = func() []string {
	s := make([]string, len(fields))
	for i, f := range fields {
		s[i] = f.(string)
	}
	return s
}()

// run runs a script on id's key and returns its reply as strings; a "miss"
// is leasecache.ErrMiss. Script.Run falls back from EVALSHA to EVAL, so a
// restarted server (which forgot the scripts) needs no reload.
func (c *Cache) run(ctx context.Context, s *goredis.Script, id string, args ...any) ([]string, error) {
	res, err := s.Run(ctx, c.c, []string{c.key(id)}, args...).StringSlice()
	if errors.Is(err, goredis.Nil) {
		err = nil // a nil entry of the reply (a field the hash lacks) is decoded below
	}
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, errors.New("empty reply from the script")
	}
	if res[0] == "miss" {
		return nil, leasecache.ErrMiss
	}
	return res, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// encode is rec's fields in the order of fields.
func encode(rec leasecache.Record) []any {
	return []any{
		strconv.FormatInt(rec.Epoch, 10), strconv.FormatInt(rec.Fence, 10), strconv.Itoa(rec.DoneStep),
		strconv.Itoa(rec.LeaseStep), leasecache.FormatTime(rec.LeaseExpires), strconv.Itoa(rec.FailedStep),
		strconv.Itoa(rec.FailedAttempt), strconv.Itoa(rec.Takeovers), flag(rec.Stopped),
		leasecache.FormatTime(rec.Restarted), strconv.FormatInt(rec.CommitFence, 10),
		strconv.Itoa(rec.Retries), leasecache.FormatTime(rec.Granted),
	}
}

// decode reads a record from its fields in the order of fields.
func decode(s []string) (leasecache.Record, error) {
	if len(s) != len(fields) {
		return leasecache.Record{}, fmt.Errorf("cached record has %d fields, want %d", len(s), len(fields))
	}
	var rec leasecache.Record
	var err error
	ints := []struct {
		i int
		p *int64
	}{{0, &rec.Epoch}, {1, &rec.Fence}, {10, &rec.CommitFence}}
	for _, f := range ints {
		if *f.p, err = strconv.ParseInt(s[f.i], 10, 64); err != nil {
			return rec, fmt.Errorf("cached field %v: %w", fields[f.i], err)
		}
	}
	small := []struct {
		i int
		p *int
	}{{2, &rec.DoneStep}, {3, &rec.LeaseStep}, {5, &rec.FailedStep}, {6, &rec.FailedAttempt}, {7, &rec.Takeovers}, {11, &rec.Retries}}
	if s[11] == "" {
		s[11] = "0" // a record seeded before the field existed
	}
	if s[12] == "" {
		s[12] = leasecache.ZeroTime
	}
	for _, f := range small {
		if *f.p, err = strconv.Atoi(s[f.i]); err != nil {
			return rec, fmt.Errorf("cached field %v: %w", fields[f.i], err)
		}
	}
	if rec.LeaseExpires, err = leasecache.ParseTime(s[4]); err != nil {
		return rec, err
	}
	if rec.Restarted, err = leasecache.ParseTime(s[9]); err != nil {
		return rec, err
	}
	if rec.Granted, err = leasecache.ParseTime(s[12]); err != nil {
		return rec, err
	}
	rec.Stopped = s[8] == "1"
	return rec, nil
}

package dynamodb

import (
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
)

// The lease store's failover (Options.SecondaryCache; docs/design.md,
// "Failover"). A lease store must not fail over call by call: a grant whose
// response was lost may stand on the primary while the secondary grants the
// same step, and both would commit. So an execution's lease store is
// recorded on its item (lc: absent for the primary, "s" for the secondary)
// and in its messages (lease_primary, the Acquire's hint), and changes only
// by a reseed into the other store, whose epoch bump on the item makes every
// grant of the earlier epoch, on either store, fail the commit's guard.

// side is a lease store: the primary or the secondary cache.
type side int

const (
	primary side = iota
	secondary
)

// leaseSecondary is lc's value for the secondary.
const leaseSecondary = "s"

func (sd side) attr() string {
	if sd == secondary {
		return leaseSecondary
	}
	return "p"
}

func (sd side) String() string {
	if sd == secondary {
		return "secondary"
	}
	return "primary"
}

// cacheOf is the lease store sd (the primary without a secondary).
func (s *Store) cacheOf(sd side) leasecache.Cache {
	if sd == secondary && s.cache2 != nil {
		return s.cache2
	}
	return s.cache
}

// sideOf is the lease store execution item r records.
func sideOf(r record) side {
	if r.secondary {
		return secondary
	}
	return primary
}

// rememberSide notes which lease store granted id's fence, for its renewals
// and commit.
func (s *Store) rememberSide(id string, fence int64, sd side) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sides) > 100_000 { // leases never committed
		clear(s.sides)
	}
	s.sides[leaseKey{id, fence}] = sd
}

// sideOfGrant is the lease store that granted id's fence (the primary when
// this process did not grant it: a grant elsewhere, or no secondary); done
// forgets it.
func (s *Store) sideOfGrant(id string, fence int64, done bool) side {
	if s.cache2 == nil {
		return primary
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := leaseKey{id, fence}
	sd := s.sides[k]
	if done {
		delete(s.sides, k)
	}
	return sd
}

// CacheFailover tunes when a lease cache that keeps failing is left: after
// Threshold failed calls in a row (3) it is skipped for Cooldown (30 s), so
// messages that name it switch to the other store without a call to it.
type CacheFailover struct {
	Threshold int
	Cooldown  time.Duration
	// Clock tells the time (time.Now when nil).
	Clock func() time.Time
}

// cacheHealth is one lease store's breaker, in this process.
type cacheHealth struct {
	o         CacheFailover
	mu        sync.Mutex
	failures  int
	openUntil time.Time
}

func newCacheHealth(o CacheFailover) *cacheHealth {
	if o.Threshold <= 0 {
		o.Threshold = 3
	}
	if o.Cooldown <= 0 {
		o.Cooldown = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &cacheHealth{o: o}
}

func (h *cacheHealth) up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.o.Clock().Before(h.openUntil)
}

func (h *cacheHealth) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.failures, h.openUntil = 0, time.Time{}
		return
	}
	h.failures++
	if h.failures >= h.o.Threshold {
		h.openUntil = h.o.Clock().Add(h.o.Cooldown)
	}
}

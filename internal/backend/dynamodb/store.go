package dynamodb

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/backend/leasecache"
	"github.com/lfsm/lfsm/internal/engine"
)

// API is the part of the DynamoDB client the store calls (*dynamodb.Client
// has it).
type API interface {
	GetItem(ctx context.Context, in *ddb.GetItemInput, opts ...func(*ddb.Options)) (*ddb.GetItemOutput, error)
	PutItem(ctx context.Context, in *ddb.PutItemInput, opts ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *ddb.UpdateItemInput, opts ...func(*ddb.Options)) (*ddb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *ddb.DeleteItemInput, opts ...func(*ddb.Options)) (*ddb.DeleteItemOutput, error)
	Query(ctx context.Context, in *ddb.QueryInput, opts ...func(*ddb.Options)) (*ddb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *ddb.BatchGetItemInput, opts ...func(*ddb.Options)) (*ddb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *ddb.BatchWriteItemInput, opts ...func(*ddb.Options)) (*ddb.BatchWriteItemOutput, error)
}

// Options configure a Store.
type Options struct {
	// Client talks to DynamoDB in the table's region.
	Client API
	// Table is the table's name (or ARN).
	Table string
	// Queue and Retrier, when set, make the Store the engine's Queue and
	// Retrier as well (it forwards to them) and so its StepCommitter: the
	// engine then ends a step with CommitStep, which commits first and sends
	// after (docs/design.md, "The DynamoDB store").
	Queue   engine.Queue
	Retrier engine.Retrier
	// TransactCommit makes every CommitStep one TransactWriteItems of the
	// step item and the execution's update (then the send): a transition is
	// three calls instead of four, at twice the write units of the two items
	// (docs/benchmarks.md). With a Queue that is an ItemSender (the
	// DynamoDB-stream dispatch) commits are transactions anyway, with the
	// message in them.
	TransactCommit bool
	// Cache, when set, keeps every execution's lease, fence and done marker
	// (the acquire rule) on a cache server (Redis, Memcached) instead of the
	// execution item, so that Acquire writes nothing to DynamoDB; status,
	// checkpoint and history stay here, and the commit is guarded by the
	// epoch kept on the execution item (docs/design.md, "Lease caches").
	Cache leasecache.Cache
	// SecondaryCache, when set with Cache, is the secondary lease store
	// (REFERENCE.md §4). It is not a call-by-call failover: an execution's
	// lease store is recorded on its item (lc) and changes only by a fenced
	// switch, the epoch bump a reseed makes, which the commit's guard
	// checks; new executions take the primary while it is healthy
	// (docs/design.md, "Failover").
	SecondaryCache leasecache.Cache
	// CacheFailover tunes when a failing lease cache is skipped.
	CacheFailover CacheFailover
	// Retention, when positive, makes DynamoDB's TTL delete a finished
	// execution (done, failed or stopped) and its items Retention after it
	// finished, and leaves a tombstone so that its id is never run again
	// (docs/design.md, "Retention by TTL and the tombstone rule"). It costs
	// no call and no write unit per transition; the finishing commit writes
	// the tombstone in the call that writes its step item. Zero keeps
	// executions until lfsm prune deletes them.
	Retention time.Duration
	// hook, if set, is called at the named points of a write sequence, so
	// that tests can interleave concurrent consumers deterministically.
	hook func(point string, c engine.Commit)
}

// Store is the execution store on DynamoDB. It is safe for concurrent use.
type Store struct {
	c       API
	table   *string
	q       engine.Queue
	r       engine.Retrier
	hook    func(string, engine.Commit)
	txAll   bool
	cache   leasecache.Cache
	cache2  leasecache.Cache
	health  [2]*cacheHealth
	sides   map[leaseKey]side
	ret     time.Duration
	dropSeq atomic.Int64
	stats   struct{ grants, reseeds, refused, switches atomic.Int64 }

	// prev remembers, per granted lease, the fence of the execution's last
	// commit when it was granted (Acquire reads it for free with ALL_NEW),
	// which the commit links its step item to.
	mu   sync.Mutex
	prev map[leaseKey]grant
}

// grant is what a granted lease remembers for its commit: the fence of the
// execution's last commit when it was granted, and its takeover count.
type grant struct {
	committed int64
	takeovers int
}

type leaseKey struct {
	id    string
	fence int64
}

var (
	_ engine.Store         = (*Store)(nil)
	_ engine.DropRecorder  = (*Store)(nil)
	_ engine.Pruner        = (*Store)(nil)
	_ engine.HistoryPager  = (*Store)(nil)
	_ engine.StepCommitter = (*Store)(nil)
	_ engine.Queue         = (*Store)(nil)
	_ engine.Retrier       = (*Store)(nil)
)

// New returns a Store on o.Table.
func New(o Options) (*Store, error) {
	if o.Client == nil || o.Table == "" {
		return nil, errors.New("dynamodb store: no client or table")
	}
	if o.Retention < 0 {
		return nil, fmt.Errorf("dynamodb store: negative retention %s", o.Retention)
	}
	if o.SecondaryCache != nil && o.Cache == nil {
		return nil, errors.New("dynamodb store: a secondary lease cache needs a primary (Options.Cache)")
	}
	s := &Store{c: o.Client, table: aws.String(o.Table), q: o.Queue, r: o.Retrier, hook: o.hook, txAll: o.TransactCommit, cache: o.Cache, ret: o.Retention, prev: map[leaseKey]grant{}}
	if o.SecondaryCache != nil {
		s.cache2, s.sides = o.SecondaryCache, map[leaseKey]side{}
		s.health = [2]*cacheHealth{newCacheHealth(o.CacheFailover), newCacheHealth(o.CacheFailover)}
	}
	s.dropSeq.Store(time.Now().UnixNano())
	return s, nil
}

func (s *Store) at(point string, c engine.Commit) {
	if s.hook != nil {
		s.hook(point, c)
	}
}

const (
	capacity = types.ReturnConsumedCapacityIndexes
)

func names(ks ...string) map[string]string {
	m := make(map[string]string, len(ks))
	for _, k := range ks {
		m["#"+k] = k
	}
	return m
}

// Create implements engine.Store: one conditional PutItem.
func (s *Store) Create(ctx context.Context, e engine.Execution) error {
	if e.CorrelationID == "" {
		return errors.New("create execution: empty correlation id")
	}
	if e.Status == "" {
		e.Status = engine.StatusRunning
	}
	e.DoneStep, e.LeaseStep, e.LeaseExpires = -1, -1, time.Time{}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = e.UpdatedAt
	}
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = e.CreatedAt
	}
	// A retired id stays taken (the tombstone rule, retention.go). The
	// tombstone is written before its execution item can go, so reading it
	// first cannot miss one.
	if t, ok, err := s.tombstoneOf(ctx, e.CorrelationID); err != nil {
		return fmt.Errorf("create execution %s: %w", e.CorrelationID, err)
	} else if ok {
		return fmt.Errorf("create execution %s (%s): %w: %w", e.CorrelationID, t, engine.ErrPruned, engine.ErrExists)
	}
	_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
		TableName: s.table, Item: s.newItem(e),
		ConditionExpression:                 aws.String("attribute_not_exists(pk)"),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("create execution %s (status %s): %w", e.CorrelationID, getS(ccf.Item, "st"), engine.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create execution %s in DynamoDB table %s: %w", e.CorrelationID, *s.table, err)
	}
	s.seedNew(ctx, e.CorrelationID)
	return nil
}

// acquireCond is the acquire rule (docs/design.md) as a condition, with
// the restart rule (a message restarted before the last resume is stale).
const acquireCond = "attribute_exists(pk) AND attribute_not_exists(tomb) AND st <> :stopped AND (attribute_not_exists(rs) OR rs <= :rst) AND ds < :step AND (le = :zero OR le <= :now OR ls < :step) AND NOT (fs = :step AND fa >= :r)"

// Acquire implements engine.Store: one conditional UpdateItem that writes
// no indexed attribute (lease, fence, attempt, takeover count, status and
// time only). A refusal is told apart from the item the failed condition
// returns. The takeover count resets on a new step and grows when the same
// step's lease is taken from a holder that let it expire, which an update
// expression cannot choose between: each variant is its own condition, and
// the likely one goes first (a new step for attempt 0, the same step for a
// retry), so a transition stays one call and only a takeover or a
// duplicate pays a second.
func (s *Store) Acquire(ctx context.Context, q engine.AcquireRequest) (engine.Lease, error) {
	if s.cache != nil {
		return s.acquireCached(ctx, q)
	}
	v := acquireNewStep
	if q.Retries > 0 {
		v = acquireSameStepFree
	}
	for range 6 {
		out, err := s.acquireAs(ctx, q, v)
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			r := decodeExec(out.Attributes)
			s.remember(q.CorrelationID, r.e.Fence, grant{r.committed, r.e.Takeovers})
			return engine.Lease{Fence: r.e.Fence, Takeovers: r.e.Takeovers, Expires: q.Expires}, nil
		case errors.As(err, &ccf) && len(ccf.Item) == 0:
			// No execution item: another producer's first message, or an
			// execution whose items TTL or a prune deleted (its tombstone
			// says so).
			t, retired, err := s.tombstoneOf(ctx, q.CorrelationID)
			if err != nil {
				return engine.Lease{}, fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, err)
			}
			if retired {
				return engine.Lease{}, fmt.Errorf("acquire %s step %d: execution retired (%s): %w: %w", q.CorrelationID, q.Step, t, engine.ErrPruned, engine.ErrDuplicate)
			}
			ok, err := s.createLeased(ctx, q)
			if err != nil {
				return engine.Lease{}, err
			}
			if ok {
				s.remember(q.CorrelationID, 1, grant{})
				return engine.Lease{Fence: 1, Expires: q.Expires}, nil
			}
		case errors.As(err, &ccf):
			r := decodeExec(ccf.Item)
			if err := refusal(q, r); err != nil {
				if errors.Is(err, engine.ErrDuplicate) && !errors.Is(err, engine.ErrPruned) && s.q != nil && outboxMayBeUnsent(q, r, getS(ccf.Item, "hk")) {
					if rerr := s.resendOutbox(ctx, q.CorrelationID, getS(ccf.Item, "hk")); rerr != nil {
						return engine.Lease{}, rerr
					}
				}
				return engine.Lease{}, err
			}
			// Granted by the rule, refused by the variant: take the one the
			// item calls for.
			switch {
			case r.e.LeaseStep != q.Step:
				v = acquireNewStep
			case r.e.LeaseExpires.IsZero():
				v = acquireSameStepFree
			default:
				v = acquireTakeover
			}
		default:
			return engine.Lease{}, fmt.Errorf("acquire %s step %d in DynamoDB table %s: %w", q.CorrelationID, q.Step, *s.table, err)
		}
	}
	return engine.Lease{}, fmt.Errorf("acquire %s step %d: the execution kept changing under the condition", q.CorrelationID, q.Step)
}

// acquireVariant is how a grant changes the takeover count.
type acquireVariant int

const (
	// acquireNewStep: the lease was for another step; the count resets.
	acquireNewStep acquireVariant = iota
	// acquireSameStepFree: the step's lease was released (a retry, a
	// give-back); the count stays.
	acquireSameStepFree
	// acquireTakeover: the step's lease expired under its holder; one more.
	acquireTakeover
)

func (s *Store) acquireAs(ctx context.Context, q engine.AcquireRequest, v acquireVariant) (*ddb.UpdateItemOutput, error) {
	cond, upd := acquireCond, "SET f = f + :one, ls = :step, le = :exp, rt = :r, st = :running, ua = :now"
	names := map[string]string{"#ttl": ttlAttr} // TTL is a reserved word
	switch v {
	case acquireNewStep:
		cond += " AND ls <> :step"
		upd += ", #to = :zero"
	case acquireSameStepFree:
		cond += " AND ls = :step AND le = :zero"
	case acquireTakeover:
		cond += " AND ls = :step AND le <> :zero"
		upd += ", #to = #to + :one"
	}
	// A running execution never expires: an execution finished with a
	// retention and taken by a late retry or event loses its ttl (free: an
	// update is billed by the item's size).
	upd += " REMOVE #ttl"
	in := &ddb.UpdateItemInput{
		TableName: s.table, Key: key(q.CorrelationID, execSK),
		ConditionExpression: aws.String(cond),
		UpdateExpression:    aws.String(upd),
		ExpressionAttributeValues: map[string]av{
			":stopped": vs(string(engine.StatusStopped)), ":running": vs(string(engine.StatusRunning)),
			":step": vn(int64(q.Step)), ":r": vn(int64(q.Retries)), ":zero": vn(0), ":one": vn(1),
			":now": vn(unixNano(q.Now)), ":exp": vn(unixNano(q.Expires)), ":rst": vn(unixNano(q.Restarted)),
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              capacity,
	}
	if v != acquireSameStepFree {
		names["#to"] = "to" // TO is a reserved word
	}
	in.ExpressionAttributeNames = names
	return s.c.UpdateItem(ctx, in)
}

// refusal says why r refuses q, in the memory store's order; nil if it
// does not (it changed since the condition was evaluated).
func refusal(q engine.AcquireRequest, r record) error {
	e := r.e
	now := unixNano(q.Now)
	switch {
	case r.tomb:
		return fmt.Errorf("acquire %s step %d: %w: %w", q.CorrelationID, q.Step, engine.ErrPruned, engine.ErrDuplicate)
	case e.Status == engine.StatusStopped:
		return fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrInactive)
	case unixNano(q.Restarted) < r.restarted:
		return fmt.Errorf("acquire %s step %d: message restarted at %s, before the resume at %s: %w",
			q.CorrelationID, q.Step, q.Restarted.Format(time.RFC3339), fromNano(r.restarted).Format(time.RFC3339), engine.ErrDuplicate)
	case e.DoneStep >= q.Step:
		return fmt.Errorf("acquire %s step %d: step %d done: %w", q.CorrelationID, q.Step, e.DoneStep, engine.ErrDuplicate)
	case !e.LeaseExpires.IsZero() && now < unixNano(e.LeaseExpires) && e.LeaseStep >= q.Step:
		if e.LeaseStep == q.Step {
			return fmt.Errorf("acquire %s step %d: %w", q.CorrelationID, q.Step, engine.ErrLeaseHeld)
		}
		return fmt.Errorf("acquire %s step %d: step %d holds the lease: %w", q.CorrelationID, q.Step, e.LeaseStep, engine.ErrDuplicate)
	case r.failedStep == q.Step && r.failedAttempt >= q.Retries:
		return fmt.Errorf("acquire %s step %d attempt %d: attempt %d failed: %w", q.CorrelationID, q.Step, q.Retries, r.failedAttempt, engine.ErrDuplicate)
	}
	return nil
}

// outboxMayBeUnsent reports whether q is a redelivery of the message whose
// commit is the execution's last (step item hk), with nothing leased since:
// then the commit's outgoing message may never have been sent (CommitStep
// failed or crashed between its commit and its send), and the redelivery is
// what can repair it. A duplicate send is harmless: Acquire refuses it.
func outboxMayBeUnsent(q engine.AcquireRequest, r record, hk string) bool {
	return hk != "" && strings.HasPrefix(hk, fmt.Sprintf("h#%010d#%05d#", q.Step, q.Retries)) &&
		r.e.LeaseStep == q.Step && r.e.LeaseExpires.IsZero() && r.e.Status == engine.StatusRunning
}

// resendOutbox sends the outgoing message of step item hk again, if it has one.
func (s *Store) resendOutbox(ctx context.Context, id, hk string) error {
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: s.table, Key: key(id, hk), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("o, oc, od, cp"), ReturnConsumedCapacity: capacity})
	if err != nil {
		return fmt.Errorf("read the outbox of %s from DynamoDB table %s: %w", id, *s.table, err)
	}
	payload, ok := getBAttr(out.Item, "o")
	if oc, isBool := out.Item["oc"].(*types.AttributeValueMemberBOOL); isBool && oc.Value {
		payload, ok = getB(out.Item)
	}
	if !ok {
		return nil
	}
	m := engine.OutMessage{Key: id, Payload: payload, Delay: time.Duration(getN(out.Item, "od"))}
	if m.Delay > 0 {
		return s.ScheduleRetry(ctx, m)
	}
	_, err = s.q.Send(ctx, m)
	return err
}

// createLeased records an execution a message of another producer names
// (no Create), with q's lease granted; false if someone created it first.
func (s *Store) createLeased(ctx context.Context, q engine.AcquireRequest) (bool, error) {
	item := encodeNew(engine.Execution{
		CorrelationID: q.CorrelationID, Machine: q.Machine, Status: engine.StatusRunning,
		DoneStep: -1, LeaseStep: q.Step, LeaseExpires: q.Expires, Retries: q.Retries, Fence: 1,
		CreatedAt: q.Now, UpdatedAt: q.Now,
	})
	_, err := s.c.PutItem(ctx, &ddb.PutItemInput{
		TableName: s.table, Item: item,
		ConditionExpression:    aws.String("attribute_not_exists(pk)"),
		ReturnConsumedCapacity: capacity,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire %s step %d in DynamoDB table %s: %w", q.CorrelationID, q.Step, *s.table, err)
	}
	return true, nil
}

func (s *Store) remember(id string, fence int64, g grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.prev) > 100_000 { // leases never committed (crashes, lost fences)
		clear(s.prev)
	}
	s.prev[leaseKey{id, fence}] = g
}

func (s *Store) recall(id string, fence int64) (grant, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := leaseKey{id, fence}
	v, ok := s.prev[k]
	delete(s.prev, k)
	return v, ok
}

// Commit implements engine.Store: the step item (history entry and
// checkpoint) is written first, then the execution item is updated on the
// condition that c's fence still holds the lease. A lost fence leaves the
// step item unreachable from the history chain, so nothing is recorded.
func (s *Store) Commit(ctx context.Context, c engine.Commit) error {
	return s.commit(ctx, c, nil)
}

func finishes(o engine.Outcome) bool { return o == engine.OutcomeDone || o == engine.OutcomeFailed }

// stepItem is what a commit writes before it updates the execution.
type stepItem struct {
	History engine.HistoryEntry `json:"h"`
}

func (s *Store) commit(ctx context.Context, c engine.Commit, out *engine.OutMessage) error {
	return s.commitWith(ctx, c, out, false, nil)
}

// commitWith commits c; with tx, the step item, the execution's update and
// put (the next message as an item of the DynamoDB-stream dispatch or the
// retry table, if not nil) are one TransactWriteItems call instead.
func (s *Store) commitWith(ctx context.Context, c engine.Commit, out *engine.OutMessage, tx bool, put *types.Put) error {
	item, err := s.stepItem(ctx, c, out, put)
	if err != nil {
		return err
	}
	tomb := s.finishTomb(c)
	if !tx {
		if tomb == nil {
			_, err = s.c.PutItem(ctx, &ddb.PutItemInput{TableName: s.table, Item: item, ReturnConsumedCapacity: capacity})
		} else {
			// The tombstone rides in the call that writes the step item: one
			// more write unit at the finish, no more calls.
			err = s.putItems(ctx, item, tomb)
		}
		if err != nil {
			return fmt.Errorf("commit %s step %d: write step item to DynamoDB table %s: %w", c.CorrelationID, c.Step, *s.table, err)
		}
		s.at("after-step-item", c)
	}
	return s.updateExec(ctx, c, item, tx, put, tomb)
}

func lostFence(c engine.Commit) error {
	return fmt.Errorf("commit %s step %d fence %d: %w", c.CorrelationID, c.Step, c.Fence, engine.ErrFenceLost)
}

// stepItem builds c's step item (history entry, checkpoint, the outbox for
// out unless put writes out in the commit's transaction), linked to the
// execution's last commit; ErrFenceLost when the lease is known to be lost
// already.
func (s *Store) stepItem(ctx context.Context, c engine.Commit, out *engine.OutMessage, put *types.Put) (map[string]av, error) {
	lost := lostFence(c)
	g, ok := s.recall(c.CorrelationID, c.Fence)
	if s.cache != nil {
		var err error
		if g, err = s.precheck(ctx, c, g, ok); err != nil {
			return nil, err
		}
		ok = true
	}
	prev := g.committed
	if !ok {
		// Acquired by another process (or forgotten): read the chain's head.
		r, err := s.get(ctx, c.CorrelationID)
		if errors.Is(err, engine.ErrNotFound) {
			return nil, lost
		}
		if err != nil {
			return nil, fmt.Errorf("commit %s step %d: %w", c.CorrelationID, c.Step, err)
		}
		if r.e.Fence != c.Fence || r.e.LeaseExpires.IsZero() {
			return nil, lost
		}
		prev = r.committed
	}
	h := c.History
	hist, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("commit %s step %d: encode history: %w", c.CorrelationID, c.Step, err)
	}
	sk := stepSK(c.Step, c.Retries, c.Fence)
	item := key(c.CorrelationID, sk)
	item["h"] = vs(string(hist))
	item["f"] = vn(c.Fence)
	item["pf"] = vn(prev)
	if s.ret > 0 {
		// Written once, with the item: 2R after the commit, or R after the
		// finish for the finishing commit (retention.go).
		if c.NextStatus().Terminal() {
			item[ttlAttr] = ttlOf(c.Now, s.ret)
		} else {
			item[ttlAttr] = ttlOf(c.Now, 2*s.ret)
		}
	}
	if c.Checkpoint != nil {
		item["cp"] = vb(c.Checkpoint)
	}
	if out != nil && put == nil {
		// The outbox: usually the checkpoint itself (the message sent), then
		// stored once. A message written in the commit's transaction needs
		// none.
		if string(out.Payload) == string(c.Checkpoint) {
			item["oc"] = &types.AttributeValueMemberBOOL{Value: true}
		} else {
			item["o"] = vb(out.Payload)
		}
		item["od"] = vn(int64(out.Delay))
	}
	if s.cache != nil {
		item["to"] = vn(int64(g.takeovers)) // the grant's, for the execution item
	}
	return item, nil
}

// updateExec moves the execution item to c on the condition that c's fence
// still holds the lease (with tx, in one transaction with the step item,
// put and the tombstone tomb); ErrFenceLost when it no longer does. The
// step item is written already unless tx.
func (s *Store) updateExec(ctx context.Context, c engine.Commit, item map[string]av, tx bool, put *types.Put, tomb map[string]av) error {
	lost := lostFence(c)
	sk := stepSK(c.Step, c.Retries, c.Fence)
	st := c.NextStatus()
	vals := map[string]av{
		":f": vn(c.Fence), ":zero": vn(0), ":now": vn(unixNano(c.Now)), ":r": vn(int64(c.Retries)),
		":step": vn(int64(c.Step)), ":st": vs(string(st)), ":stopped": vs(string(engine.StatusStopped)),
	}
	vals[":hk"] = vs(sk)
	vals[":du"] = vn(unixNano(c.DueAt))
	set := []string{"le = :zero", "rt = :r", "ua = :now", "cf = :f", "hk = :hk", "du = :du"}
	var remove []string
	str := func(attr, v string) {
		if v == "" {
			remove = append(remove, attr)
			return
		}
		vals[":"+attr] = vs(v)
		set = append(set, attr+" = :"+attr)
	}
	str("cs", c.State)
	str("ev", c.Event)
	if c.Outcome == engine.OutcomeRetry {
		set = append(set, "fs = :step", "fa = :r")
	} else {
		set = append(set, "ds = :step")
	}
	switch {
	case s.keepsCheckpoint(c):
		// It may wait longer than its step items live: the checkpoint goes
		// in the execution item, which has no ttl until the finish.
		vals[":cp"] = vb(c.Checkpoint)
		set = append(set, "cp = :cp")
		remove = append(remove, "ck")
	case c.Checkpoint != nil:
		vals[":ck"] = vs(sk)
		set = append(set, "ck = :ck")
		remove = append(remove, "cp")
	}
	if c.SendReceipt != "" {
		str("sr", c.SendReceipt)
	}
	if c.Error != "" || c.Outcome == engine.OutcomeRetry || c.Outcome == engine.OutcomeFailed {
		str("err", c.Error)
	}
	// held is the condition that c's lease still holds: the fence on the
	// execution item, or with a lease cache the guard (docs/design.md,
	// "Lease caches"): the grant's epoch (or a lease an operator's stop
	// carried over), the commit it followed, and the step not done yet.
	held := "f = :f AND le <> :zero"
	var attrNames map[string]string
	if s.cache != nil {
		held = cacheGuard
		vals[":ep"] = vn(epochOf(c.Fence))
		vals[":pf"] = vn(getN(item, "pf"))
		vals[":to"] = vn(getN(item, "to"))
		set = append(set, "f = :f", "ls = :step", "#to = :to")
		remove = append(remove, "lf")
		attrNames = map[string]string{"#to": "to"}
	}
	// The first round writes the status; if the condition fails only because
	// an operator stopped the execution meanwhile (and the commit does not
	// finish it), the second keeps the stop.
	for _, keepStop := range []bool{false, true} {
		set, v := set, map[string]av{}
		for k, x := range vals {
			if k != ":st" && k != ":stopped" {
				v[k] = x
			}
		}
		var cond string
		switch {
		case keepStop:
			cond = held + " AND st = :stopped"
			v[":stopped"] = vals[":stopped"]
		case finishes(c.Outcome):
			cond = held
		default:
			cond = held + " AND st <> :stopped"
			v[":stopped"] = vals[":stopped"]
		}
		names := maps.Clone(attrNames)
		rm := remove
		if !keepStop {
			set = append(slices.Clip(set), "st = :st")
			v[":st"] = vals[":st"]
			if names == nil {
				names = map[string]string{}
			}
			names["#ttl"] = ttlAttr
			if s.ret > 0 && st.Terminal() {
				// The execution item expires R after the finish, set in the
				// update the commit makes anyway.
				v[":ttl"] = ttlOf(c.Now, s.ret)
				set = append(set, "#ttl = :ttl")
			} else {
				// Nothing unfinished expires (Acquire removes the ttl too,
				// but not with a lease cache, where it writes nothing here).
				rm = append(slices.Clip(rm), "#ttl")
			}
			if c.Machine != "" {
				v[":gs"] = vs(statusKey(c.Machine, st))
				set = append(set, "gs = :gs")
			}
		}
		expr := "SET " + strings.Join(set, ", ")
		if len(rm) > 0 {
			expr += " REMOVE " + strings.Join(rm, ", ")
		}
		in := &ddb.UpdateItemInput{
			TableName: s.table, Key: key(c.CorrelationID, execSK),
			ConditionExpression: aws.String(cond), UpdateExpression: aws.String(expr),
			ExpressionAttributeValues: v, ExpressionAttributeNames: names,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
			ReturnConsumedCapacity:              capacity,
		}
		var err error
		if !tx {
			_, err = s.c.UpdateItem(ctx, in)
		} else {
			err = s.transact(ctx, item, in, put, tomb)
		}
		var ccf *types.ConditionalCheckFailedException
		switch {
		case err == nil:
			switch {
			case s.cache != nil && !keepStop && s.ret > 0 && st.Terminal():
				// Finished with a retention: the cached record goes, so
				// that a late message reseeds from the table, which
				// refuses it by the tombstone once TTL took the execution.
				s.forget(ctx, c.CorrelationID, s.sideOfGrant(c.CorrelationID, c.Fence, true))
			case s.cache != nil:
				s.settle(ctx, c, keepStop || st == engine.StatusStopped)
			}
			return nil
		case errors.As(err, &ccf):
			r := decodeExec(ccf.Item)
			if s.cache != nil && len(ccf.Item) > 0 {
				if err := s.guardFailed(ctx, c, r, getN(item, "pf")); err != nil {
					return err
				}
			} else if len(ccf.Item) == 0 || r.e.Fence != c.Fence || r.e.LeaseExpires.IsZero() {
				return lost
			}
			if keepStop || r.e.Status != engine.StatusStopped || finishes(c.Outcome) {
				return fmt.Errorf("commit %s step %d: the execution changed under the condition; the message comes back", c.CorrelationID, c.Step)
			}
		default:
			return fmt.Errorf("commit %s step %d in DynamoDB table %s: %w", c.CorrelationID, c.Step, *s.table, err)
		}
	}
	return lost
}

// CommitStep implements engine.StepCommitter for the engine's general case
// on AWS: commit first (the outgoing message rides in the step item as an
// outbox), then send. A successor therefore exists only once its
// predecessor is committed, so no consumer can take a step's lease over
// from a holder that is still committing (docs/design.md, "One write per
// step"). ack is ignored: Lambda deletes what it delivered. If the send
// fails after the commit the error is returned and the delivery comes back;
// its Acquire finds the step done with nothing leased after it and sends
// the outbox again (see resendOutbox).
func (s *Store) CommitStep(ctx context.Context, c engine.Commit, out *engine.OutMessage, ack string) (string, error) {
	if out != nil && s.q == nil {
		return "", fmt.Errorf("commit %s step %d: the DynamoDB store has no queue to send the next message to", c.CorrelationID, c.Step)
	}
	tx, put, receipt, err := s.itemFor(c, out)
	if err != nil {
		return "", fmt.Errorf("commit %s step %d: %w", c.CorrelationID, c.Step, err)
	}
	if tx {
		// One write: the message (if any) is an item of the commit's own
		// transaction.
		if err := s.commitWith(ctx, c, out, true, put); err != nil {
			return "", err
		}
		s.at("after-commit", c)
		if out == nil || put != nil {
			return receipt, nil
		}
		return s.send(ctx, c, *out)
	}
	if err := s.commit(ctx, c, out); err != nil {
		return "", err
	}
	s.at("after-commit", c)
	if out == nil {
		return "", nil
	}
	return s.send(ctx, c, *out)
}

// ItemSender is a dispatch or retrier whose send is one DynamoDB item
// (the DynamoDB-stream dispatch, the retry table): CommitStep writes that
// item in the commit's own transaction, so a transition is one write
// besides the acquire, and no message exists without its commit or the
// other way round. SendItem returns a nil Put for a message it would not
// send as an item (the store then sends it after the commit as usual).
type ItemSender interface {
	SendItem(m engine.OutMessage) (put *types.Put, receipt string, err error)
}

// TransactAPI is the client's TransactWriteItems, which the Store uses with
// an ItemSender (*dynamodb.Client has it).
type TransactAPI interface {
	TransactWriteItems(ctx context.Context, in *ddb.TransactWriteItemsInput, opts ...func(*ddb.Options)) (*ddb.TransactWriteItemsOutput, error)
}

// itemFor reports whether c commits in one transaction (the dispatch is an
// ItemSender and the client writes transactions) and returns the put of
// out if it goes to an ItemSender.
func (s *Store) itemFor(c engine.Commit, out *engine.OutMessage) (tx bool, put *types.Put, receipt string, err error) {
	if _, ok := s.c.(TransactAPI); !ok {
		return false, nil, "", nil
	}
	if _, ok := s.q.(ItemSender); !ok && !s.txAll {
		return false, nil, "", nil
	}
	if out == nil {
		return true, nil, "", nil
	}
	var to any = s.q
	if s.toRetrier(c, out) {
		to = s.r
	}
	is, ok := to.(ItemSender)
	if !ok {
		return s.txAll, nil, "", nil
	}
	put, receipt, err = is.SendItem(*out)
	return put != nil || s.txAll, put, receipt, err
}

// transact writes the step item, the execution's update and put in one
// transaction. A failed condition of the update comes back as the
// ConditionalCheckFailedException UpdateItem would have returned, with the
// item, so the caller classifies it as it does without a transaction.
func (s *Store) transact(ctx context.Context, step map[string]av, up *ddb.UpdateItemInput, put *types.Put, tomb map[string]av) error {
	items := []types.TransactWriteItem{
		{Put: &types.Put{TableName: s.table, Item: step}},
		{Update: &types.Update{
			TableName: up.TableName, Key: up.Key, UpdateExpression: up.UpdateExpression,
			ConditionExpression: up.ConditionExpression, ExpressionAttributeValues: up.ExpressionAttributeValues,
			ExpressionAttributeNames:            up.ExpressionAttributeNames,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}
	if put != nil {
		items = append(items, types.TransactWriteItem{Put: put})
	}
	if tomb != nil {
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: s.table, Item: tomb}})
	}
	_, err := s.c.(TransactAPI).TransactWriteItems(ctx, &ddb.TransactWriteItemsInput{
		TransactItems: items, ReturnConsumedCapacity: capacity,
	})
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) && len(tce.CancellationReasons) > 1 && aws.ToString(tce.CancellationReasons[1].Code) == "ConditionalCheckFailed" {
		return &types.ConditionalCheckFailedException{Message: tce.CancellationReasons[1].Message, Item: tce.CancellationReasons[1].Item}
	}
	if err != nil {
		return fmt.Errorf("commit transaction in DynamoDB table %s: %w", *s.table, err)
	}
	return nil
}

// toRetrier reports whether a commit's outgoing message goes to the
// Retrier rather than the queue: a retry, and a delayed next message (a
// timer, fsm.Context.Delay) when the Retrier is not the queue itself (the
// retry table of a dispatch that cannot delay: Kinesis, SNS and the
// DynamoDB stream refuse a delay).
func (s *Store) toRetrier(c engine.Commit, out *engine.OutMessage) bool {
	if s.r == nil {
		return false
	}
	return c.Outcome == engine.OutcomeRetry || (out != nil && out.Delay > 0 && !same(s.r, s.q))
}

func (s *Store) send(ctx context.Context, c engine.Commit, out engine.OutMessage) (string, error) {
	if s.toRetrier(c, &out) {
		if err := s.r.ScheduleRetry(ctx, out); err != nil {
			return "", fmt.Errorf("commit %s step %d: committed, retry not scheduled: %w", c.CorrelationID, c.Step, err)
		}
		return "", nil
	}
	receipt, err := s.q.Send(ctx, out)
	if err != nil {
		return "", fmt.Errorf("commit %s step %d: committed, next message not sent: %w", c.CorrelationID, c.Step, err)
	}
	return receipt, nil
}

// Send implements engine.Queue by forwarding to the queue the Store was given.
func (s *Store) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	if s.q == nil {
		return "", errors.New("the DynamoDB store has no queue to send to")
	}
	return s.q.Send(ctx, m)
}

// ScheduleRetry implements engine.Retrier by forwarding to the Retrier (or,
// without one, the queue) the Store was given.
func (s *Store) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	if s.r != nil {
		return s.r.ScheduleRetry(ctx, m)
	}
	if r, ok := s.q.(engine.Retrier); ok {
		return r.ScheduleRetry(ctx, m)
	}
	return errors.New("the DynamoDB store has no retrier")
}

// get reads an execution item with a strongly consistent read.
func (s *Store) get(ctx context.Context, id string) (record, error) {
	out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: s.table, Key: key(id, execSK), ConsistentRead: aws.Bool(true), ReturnConsumedCapacity: capacity})
	if err != nil {
		return record{}, fmt.Errorf("get %s from DynamoDB table %s: %w", id, *s.table, err)
	}
	r := decodeExec(out.Item)
	if len(out.Item) == 0 {
		t, retired, err := s.tombstoneOf(ctx, id)
		if err != nil {
			return record{}, fmt.Errorf("get %s: %w", id, err)
		}
		if retired {
			return record{}, fmt.Errorf("get %s: %s: %w: %w", id, t, engine.ErrPruned, engine.ErrNotFound)
		}
		return record{}, fmt.Errorf("get %s: %w", id, engine.ErrNotFound)
	}
	if r.tomb {
		return record{}, fmt.Errorf("get %s: %w: %w", id, engine.ErrPruned, engine.ErrNotFound)
	}
	return r, nil
}

// Get implements engine.Store. The checkpoint is the execution item's own
// (set by Create and the operator calls) or the last commit's step item's.
func (s *Store) Get(ctx context.Context, id string) (engine.Execution, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return engine.Execution{}, err
	}
	if s.cache != nil {
		s.overlay(ctx, &r)
	}
	if !r.hasCheckpoint && r.checkpointSK != "" {
		out, err := s.c.GetItem(ctx, &ddb.GetItemInput{TableName: s.table, Key: key(id, r.checkpointSK), ConsistentRead: aws.Bool(true),
			ProjectionExpression: aws.String("cp"), ReturnConsumedCapacity: capacity})
		if err != nil {
			return engine.Execution{}, fmt.Errorf("get checkpoint of %s from DynamoDB table %s: %w", id, *s.table, err)
		}
		r.e.Checkpoint, _ = getB(out.Item)
	}
	return r.e, nil
}

// History implements engine.Store: the entries on the chain from the last
// commit back (each step item names the commit before it), oldest first.
// Step items of commits that lost their fence are on no chain.
func (s *Store) History(ctx context.Context, id string) ([]engine.HistoryEntry, error) {
	_, chain, err := s.chain(ctx, id)
	if err != nil {
		return nil, err
	}
	hist := make([]engine.HistoryEntry, 0, len(chain))
	for _, l := range chain {
		hist = append(hist, l.h)
	}
	return hist, nil
}

// link is one step item on an execution's history chain.
type link struct {
	sk   string
	h    engine.HistoryEntry
	prev int64
}

// chain reads id's execution item and its history chain, oldest first.
func (s *Store) chain(ctx context.Context, id string) (record, []link, error) {
	r, err := s.get(ctx, id)
	if errors.Is(err, engine.ErrNotFound) {
		return record{}, nil, fmt.Errorf("history of %s: %w", id, err)
	}
	if err != nil {
		return record{}, nil, err
	}
	byFence := map[int64]link{}
	in := &ddb.QueryInput{
		TableName: s.table, ConsistentRead: aws.Bool(true),
		KeyConditionExpression:    aws.String("pk = :pk AND begins_with(sk, :h)"),
		ExpressionAttributeValues: map[string]av{":pk": vs(id), ":h": vs(stepPrefix)},
		ProjectionExpression:      aws.String("sk, h, f, pf"),
		ReturnConsumedCapacity:    capacity,
	}
	for {
		out, err := s.c.Query(ctx, in)
		if err != nil {
			return record{}, nil, fmt.Errorf("history of %s from DynamoDB table %s: %w", id, *s.table, err)
		}
		for _, it := range out.Items {
			var si stepItem
			if err := json.Unmarshal([]byte(`{"h":`+getS(it, "h")+`}`), &si); err != nil {
				return record{}, nil, fmt.Errorf("history of %s: step item fence %d: %w", id, getN(it, "f"), err)
			}
			byFence[getN(it, "f")] = link{getS(it, attrSK), si.History, getN(it, "pf")}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	var chain []link
	for f := r.committed; f != 0 && len(chain) <= len(byFence); {
		l, ok := byFence[f]
		if !ok && s.ret > 0 {
			// Expired: a step item lives 2R after its commit, so an
			// execution running longer keeps the newest part of its history.
			break
		}
		if !ok {
			return record{}, nil, fmt.Errorf("history of %s: the step item of commit %d is missing", id, f)
		}
		chain = append(chain, l)
		f = l.prev
	}
	slices.Reverse(chain)
	return r, chain, nil
}

// historyCursorPrefix marks this store's history cursors.
const historyCursorPrefix = "dh1."

// HistoryPage implements engine.HistoryPager. The cursor is the last step
// item's sort key returned; step items sort in the order of the chain.
func (s *Store) HistoryPage(ctx context.Context, cursor string, f engine.HistoryFilter) ([]engine.HistoryRow, string, error) {
	if f.CorrelationID == "" {
		return nil, cursor, engine.ErrNeedsCorrelationID
	}
	after := ""
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(cursor, historyCursorPrefix))
		if !strings.HasPrefix(cursor, historyCursorPrefix) || err != nil || !strings.HasPrefix(string(raw), stepPrefix) {
			return nil, cursor, fmt.Errorf("history cursor %q was not issued by the DynamoDB store: %w", cursor, engine.ErrBadCursor)
		}
		after = string(raw)
	}
	r, chain, err := s.chain(ctx, f.CorrelationID)
	if err != nil {
		return nil, cursor, err
	}
	rows := []engine.HistoryRow{}
	if f.Machine != "" && r.e.Machine != f.Machine {
		return rows, cursor, nil
	}
	next := cursor
	for i, l := range chain {
		if l.sk <= after {
			continue
		}
		if f.Limit > 0 && len(rows) == f.Limit {
			break
		}
		rows = append(rows, engine.HistoryRow{ID: int64(i + 1), CorrelationID: r.e.CorrelationID, Machine: r.e.Machine, HistoryEntry: l.h})
		next = historyCursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(l.sk))
	}
	return rows, next, nil
}

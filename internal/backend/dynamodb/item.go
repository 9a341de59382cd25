package dynamodb

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/lfsm/lfsm/internal/engine"
)

type av = types.AttributeValue

func vs(v string) av { return &types.AttributeValueMemberS{Value: v} }
func vn(v int64) av  { return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)} }
func vb(v []byte) av { return &types.AttributeValueMemberB{Value: v} }

func getS(m map[string]av, k string) string {
	if v, ok := m[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(m map[string]av, k string) int64 {
	if v, ok := m[k].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

func getB(m map[string]av) (b []byte, ok bool) { return getBAttr(m, "cp") }

func getBAttr(m map[string]av, k string) ([]byte, bool) {
	if v, ok := m[k].(*types.AttributeValueMemberB); ok {
		return v.Value, true
	}
	return nil, false
}

// key is the primary key of one item.
func key(pk, sk string) map[string]av { return map[string]av{attrPK: vs(pk), attrSK: vs(sk)} }

// execSK is the sort key of an execution item.
const execSK = "e"

// stepSK is the sort key of the step item that attempt retries of step
// wrote under fence: one per commit, so a commit that lost its fence leaves
// an item no chain reaches instead of overwriting the winner's.
func stepSK(step, retries int, fence int64) string {
	return fmt.Sprintf("h#%010d#%05d#%019d", step, retries, fence)
}

const stepPrefix = "h#"

// unixNano is t in unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// createdKey is the sort key of every index: creation time, zero-padded so
// that strings sort as numbers, then the correlation id (ties newest first
// by id descending, as List orders them).
func createdKey(created int64, id string) string {
	return fmt.Sprintf("%019d#%s", max(created, 0), id)
}

// shardOf spreads correlation ids over the by_shard index's partitions.
func shardOf(id string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return "s" + strconv.Itoa(int(h%shards))
}

// record is an execution item decoded: the execution and what the acquire
// rule and the history chain need beyond it.
type record struct {
	e engine.Execution
	// failedStep and failedAttempt: the highest failed attempt of the step
	// that last failed with a retry outcome (-1 when none).
	failedStep, failedAttempt int
	// committed is the fence of the last commit (0 when none): the head of
	// the history chain.
	committed int64
	// checkpointSK names the step item holding the checkpoint when the
	// execution item has none of its own.
	checkpointSK  string
	hasCheckpoint bool
	// tomb: pruned; only the tombstone is left.
	tomb bool
	// restarted is the time of the last resume to running (unix ns, 0 for
	// none): Acquire refuses messages restarted before it.
	restarted int64
	// ddbFence is the fence attribute as stored (Execution.Fence may show a
	// lease cache's instead); epoch and carried are the lease cache's guard
	// (ep, lf); lastStep is the last commit's step item (hk).
	ddbFence, epoch, carried int64
	lastStep                 string
	// secondary: the execution's lease store is the secondary lease cache
	// (lc), chosen by the fenced switch that set its epoch.
	secondary bool
	// expires is the ttl (unix seconds, 0 for none): past it, DynamoDB's
	// TTL deletes the item any time.
	expires int64
}

func decodeExec(m map[string]av) record {
	cp, has := getB(m)
	return record{
		e: engine.Execution{
			CorrelationID: getS(m, attrPK),
			Machine:       getS(m, "m"),
			Status:        engine.Status(getS(m, "st")),
			State:         getS(m, "cs"),
			Event:         getS(m, "ev"),
			DoneStep:      int(getN(m, "ds")),
			Retries:       int(getN(m, "rt")),
			Fence:         getN(m, "f"),
			LeaseStep:     int(getN(m, "ls")),
			LeaseExpires:  fromNano(getN(m, "le")),
			LastError:     getS(m, "err"),
			Checkpoint:    cp,
			SendReceipt:   getS(m, "sr"),
			DueAt:         fromNano(getN(m, "du")),
			Takeovers:     int(getN(m, "to")),
			CreatedAt:     fromNano(getN(m, "ca")),
			UpdatedAt:     fromNano(getN(m, "ua")),
		},
		failedStep:    int(getN(m, "fs")),
		failedAttempt: int(getN(m, "fa")),
		committed:     getN(m, "cf"),
		checkpointSK:  getS(m, "ck"),
		hasCheckpoint: has,
		tomb:          m[attrTomb] != nil,
		restarted:     getN(m, "rs"),
		ddbFence:      getN(m, "f"),
		epoch:         getN(m, "ep"),
		carried:       getN(m, "lf"),
		lastStep:      getS(m, "hk"),
		secondary:     getS(m, "lc") == leaseSecondary,
		expires:       getN(m, ttlAttr),
	}
}

// encodeNew is the item of a new execution.
func encodeNew(e engine.Execution) map[string]av {
	created := unixNano(e.CreatedAt)
	m := map[string]av{
		attrPK: vs(e.CorrelationID), attrSK: vs(execSK),
		"st": vs(string(e.Status)), "ds": vn(int64(e.DoneStep)), "rt": vn(int64(e.Retries)), "f": vn(e.Fence),
		"ls": vn(int64(e.LeaseStep)), "le": vn(unixNano(e.LeaseExpires)), "fs": vn(-1), "fa": vn(-1), "cf": vn(0),
		"ca": vn(created), "ua": vn(unixNano(e.UpdatedAt)), "du": vn(unixNano(e.DueAt)), "to": vn(int64(e.Takeovers)), "rs": vn(0),
		attrGA: vs(shardOf(e.CorrelationID)), attrGC: vs(createdKey(created, e.CorrelationID)),
	}
	opt := func(k, v string) {
		if v != "" {
			m[k] = vs(v)
		}
	}
	opt("m", e.Machine)
	opt(attrGM, e.Machine)
	opt(attrGS, statusKey(e.Machine, e.Status))
	opt("cs", e.State)
	opt("ev", e.Event)
	opt("err", e.LastError)
	opt("sr", e.SendReceipt)
	if e.Checkpoint != nil {
		m["cp"] = vb(e.Checkpoint)
	}
	return m
}

// statusKey is the by_status index's partition key.
func statusKey(machine string, s engine.Status) string {
	if machine == "" {
		return ""
	}
	return machine + "#" + string(s)
}

// cursorPrefix marks this store's list cursors.
const cursorPrefix = "d1."

type cursor struct {
	created int64
	id      string
}

func (c cursor) String() string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.created, 10)+":"+c.id))
}

func parseCursor(s string) (cursor, error) {
	if !strings.HasPrefix(s, cursorPrefix) {
		return cursor{}, fmt.Errorf("cursor %q was not issued by the DynamoDB store: %w", s, engine.ErrBadCursor)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, cursorPrefix))
	if err != nil {
		return cursor{}, fmt.Errorf("cursor %q is damaged: %w", s, engine.ErrBadCursor)
	}
	n, id, ok := strings.Cut(string(raw), ":")
	created, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || id == "" {
		return cursor{}, fmt.Errorf("cursor %q is damaged: %w", s, engine.ErrBadCursor)
	}
	return cursor{created: created, id: id}, nil
}

package shardread

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeSource is an in-memory stream: it tests the walker's own logic
// (order, iterators, resumes), not a service; the readers' tests run the
// walker against the Kinesis and DynamoDB Streams emulators.
type fakeSource struct {
	shards []Shard
	recs   map[string][]string // shard id -> sequence numbers
	open   map[string]bool     // shards still written to (never closed)
	gone   map[string]bool     // shards trimmed away
	expire map[string]bool     // iterators refused once as expired
	iters  []string            // every Iterator call: "id@after"
}

func (f *fakeSource) Shards(context.Context) ([]Shard, error) { return f.shards, nil }

func (f *fakeSource) Iterator(_ context.Context, id, after string) (*string, error) {
	f.iters = append(f.iters, id+"@"+after)
	if f.gone[id] {
		return nil, ErrGone
	}
	pos := 0
	if after != "" {
		pos = slices.Index(f.recs[id], after) + 1
	}
	it := fmt.Sprintf("%s:%d", id, pos)
	return &it, nil
}

func (f *fakeSource) Records(_ context.Context, id string, it *string, limit int) ([]string, *string, error) {
	if f.expire[*it] {
		delete(f.expire, *it)
		return nil, nil, ErrExpired
	}
	sid, p, _ := strings.Cut(*it, ":")
	if sid != id {
		return nil, nil, fmt.Errorf("iterator %s read as shard %s", *it, id)
	}
	pos, _ := strconv.Atoi(p)
	all := f.recs[id]
	end := min(pos+limit, len(all))
	if end == len(all) && !f.open[id] {
		return all[pos:end], nil, nil
	}
	next := fmt.Sprintf("%s:%d", id, end)
	return all[pos:end], &next, nil
}

// handled records every batch handed to the function: "shard:seq,seq".
type handled struct {
	batches []string
	fail    func(shard string, recs []string) string // retryFrom
}

func (h *handled) handle(_ context.Context, shard string, recs []string) (int, string, error) {
	h.batches = append(h.batches, shard+":"+strings.Join(recs, ","))
	from := ""
	if h.fail != nil {
		from = h.fail(shard, recs)
	}
	if from != "" {
		return len(recs), from, errors.New("reported failure")
	}
	return len(recs), "", nil
}

func walker(src *fakeSource, h *handled, batch, retries int) *Walker[string] {
	return New(Config[string]{
		Name: "test", Source: src, Seq: func(s string) string { return s }, Handle: h.handle,
		BatchSize: batch, MaxBatch: 1000, MaxRetries: retries, Pause: time.Nanosecond,
	})
}

// pollUntil polls until h has n batches (a bounded number of rounds: a
// failed shard's pause is a nanosecond, so it is read again at once).
func pollUntil(t *testing.T, w *Walker[string], h *handled, n int) {
	t.Helper()
	for range 1000 {
		if len(h.batches) >= n {
			return
		}
		if _, err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("after 1000 rounds: %d batches, want %d: %q", len(h.batches), n, h.batches)
}

func TestParentsBeforeChildren(t *testing.T) {
	// The children are listed before their parent (as a listing may), and
	// the grandchild before the child: each is read only once its parent
	// is read to its end, and shards without a known parent at once.
	src := &fakeSource{
		shards: []Shard{{ID: "c2", Parent: "c1"}, {ID: "c1", Parent: "p"}, {ID: "p"}, {ID: "x", Parent: "trimmed-away"}},
		recs:   map[string][]string{"p": {"1", "2", "3"}, "c1": {"4"}, "c2": {"5", "6"}, "x": {"7"}},
	}
	h := &handled{}
	w := walker(src, h, 2, 10)
	pollUntil(t, w, h, 5)
	want := []string{"p:1,2", "x:7", "p:3", "c1:4", "c2:5,6"}
	if !slices.Equal(h.batches, want) {
		t.Fatalf("batches %q, want %q", h.batches, want)
	}
	if n, err := w.Poll(context.Background()); n != 0 || err != nil {
		t.Fatalf("after every shard is closed: Poll = %d, %v; want 0, nil", n, err)
	}
}

func TestExpiredIteratorResumesAfterLastDone(t *testing.T) {
	src := &fakeSource{
		shards: []Shard{{ID: "s"}},
		recs:   map[string][]string{"s": {"1", "2", "3"}},
		open:   map[string]bool{"s": true},
		expire: map[string]bool{"s:2": true},
	}
	h := &handled{}
	w := walker(src, h, 2, 10)
	pollUntil(t, w, h, 2)
	if want := []string{"s:1,2", "s:3"}; !slices.Equal(h.batches, want) {
		t.Fatalf("batches %q, want %q", h.batches, want)
	}
	// TRIM_HORIZON first, then after the last record done (2) once the
	// iterator expired; the open shard's next iterators are its own.
	if want := []string{"s@", "s@2"}; !slices.Equal(src.iters, want) {
		t.Fatalf("iterators taken %q, want %q", src.iters, want)
	}
}

func TestReportedFailureResumesThenSkips(t *testing.T) {
	src := &fakeSource{shards: []Shard{{ID: "s"}}, recs: map[string][]string{"s": {"1", "2", "3", "4"}}}
	// Record 3 always fails: 1 and 2 are done, the shard resumes at 3 and,
	// after the first try and MaxRetries (2) retries, skips the batch.
	h := &handled{fail: func(_ string, recs []string) string {
		if slices.Contains(recs, "3") {
			return "3"
		}
		return ""
	}}
	w := walker(src, h, 10, 2)
	pollUntil(t, w, h, 3)
	if want := []string{"s:1,2,3,4", "s:3,4", "s:3,4"}; !slices.Equal(h.batches, want) {
		t.Fatalf("batches %q, want %q", h.batches, want)
	}
	if want := []string{"s@", "s@2", "s@2"}; !slices.Equal(src.iters, want) {
		t.Fatalf("iterators taken %q, want %q", src.iters, want)
	}
	for range 10 {
		if _, err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.batches) != 3 {
		t.Fatalf("the skipped batch came back: %q", h.batches)
	}
}

func TestGoneShardIsFinished(t *testing.T) {
	src := &fakeSource{
		shards: []Shard{{ID: "old"}, {ID: "new", Parent: "old"}},
		recs:   map[string][]string{"new": {"1"}},
		gone:   map[string]bool{"old": true},
	}
	h := &handled{}
	pollUntil(t, walker(src, h, 10, 10), h, 1)
	if want := []string{"new:1"}; !slices.Equal(h.batches, want) {
		t.Fatalf("batches %q, want %q", h.batches, want)
	}
}

type invokerFunc func(ctx context.Context, event []byte) ([]byte, error)

func (f invokerFunc) Invoke(ctx context.Context, event []byte) ([]byte, error) { return f(ctx, event) }

func TestInvoke(t *testing.T) {
	seqs := []string{"9", "10", "11"}
	for _, tc := range []struct {
		name, resp string
		err        error
		want       string
		wantErr    bool
	}{
		{name: "all done", resp: `{"batchItemFailures":[]}`},
		{name: "null", resp: `null`},
		{name: "lowest by number, not by text", resp: `{"batchItemFailures":[{"itemIdentifier":"11"},{"itemIdentifier":"10"}]}`, want: "10"},
		{name: "unknown item fails the batch", resp: `{"batchItemFailures":[{"itemIdentifier":"8"}]}`, want: "9", wantErr: true},
		{name: "not a batch response", resp: `[1]`, want: "9", wantErr: true},
		{name: "function error", err: errors.New("boom"), want: "9", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := invokerFunc(func(ctx context.Context, event []byte) ([]byte, error) {
				if string(event) != `{"Records":[9,10,11]}` {
					t.Errorf("event %s", event)
				}
				return []byte(tc.resp), tc.err
			})
			got, err := New(Config[string]{Name: "test"}).Invoke(context.Background(), inv, map[string]any{"Records": []int{9, 10, 11}}, seqs)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("Invoke = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

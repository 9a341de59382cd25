package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// RunDropRecorder checks engine.DropRecorder: records keep every field
// (times to the nanosecond, in UTC or not), come back newest first (ties in
// the reverse order of recording), filter by machine, honour the limit, and
// an empty store lists an empty, non-nil slice. Records made concurrently
// are all kept.
func RunDropRecorder(t *testing.T, newRecorder func(t *testing.T) engine.DropRecorder) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	drop := func(sec int, reason engine.DropReason, id, machine string, size int) engine.DroppedMessage {
		return engine.DroppedMessage{Time: t0.Add(time.Duration(sec) * time.Second), Reason: reason,
			Detail: "decode message: " + string(reason), CorrelationID: id, Machine: machine, Size: size}
	}
	t.Run("Empty", func(t *testing.T) {
		got, err := newRecorder(t).ListDropped(t.Context(), engine.DropFilter{})
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("ListDropped of an empty store = %#v, %v; want [], nil", got, err)
		}
	})
	t.Run("RecordList", func(t *testing.T) {
		r := newRecorder(t)
		in := []engine.DroppedMessage{
			drop(1, engine.DropNoVersion, "a1", "M", 10),
			drop(3, engine.DropNonFinite, "b2", "N", 300),
			drop(2, engine.DropNotJSON, "", "", 5),
			drop(3, engine.DropBadCorrelationID, "bad\uFFFDid", "M", 7), // same time as b2, recorded later
			{Time: t0.Add(4 * time.Second).In(time.FixedZone("X", 3600)), Reason: engine.DropMalformed,
				Detail: strings.Repeat("x", 2000), Machine: "M", Size: 1 << 20},
		}
		for _, d := range in {
			if err := r.RecordDrop(t.Context(), d); err != nil {
				t.Fatalf("RecordDrop(%v): %v", d.Reason, err)
			}
		}
		want := []engine.DroppedMessage{in[4], in[3], in[1], in[2], in[0]}
		got, err := r.ListDropped(t.Context(), engine.DropFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("ListDropped (-want +got):\n%s", diff)
		}
		got, err = r.ListDropped(t.Context(), engine.DropFilter{Machine: "M", Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Reason != engine.DropMalformed || got[1].Reason != engine.DropBadCorrelationID {
			t.Errorf("ListDropped(machine M, limit 2) = %+v; want the two newest of M", got)
		}
		got, err = r.ListDropped(t.Context(), engine.DropFilter{Machine: "absent"})
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("ListDropped(unknown machine) = %#v, %v; want [], nil", got, err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		r := newRecorder(t)
		const n = 40
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				if err := r.RecordDrop(t.Context(), drop(i, engine.DropNoCorrelationID, "", fmt.Sprint("M", i%3), i)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := r.ListDropped(t.Context(), engine.DropFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("ListDropped after %d concurrent records: %d records", n, len(got))
		}
		for i, d := range got {
			if d.Size != n-1-i {
				t.Fatalf("record %d has size %d, want %d (newest first)", i, d.Size, n-1-i)
			}
		}
	})
}

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

// QueueBackend is what a local queue implements.
type QueueBackend interface {
	engine.Queue
	engine.Retrier
	engine.Source
}

// Visibility is the visibility timeout the queue suite uses.
const Visibility = 30 * time.Second

// RunQueue runs the queue conformance suite. newQueue returns an empty queue
// that reads the time from clock (a fake the suite advances).
func RunQueue(t *testing.T, newQueue func(t *testing.T, clock func() time.Time) QueueBackend) {
	fresh := func(t *testing.T) (QueueBackend, *Clock) {
		c := NewClock(T0)
		return newQueue(t, c.Now), c
	}
	t.Run("SendReceiveAck", func(t *testing.T) {
		q, c := fresh(t)
		receipts := map[string]bool{}
		for i := range 3 {
			r, err := q.Send(t.Context(), engine.OutMessage{Key: "k", Payload: fmt.Appendf(nil, "m%d", i)})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if r == "" || receipts[r] {
				t.Fatalf("Send receipt %q: want non-empty and distinct", r)
			}
			receipts[r] = true
		}
		ds := receive(t, q, 10)
		if diff := cmp.Diff([]string{"m0", "m1", "m2"}, payloads(ds)); diff != "" {
			t.Errorf("received payloads, in send order (-want +got):\n%s", diff)
		}
		for _, d := range ds {
			if d.Attempts != 1 {
				t.Errorf("first delivery of %s has Attempts %d, want 1", d.Payload, d.Attempts)
			}
			if err := q.Ack(t.Context(), d.Receipt); err != nil {
				t.Errorf("Ack(%s): %v", d.Receipt, err)
			}
		}
		c.Advance(Visibility + time.Second)
		if ds := receive(t, q, 10); len(ds) != 0 {
			t.Errorf("after Ack, received %q, want nothing", payloads(ds))
		}
		if err := q.Ack(t.Context(), ds[0].Receipt); err == nil {
			t.Errorf("second Ack of %s succeeded, want an error", ds[0].Receipt)
		}
	})
	t.Run("Max", func(t *testing.T) {
		q, _ := fresh(t)
		send(t, q, "a", "b", "c", "d", "e")
		if diff := cmp.Diff([]string{"a", "b"}, payloads(receive(t, q, 2))); diff != "" {
			t.Errorf("first Receive(2) (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"c", "d", "e"}, payloads(receive(t, q, 5))); diff != "" {
			t.Errorf("second Receive(5) (-want +got):\n%s", diff)
		}
	})
	t.Run("Delay", func(t *testing.T) {
		for _, via := range []string{"Send", "ScheduleRetry"} {
			t.Run(via, func(t *testing.T) {
				q, c := fresh(t)
				m := engine.OutMessage{Key: "k", Payload: []byte("later"), Delay: 10 * time.Second}
				var err error
				if via == "Send" {
					_, err = q.Send(t.Context(), m)
				} else {
					err = q.ScheduleRetry(t.Context(), m)
				}
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				send(t, q, "now")
				if diff := cmp.Diff([]string{"now"}, payloads(receive(t, q, 10))); diff != "" {
					t.Errorf("at once (-want +got):\n%s", diff)
				}
				c.Advance(10*time.Second - time.Millisecond)
				if ds := receive(t, q, 10); len(ds) != 0 {
					t.Errorf("before the delay, received %q", payloads(ds))
				}
				c.Advance(time.Millisecond)
				ds := receive(t, q, 10)
				if diff := cmp.Diff([]string{"later"}, payloads(ds)); diff != "" {
					t.Errorf("after the delay (-want +got):\n%s", diff)
				}
				if len(ds) == 1 && ds[0].Attempts != 1 {
					t.Errorf("Attempts = %d, want 1", ds[0].Attempts)
				}
			})
		}
	})
	t.Run("Visibility", func(t *testing.T) {
		q, c := fresh(t)
		send(t, q, "m")
		first := receive(t, q, 1)
		c.Advance(Visibility - time.Millisecond)
		if ds := receive(t, q, 1); len(ds) != 0 {
			t.Errorf("within the visibility timeout, received %q", payloads(ds))
		}
		c.Advance(time.Millisecond)
		second := receive(t, q, 1)
		if len(second) != 1 || string(second[0].Payload) != "m" || second[0].Attempts != 2 {
			t.Fatalf("after the visibility timeout got %+v, want m again with Attempts 2", second)
		}
		if err := q.Ack(t.Context(), first[0].Receipt); err == nil {
			t.Errorf("Ack with the first delivery's receipt succeeded after redelivery")
		}
		if err := q.Ack(t.Context(), second[0].Receipt); err != nil {
			t.Errorf("Ack with the current receipt: %v", err)
		}
		c.Advance(2 * Visibility)
		if ds := receive(t, q, 1); len(ds) != 0 {
			t.Errorf("after Ack, received %q", payloads(ds))
		}
	})
	t.Run("AckAfterTimeoutBeforeRedelivery", func(t *testing.T) {
		q, c := fresh(t)
		send(t, q, "m")
		ds := receive(t, q, 1)
		c.Advance(2 * Visibility)
		if err := q.Ack(t.Context(), ds[0].Receipt); err != nil {
			t.Errorf("late Ack of a message nobody else received: %v", err)
		}
		if ds := receive(t, q, 1); len(ds) != 0 {
			t.Errorf("after late Ack, received %q", payloads(ds))
		}
	})
	t.Run("BadReceipt", func(t *testing.T) {
		q, _ := fresh(t)
		for _, r := range []string{"", "garbage", "12345:1"} {
			if err := q.Ack(t.Context(), r); err == nil {
				t.Errorf("Ack(%q) succeeded", r)
			}
		}
	})
	t.Run("PayloadCopied", func(t *testing.T) {
		q, _ := fresh(t)
		buf := []byte("original")
		if _, err := q.Send(t.Context(), engine.OutMessage{Key: "k", Payload: buf}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		copy(buf, "CHANGED!")
		if diff := cmp.Diff([]string{"original"}, payloads(receive(t, q, 1))); diff != "" {
			t.Errorf("payload after the sender reused its buffer (-want +got):\n%s", diff)
		}
	})
	t.Run("WaitWakesOnSend", func(t *testing.T) {
		q, _ := fresh(t)
		got := make(chan []engine.Delivery, 1)
		errc := make(chan error, 1)
		go func() {
			ds, err := q.Receive(t.Context(), 1, Visibility, time.Minute)
			got <- ds
			errc <- err
		}()
		send(t, q, "hello")
		select {
		case ds := <-got:
			if err := <-errc; err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if diff := cmp.Diff([]string{"hello"}, payloads(ds)); diff != "" {
				t.Errorf("waiting Receive (-want +got):\n%s", diff)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("a Receive waiting for a minute did not return 30 s after a send")
		}
	})
	t.Run("WaitTimesOut", func(t *testing.T) {
		q, _ := fresh(t)
		ds, err := q.Receive(t.Context(), 1, Visibility, 20*time.Millisecond)
		if err != nil || len(ds) != 0 {
			t.Errorf("Receive on an empty queue = %v, %v; want empty, nil", ds, err)
		}
	})
	t.Run("WaitCanceled", func(t *testing.T) {
		q, _ := fresh(t)
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := q.Receive(ctx, 1, Visibility, time.Hour)
			errc <- err
		}()
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("canceled Receive = %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Receive did not stop on cancel")
		}
	})
	t.Run("ConcurrentReceivers", func(t *testing.T) {
		q, _ := fresh(t)
		const n, workers = 200, 4
		for i := range n {
			send(t, q, fmt.Sprintf("m%d", i))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					ds, err := q.Receive(t.Context(), 3, Visibility, 0)
					if err != nil {
						t.Errorf("Receive: %v", err)
						return
					}
					if len(ds) == 0 {
						return
					}
					for _, d := range ds {
						if err := q.Ack(t.Context(), d.Receipt); err != nil {
							t.Errorf("Ack: %v", err)
						}
						mu.Lock()
						seen[string(d.Payload)]++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("received %d distinct messages, want %d", len(seen), n)
		}
		for p, k := range seen {
			if k != 1 {
				t.Errorf("%s received %d times within its visibility timeout", p, k)
			}
		}
	})
}

func send(t *testing.T, q QueueBackend, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if _, err := q.Send(t.Context(), engine.OutMessage{Key: "k", Payload: []byte(p)}); err != nil {
			t.Fatalf("Send(%s): %v", p, err)
		}
	}
}

// receive receives without waiting.
func receive(t *testing.T, q QueueBackend, max int) []engine.Delivery {
	t.Helper()
	ds, err := q.Receive(t.Context(), max, Visibility, 0)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if ds == nil {
		t.Fatalf("Receive returned nil, want an empty slice")
	}
	return ds
}

func payloads(ds []engine.Delivery) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, string(d.Payload))
	}
	return out
}

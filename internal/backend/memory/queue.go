package memory

import (
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// queue is a FIFO of visible messages (a ring) plus a min-heap of messages that
// become visible later: delayed sends, retries and deliveries in flight.
type queue struct {
	mu      sync.Mutex
	ready   ring
	timed   timedHeap
	byID    map[int64]*message
	nextID  int64
	waiters int
	// wake is closed (and replaced) by a send while receivers wait.
	wake chan struct{}
}

type message struct {
	id        int64
	key       string
	payload   []byte
	visibleAt int64 // unix nanoseconds
	attempts  int
	index     int  // position in timed, -1 when not there
	acked     bool // deleted while sitting in ready
}

func (q *queue) init() {
	q.byID = make(map[int64]*message)
	q.wake = make(chan struct{})
}

// Send implements engine.Queue. The receipt is the message id. The payload is
// copied.
func (b *Backend) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	id := b.enqueue(m)
	return strconv.FormatInt(id, 10), nil
}

// ScheduleRetry implements engine.Retrier: the message is delivered no earlier
// than m.Delay from now.
func (b *Backend) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	b.enqueue(m)
	return nil
}

func (b *Backend) enqueue(m engine.OutMessage) int64 {
	msg := &message{key: m.Key, payload: append([]byte(nil), m.Payload...), index: -1}
	q := &b.q
	q.mu.Lock()
	q.nextID++
	msg.id = q.nextID
	q.byID[msg.id] = msg
	if m.Delay > 0 {
		msg.visibleAt = b.clock().Add(m.Delay).UnixNano()
		heap.Push(&q.timed, msg)
	} else {
		q.ready.push(msg)
	}
	if q.waiters > 0 {
		close(q.wake)
		q.wake = make(chan struct{})
	}
	q.mu.Unlock()
	return msg.id
}

// Receive implements engine.Source. Delivered messages are hidden for
// visibility; each delivery gets its own receipt, so only the latest delivery of
// a message can Ack it. Payloads are shared with the queue: do not modify them.
func (b *Backend) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	if max <= 0 {
		return []engine.Delivery{}, nil
	}
	deadline := time.Now().Add(wait)
	q := &b.q
	for {
		q.mu.Lock()
		now := b.clock().UnixNano()
		for len(q.timed) > 0 && q.timed[0].visibleAt <= now {
			msg := heap.Pop(&q.timed).(*message)
			q.ready.push(msg)
		}
		var out []engine.Delivery
		for len(out) < max {
			msg := q.ready.pop()
			if msg == nil {
				break
			}
			if msg.acked {
				continue
			}
			if out == nil {
				out = make([]engine.Delivery, 0, min(max, q.ready.n+1))
			}
			msg.attempts++
			msg.visibleAt = now + int64(visibility)
			heap.Push(&q.timed, msg)
			out = append(out, engine.Delivery{Payload: msg.payload, Receipt: receipt(msg), Attempts: msg.attempts})
		}
		if out != nil {
			q.mu.Unlock()
			return out, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			q.mu.Unlock()
			return []engine.Delivery{}, nil
		}
		if len(q.timed) > 0 {
			left = min(left, time.Duration(q.timed[0].visibleAt-now))
		}
		wake := q.wake
		q.waiters++
		q.mu.Unlock()

		t := time.NewTimer(left)
		select {
		case <-ctx.Done():
			t.Stop()
			q.mu.Lock()
			q.waiters--
			q.mu.Unlock()
			return nil, fmt.Errorf("receive: %w", ctx.Err())
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		q.mu.Lock()
		q.waiters--
		q.mu.Unlock()
	}
}

func receipt(m *message) string {
	var buf [40]byte
	r := strconv.AppendInt(buf[:0], m.id, 10)
	r = append(r, ':')
	r = strconv.AppendInt(r, int64(m.attempts), 10)
	return string(r)
}

// Ack implements engine.Source. It fails if the receipt is not the message's
// latest delivery (it was acked already, or delivered again after its
// visibility timeout).
func (b *Backend) Ack(ctx context.Context, r string) error {
	id, att, err := parseReceipt(r)
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if !b.q.ack(id, att) {
		return fmt.Errorf("ack %q: receipt is not current (acked already or delivered again)", r)
	}
	return nil
}

// parseReceipt splits a receipt into message id and delivery attempt.
func parseReceipt(r string) (id int64, attempts int, err error) {
	idText, attText, ok := strings.Cut(r, ":")
	id, err1 := strconv.ParseInt(idText, 10, 64)
	attempts, err2 := strconv.Atoi(attText)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("malformed receipt %q", r)
	}
	return id, attempts, nil
}

// ack deletes delivery attempts of message id, if that is its latest one.
func (q *queue) ack(id int64, attempts int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	msg := q.byID[id]
	if msg == nil || msg.attempts != attempts {
		return false
	}
	delete(q.byID, id)
	if msg.index >= 0 {
		heap.Remove(&q.timed, msg.index)
	} else {
		msg.acked = true
	}
	return true
}

// pending counts the messages of key not yet acked.
func (q *queue) pending(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, m := range q.byID {
		if m.key == key {
			n++
		}
	}
	return n
}

// Len returns the number of messages not yet acked: ready, delayed and in
// flight.
func (b *Backend) Len() int {
	b.q.mu.Lock()
	defer b.q.mu.Unlock()
	return len(b.q.byID)
}

// ring is a growable FIFO of messages.
type ring struct {
	buf  []*message // len is a power of two
	head int
	n    int
}

func (r *ring) push(m *message) {
	if r.n == len(r.buf) {
		nb := make([]*message, max(16, 2*len(r.buf)))
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = m
	r.n++
}

func (r *ring) pop() *message {
	if r.n == 0 {
		return nil
	}
	m := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return m
}

// timedHeap orders messages by visibleAt, then id.
type timedHeap []*message

func (h timedHeap) Len() int { return len(h) }
func (h timedHeap) Less(i, j int) bool {
	if h[i].visibleAt != h[j].visibleAt {
		return h[i].visibleAt < h[j].visibleAt
	}
	return h[i].id < h[j].id
}
func (h timedHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timedHeap) Push(x any) {
	m := x.(*message)
	m.index = len(*h)
	*h = append(*h, m)
}
func (h *timedHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.index = -1
	return m
}

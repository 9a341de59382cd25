package sqlite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
)

// Send implements engine.Queue. The receipt is the message's row id.
func (d *DB) Send(ctx context.Context, m engine.OutMessage) (string, error) {
	id, err := d.enqueue(ctx, m)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(id, 10), nil
}

// ScheduleRetry implements engine.Retrier: the message is delivered no earlier
// than m.Delay from now.
func (d *DB) ScheduleRetry(ctx context.Context, m engine.OutMessage) error {
	_, err := d.enqueue(ctx, m)
	return err
}

func (d *DB) enqueue(ctx context.Context, m engine.OutMessage) (int64, error) {
	visible := d.clock().Add(max(m.Delay, 0)).UnixNano()
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	var id int64
	err := d.write(ctx, false, func(ctx context.Context) error {
		if err := d.ws.send.bind().text(1, m.Key).blob(2, payload).int64(3, visible).exec(); err != nil {
			return err
		}
		id = d.w.lastInsertID()
		return nil
	})
	if err != nil {
		return 0, d.fileError("send message for "+m.Key, err)
	}
	d.wakeReceivers()
	return id, nil
}

// wakeReceivers wakes this process's waiting receivers after a send.
func (d *DB) wakeReceivers() {
	if d.waiters.Load() > 0 {
		d.wakeMu.Lock()
		close(d.wake)
		d.wake = make(chan struct{})
		d.wakeMu.Unlock()
	}
}

func (d *DB) wakeChan() <-chan struct{} {
	d.wakeMu.Lock()
	defer d.wakeMu.Unlock()
	return d.wake
}

// Receive implements engine.Source. Messages are claimed with one UPDATE ...
// RETURNING, so two receivers (in this process or another) never get the same
// message within its visibility timeout. While nothing is visible it polls every
// Options.PollInterval until wait has passed; a Send in this process wakes it.
func (d *DB) Receive(ctx context.Context, max int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	return d.receiveWait(ctx, max, visibility, wait, "", nil)
}

// ReceiveKey receives as Receive does, but only messages sent with key (an
// execution's correlation id), so that lfsm run handles its own execution
// promptly on a store with a backlog (local.Run).
func (d *DB) ReceiveKey(ctx context.Context, key string, max int, visibility, wait time.Duration) ([]engine.Delivery, error) {
	if key == "" {
		return nil, errors.New("receive: empty key")
	}
	return d.receiveWait(ctx, max, visibility, wait, key, nil)
}

// ReceiveLeased implements engine.LeasingSource: the claim and, for each
// message lease maps to a request, Acquire's statements (the same ones, so
// the same rule and refusals) run in one transaction, so a batch of steps
// costs one write to claim and lease instead of one plus one per message.
func (d *DB) ReceiveLeased(ctx context.Context, max int, visibility, wait time.Duration,
	lease func(payload []byte) (engine.AcquireRequest, bool)) ([]engine.Delivery, error) {
	return d.receiveWait(ctx, max, visibility, wait, "", lease)
}

func (d *DB) receiveWait(ctx context.Context, max int, visibility, wait time.Duration, key string,
	lease func([]byte) (engine.AcquireRequest, bool)) ([]engine.Delivery, error) {
	if max <= 0 {
		return []engine.Delivery{}, nil
	}
	deadline := time.Now().Add(wait)
	if wait > 0 {
		// Counted before the first look, so a Send after it wakes us.
		d.waiters.Add(1)
		defer d.waiters.Add(-1)
	}
	for {
		wake := d.wakeChan()
		ds, err := d.receive(ctx, max, visibility, key, lease)
		if err != nil || len(ds) > 0 {
			return ds, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ds, nil
		}
		t := time.NewTimer(min(left, d.poll))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("receive: %w", ctx.Err())
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (d *DB) receive(ctx context.Context, max int, visibility time.Duration, key string,
	lease func([]byte) (engine.AcquireRequest, bool)) ([]engine.Delivery, error) {
	now := d.clock()
	var out []engine.Delivery
	err := d.write(ctx, lease != nil, func(ctx context.Context) error {
		var err error
		if out, err = d.claim(ctx, now, max, visibility, key); err != nil || lease == nil {
			return err
		}
		for i := range out {
			q, ok := lease(out[i].Payload)
			if !ok {
				continue
			}
			l, err := d.acquire(ctx, q)
			switch {
			case err == nil:
				out[i].Lease = &engine.DeliveryLease{Lease: l}
			case errors.Is(err, engine.ErrDuplicate), errors.Is(err, engine.ErrLeaseHeld), errors.Is(err, engine.ErrInactive):
				out[i].Lease = &engine.DeliveryLease{Err: err}
			default:
				return err // rolls the claims and leases back
			}
		}
		return nil
	})
	if err != nil {
		return nil, d.fileError("receive", err)
	}
	return out, nil
}

// claim marks up to max visible messages as delivered and returns them.
func (d *DB) claim(ctx context.Context, now time.Time, max int, visibility time.Duration, key string) ([]engine.Delivery, error) {
	st := d.ws.receive
	if key != "" {
		st = d.ws.receiveKey
	}
	s := st.bind().int64(1, now.Add(visibility).UnixNano()).int64(2, now.UnixNano()).int(3, max)
	if key != "" {
		s = s.text(4, key)
	}
	type claimed struct {
		id int64
		d  engine.Delivery
	}
	var got []claimed
	for {
		row, err := s.step()
		if err != nil {
			return nil, err
		}
		if !row {
			break
		}
		c := claimed{id: s.colInt64(0), d: engine.Delivery{Payload: s.colBytes(1), Attempts: s.colInt(2)}}
		c.d.Receipt = strconv.FormatInt(c.id, 10) + ":" + strconv.Itoa(c.d.Attempts)
		got = append(got, c)
	}
	// RETURNING does not promise an order; deliver oldest first.
	slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.id, b.id) })
	out := make([]engine.Delivery, len(got))
	for i, c := range got {
		out[i] = c.d
	}
	return out, nil
}

// Ack implements engine.Source. It fails if the receipt is not the message's
// latest delivery (it was acked already, or delivered again after its
// visibility timeout).
func (d *DB) Ack(ctx context.Context, receipt string) error {
	id, att, err := parseReceipt(receipt)
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	var n int64
	err = d.write(ctx, false, func(ctx context.Context) error {
		if err := d.ws.ack.bind().int64(1, id).int(2, att).exec(); err != nil {
			return err
		}
		n = d.w.changes()
		return nil
	})
	if err != nil {
		return d.fileError(fmt.Sprintf("ack %q", receipt), err)
	}
	if n == 0 {
		return fmt.Errorf("ack %q: receipt is not current (acked already or delivered again)", receipt)
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

// QueueLen returns the number of messages not yet acked: ready, delayed and in
// flight.
func (d *DB) QueueLen(ctx context.Context) (int, error) {
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM queue`).Scan(&n); err != nil {
		return 0, d.fileError("count queue", err)
	}
	return n, nil
}

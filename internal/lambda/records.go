package lambda

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lfsm/lfsm/internal/backend/sqs"
	"github.com/lfsm/lfsm/internal/engine"
)

// BatchResponse is the partial batch response of SQS, Kinesis and DynamoDB
// streams (the function's event source mapping must report
// ReportBatchItemFailures). An empty list acknowledges the whole batch.
type BatchResponse struct {
	BatchItemFailures []BatchItemFailure `json:"batchItemFailures"`
}

// BatchItemFailure names one record to redeliver: an SQS message id, or a
// stream record's sequence number.
type BatchItemFailure struct {
	ItemIdentifier string `json:"itemIdentifier"`
}

func (b *BatchResponse) fail(id string) {
	b.BatchItemFailures = append(b.BatchItemFailures, BatchItemFailure{ItemIdentifier: id})
}

// sqs handles an SQS batch. Lambda deletes every message not listed in
// batchItemFailures and leaves the listed ones to come back after their
// visibility timeout. A record that must run again later is listed after its
// visibility was shortened to the bounce delay, or, when that cannot be done,
// sent again through the retrier and acknowledged; only when both fail is it
// listed as it is (it then waits out the queue's visibility timeout).
// Records the deadline leaves no time for are listed (with their visibility
// set to zero, so that they come back at once). On a FIFO queue a record
// that must come back is listed with every record after it, as Lambda
// requires to keep each message group in order.
func (h *Handler) sqs(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode SQS event: %w", err)
	}
	resp := BatchResponse{BatchItemFailures: []BatchItemFailure{}}
	ev.Records = h.deferEarly(ctx, ev.Records, &resp)
	if !anyFIFO(ev.Records) {
		h.sqsBatch(ctx, ev.Records, &resp)
		return marshal(resp)
	}
	for i, r := range ev.Records {
		fifo := strings.HasSuffix(r.EventSourceARN, ".fifo")
		if h.tooLate(ctx) {
			h.handBack(ctx, ev.Records[i:], &resp)
			break
		}
		res, v := h.record(ctx, sourceSQS, r.MessageId, []byte(r.Body))
		if v == settled {
			continue
		}
		if fifo {
			// The group must stay in order: this one and all after it come back.
			h.count(MetricBounced, res)
			for _, rest := range ev.Records[i:] {
				resp.fail(rest.MessageId)
			}
			break
		}
		switch {
		case h.shortenVisibility(ctx, r, h.bounceDelay):
			h.count(MetricBounced, res)
			resp.fail(r.MessageId)
		case h.retryLater(ctx, res, []byte(r.Body)):
		default:
			resp.fail(r.MessageId)
		}
	}
	return marshal(resp)
}

// deferEarly takes the records that came before the due time of their
// chained delay (sqs.DueAttribute: a delay longer than SQS's 900 s) out of
// the batch: each is sent again through the retrier with the rest of its
// delay and acknowledged, never run early. One that cannot be sent again is
// listed (it comes back after the visibility timeout and is looked at
// again). The rest of the batch is returned.
func (h *Handler) deferEarly(ctx context.Context, rs []events.SQSMessage, resp *BatchResponse) []events.SQSMessage {
	now := h.clock.Now()
	rest := rs[:0:0]
	for _, r := range rs {
		wait := sqs.Early(aws.ToString(r.MessageAttributes[sqs.DueAttribute].StringValue), now)
		if wait <= 0 {
			rest = append(rest, r)
			continue
		}
		key := ""
		if m, err := engine.DecodeMessage([]byte(r.Body)); err == nil {
			key = m.System.CorrelationID
		}
		if h.retrier == nil {
			resp.fail(r.MessageId)
			continue
		}
		if err := h.retrier.ScheduleRetry(ctx, engine.OutMessage{Key: key, Payload: []byte(r.Body), Delay: wait}); err != nil {
			h.logger.LogAttrs(ctx, slog.LevelWarn, "cannot send an early message again", slog.String("record_id", r.MessageId),
				slog.String("correlation_id", key), slog.Any("err", err))
			resp.fail(r.MessageId)
			continue
		}
		h.logger.LogAttrs(ctx, slog.LevelDebug, "message came before its due time: sent again", slog.String("record_id", r.MessageId),
			slog.String("correlation_id", key), slog.Duration("delay", wait))
	}
	return rest
}

// anyFIFO reports whether a record comes from a FIFO queue.
func anyFIFO(rs []events.SQSMessage) bool {
	for _, r := range rs {
		if strings.HasSuffix(r.EventSourceARN, ".fifo") {
			return true
		}
	}
	return false
}

// sqsBatch handles a standard queue's batch with one batched commit
// (engine.Batch: every record's acquire and actions, then the batch's step
// items, updates and sends together; docs/design.md, "Batched commits").
// What becomes of each record is what sqs does with it one by one: a record
// that must come back is bounced the same way, and the records the deadline
// leaves no time to start are handed back.
func (h *Handler) sqsBatch(ctx context.Context, rs []events.SQSMessage, resp *BatchResponse) {
	b := h.eng.NewBatch()
	started := make([]time.Time, 0, len(rs))
	for i := range rs {
		if h.tooLate(ctx) {
			h.handBack(ctx, rs[i:], resp)
			rs = rs[:i]
			break
		}
		started = append(started, h.clock.Now())
		b.Add(ctx, []byte(rs[i].Body))
	}
	results, errs := b.Commit(ctx)
	for i, r := range rs {
		res := results[i]
		if h.judge(ctx, sourceSQS, r.MessageId, started[i], res, errs[i]) == settled {
			continue
		}
		switch {
		case h.shortenVisibility(ctx, r, h.bounceDelay):
			h.count(MetricBounced, res)
			resp.fail(r.MessageId)
		case h.retryLater(ctx, res, []byte(r.Body)):
		default:
			resp.fail(r.MessageId)
		}
	}
}

// handBack lists records the deadline leaves no time for, making them
// visible again at once where it can.
func (h *Handler) handBack(ctx context.Context, rest []events.SQSMessage, resp *BatchResponse) {
	h.logger.LogAttrs(ctx, slog.LevelWarn, "deadline near: handing records back", slog.Int("records", len(rest)))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.reserve/2)
	defer cancel()
	for _, r := range rest {
		resp.fail(r.MessageId)
		h.count(MetricHandedBack, engine.Result{})
		if !strings.HasSuffix(r.EventSourceARN, ".fifo") {
			h.shortenVisibility(cctx, r, 0)
		}
	}
}

// shortenVisibility sets a message's visibility timeout; false when there is
// no VisibilityChanger or the call failed.
func (h *Handler) shortenVisibility(ctx context.Context, r events.SQSMessage, timeout time.Duration) bool {
	if h.visibility == nil {
		return false
	}
	if err := h.visibility.ChangeVisibility(ctx, r.EventSourceARN, r.ReceiptHandle, timeout); err != nil {
		h.logger.LogAttrs(ctx, slog.LevelWarn, "cannot change message visibility", slog.String("record_id", r.MessageId),
			slog.Any("err", err))
		return false
	}
	return true
}

// streamRecord is one record of a Kinesis or DynamoDB stream batch.
type streamRecord struct {
	seq     string
	payload []byte
	// skip: not a message (a DynamoDB REMOVE, say): acknowledge it.
	skip bool
	// bad: why the envelope holds no message (dropped, never redelivered).
	bad string
}

// stream handles a shard's batch in order. Lambda resumes the shard from the
// lowest sequence number reported and blocks the shard until it succeeds, so
// a record is reported only when it must be redelivered, with every record
// after it; a record that must run again later is first sent through the
// retrier and acknowledged (the shard moves on), and reported only when that
// fails. Records the deadline leaves no time for are reported.
func (h *Handler) stream(ctx context.Context, source string, recs []streamRecord) ([]byte, error) {
	resp := BatchResponse{BatchItemFailures: []BatchItemFailure{}}
	for i, r := range recs {
		if h.tooLate(ctx) {
			h.logger.LogAttrs(ctx, slog.LevelWarn, "deadline near: handing records back", slog.Int("records", len(recs)-i))
			for _, rest := range recs[i:] {
				h.count(MetricHandedBack, engine.Result{})
				resp.fail(rest.seq)
			}
			break
		}
		switch {
		case r.skip:
			continue
		case r.bad != "":
			h.dropEnvelope(ctx, source, r.seq, r.bad, len(r.payload))
			continue
		}
		res, v := h.record(ctx, source, r.seq, r.payload)
		if v == settled || h.retryLater(ctx, res, r.payload) {
			continue
		}
		for _, rest := range recs[i:] {
			resp.fail(rest.seq)
		}
		break
	}
	return marshal(resp)
}

// kinesis handles a Kinesis batch: each record's data is a message.
func (h *Handler) kinesis(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.KinesisEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode Kinesis event: %w", err)
	}
	recs := make([]streamRecord, len(ev.Records))
	for i, r := range ev.Records {
		recs[i] = streamRecord{seq: r.Kinesis.SequenceNumber, payload: r.Kinesis.Data}
	}
	return h.streamBatch(ctx, sourceKinesis, recs)
}

// streamBatch handles a shard's batch as stream does, with one batched
// commit (engine.Batch: every record's acquire and actions in order, then
// the batch's step items, updates and sends together; docs/design.md,
// "Batched commits"). Each record's verdict is then read in order, as
// stream reads them one by one: the first record that must be redelivered
// (and could not be put off through the retrier) is reported with every
// record after it, and records the deadline leaves no time to start are
// reported. One execution normally has one message in flight, but a
// bounce through the retrier or a repair can leave two of its messages in
// one batch (a stale copy and its successor, or the same step twice):
// their acquires would then see each other's lease, so such a batch is
// handled one record at a time.
func (h *Handler) streamBatch(ctx context.Context, source string, recs []streamRecord) ([]byte, error) {
	if repeats(recs) {
		return h.stream(ctx, source, recs)
	}
	resp := BatchResponse{BatchItemFailures: []BatchItemFailure{}}
	b := h.eng.NewBatch()
	var added []int
	var started []time.Time
	late := -1
	for i, r := range recs {
		if h.tooLate(ctx) {
			late = i
			break
		}
		switch {
		case r.skip:
			continue
		case r.bad != "":
			h.dropEnvelope(ctx, source, r.seq, r.bad, len(r.payload))
			continue
		}
		added = append(added, i)
		started = append(started, h.clock.Now())
		b.Add(ctx, r.payload)
	}
	results, errs := b.Commit(ctx)
	for j, i := range added {
		r := recs[i]
		if h.judge(ctx, source, r.seq, started[j], results[j], errs[j]) == settled || h.retryLater(ctx, results[j], r.payload) {
			continue
		}
		for _, rest := range recs[i:] {
			resp.fail(rest.seq)
		}
		return marshal(resp)
	}
	if late >= 0 {
		h.logger.LogAttrs(ctx, slog.LevelWarn, "deadline near: handing records back", slog.Int("records", len(recs)-late))
		for _, rest := range recs[late:] {
			h.count(MetricHandedBack, engine.Result{})
			resp.fail(rest.seq)
		}
	}
	return marshal(resp)
}

// repeats reports whether two records of a batch are messages of the same
// execution.
func repeats(recs []streamRecord) bool {
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		if r.skip || r.bad != "" {
			continue
		}
		m, err := engine.DecodeMessage(r.payload)
		if err != nil {
			continue
		}
		id := m.System.CorrelationID
		if seen[id] {
			return true
		}
		seen[id] = true
	}
	return false
}

// dynamoDB handles a DynamoDB-stream batch: each inserted or modified item
// of the stream table is {correlation_id, payload, timestamp} (REFERENCE.md
// §3), and its NewImage's payload is the message. Removals (TTL expiry)
// carry no message and are skipped.
func (h *Handler) dynamoDB(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode DynamoDB stream event: %w", err)
	}
	recs := make([]streamRecord, len(ev.Records))
	for i, r := range ev.Records {
		sr := streamRecord{seq: r.Change.SequenceNumber}
		switch {
		case r.EventName != string(events.DynamoDBOperationTypeInsert) && r.EventName != string(events.DynamoDBOperationTypeModify):
			sr.skip = true
		default:
			sr.payload, sr.bad = streamPayload(r.Change.NewImage)
		}
		recs[i] = sr
	}
	return h.stream(ctx, sourceDynamoDB, recs)
}

// streamPayload is the message of a stream table item's new image.
func streamPayload(img map[string]events.DynamoDBAttributeValue) (payload []byte, bad string) {
	v, ok := img["payload"]
	if !ok {
		return nil, "stream item has no payload attribute (is NEW_IMAGE in the table's stream view type?)"
	}
	switch v.DataType() {
	case events.DataTypeString:
		return []byte(v.String()), ""
	case events.DataTypeBinary:
		return v.Binary(), ""
	}
	return nil, "stream item's payload is neither a string nor binary"
}

// sns handles an SNS notification (one record per invocation, delivered
// asynchronously: there is no partial batch response). A record that must
// run again later goes through the retrier; if that fails Invoke returns an
// error, so that Lambda retries the invocation.
func (h *Handler) sns(ctx context.Context, payload []byte) ([]byte, error) {
	var ev events.SNSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode SNS event: %w", err)
	}
	for _, r := range ev.Records {
		msg := []byte(r.SNS.Message)
		res, v := h.record(ctx, sourceSNS, r.SNS.MessageID, msg)
		if v == settled || h.retryLater(ctx, res, msg) {
			continue
		}
		return nil, fmt.Errorf("SNS message %s (execution %s step %d) must run again and could not be put off: retry the invocation",
			r.SNS.MessageID, res.CorrelationID, res.Step)
	}
	return marshal(BatchResponse{BatchItemFailures: []BatchItemFailure{}})
}

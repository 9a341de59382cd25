package engine

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode/utf8"
)

// Why the engine could not run a message, as recorded (DroppedMessage.Reason).
// Handle reports every one of them as DropMalformed in Result.Dropped; the
// record says which.
const (
	// DropNotJSON: the payload is not JSON, or not a JSON object.
	DropNotJSON DropReason = "not_json"
	// DropNonFinite: the payload holds NaN or Infinity, which JSON has no
	// literal for (Python's json.dumps writes them by default).
	DropNonFinite DropReason = "non_finite_number"
	// DropNoVersion: the message has no version.
	DropNoVersion DropReason = "no_version"
	// DropUnknownVersion: the message's version is not WireVersion.
	DropUnknownVersion DropReason = "unknown_version"
	// DropNoCorrelationID: system_context.correlation_id is missing or empty.
	DropNoCorrelationID DropReason = "no_correlation_id"
	// DropBadCorrelationID: the correlation id breaks the rule of
	// ValidateCorrelationID.
	DropBadCorrelationID DropReason = "invalid_correlation_id"
	// DropNoEvent: system_context.current_event is missing.
	DropNoEvent DropReason = "no_current_event"
)

// MetricDropped counts messages the engine could not run (one per
// DroppedMessage), by machine where known.
const MetricDropped = "dropped"

// DroppedMessage is the record of a message the engine could not run: a
// malformed one (Reason says why), which redelivery cannot help. The payload
// itself is not kept (it may hold user data); Size says how big it was.
type DroppedMessage struct {
	Time time.Time `json:"time"`
	// Reason is one of the Drop* reasons (DropMalformed when no finer one fits).
	Reason DropReason `json:"reason"`
	// Detail is the decode error's text.
	Detail string `json:"detail"`
	// CorrelationID and Machine are what the message said, where it got that
	// far: cut to MaxDroppedField bytes and made valid UTF-8 (an invalid
	// correlation id is recorded as received, within those bounds).
	CorrelationID string `json:"correlation_id,omitempty"`
	Machine       string `json:"machine,omitempty"`
	// Size is the payload's length in bytes.
	Size int `json:"size"`
}

// MaxDroppedField bounds the correlation id and machine name a
// DroppedMessage keeps of a message.
const MaxDroppedField = 256

// DropFilter selects dropped messages for ListDropped (zero values match all).
type DropFilter struct {
	Machine string
	// Limit caps the number of records returned; 0 means no cap.
	Limit int
}

// DropRecorder is implemented by stores that keep a record of the messages
// the engine could not run (lfsm ls --dropped). It is optional: an engine
// whose store lacks it still counts and logs drops (MetricDropped).
type DropRecorder interface {
	// RecordDrop stores d. The store takes it as it is (the engine has
	// already bounded its fields).
	RecordDrop(ctx context.Context, d DroppedMessage) error
	// ListDropped returns records matching f, newest first (records of the
	// same time in the reverse order they were recorded); never nil.
	ListDropped(ctx context.Context, f DropFilter) ([]DroppedMessage, error)
}

// droppedMessage builds the record of payload, which failed to decode with
// err; partial holds what the decoder read before it stopped.
func droppedMessage(now time.Time, payload []byte, partial *SystemContext, err error) DroppedMessage {
	d := DroppedMessage{Time: now, Reason: DropMalformed, Detail: err.Error(), Size: len(payload)}
	var de *DecodeError
	if errors.As(err, &de) && de.Reason != "" {
		d.Reason = de.Reason
	}
	if partial != nil {
		d.CorrelationID = boundField(partial.CorrelationID)
		d.Machine = boundField(partial.MachineName)
	}
	return d
}

// boundField cuts s to MaxDroppedField bytes (on a rune boundary when it is
// valid UTF-8) and replaces invalid bytes.
func boundField(s string) string {
	if len(s) > MaxDroppedField {
		cut := MaxDroppedField
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

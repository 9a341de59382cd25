package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// WireVersion is the wire format version lfsm reads and writes (REFERENCE.md §3).
const WireVersion = "0.1"

// Message is one wire-format message: the system context the engine owns and
// the user context actions read and write.
type Message struct {
	Version string
	System  SystemContext
	// User is the user context (a JSON object). Decoding never leaves it nil.
	User map[string]any
	// Extra holds unknown top-level keys verbatim, so that they survive a round trip.
	Extra map[string]json.RawMessage
}

// UnixTime is a point in time as seconds since the Unix epoch, the way the
// Python framework wrote started_at and friends. The zero value means absent.
type UnixTime float64

// UnixTimeOf converts t to whole seconds, as the Python framework wrote them
// (the zero time gives the zero UnixTime).
func UnixTimeOf(t time.Time) UnixTime {
	if t.IsZero() {
		return 0
	}
	return UnixTime(t.Unix())
}

// Time converts u to a time.Time (zero for the zero UnixTime).
func (u UnixTime) Time() time.Time {
	if u == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(math.Round(float64(u) * 1e6)))
}

// SystemContext is the "system_context" object of a message. Optional keys are
// absent when zero (nil for MaxRetries and LeasePrimary, whose zero is meaningful).
type SystemContext struct {
	MachineName   string
	CurrentState  string
	CurrentEvent  string
	CorrelationID string
	// Steps counts dispatched messages of the execution (0 for the start message).
	Steps int
	// Retries counts earlier failed attempts of the current step.
	Retries int
	// MaxRetries overrides the machine's max_retries when set.
	MaxRetries *int
	// LeasePrimary is false when the execution took its lease on a secondary cache.
	LeasePrimary *bool
	// AdditionalDelaySeconds delays every message of the execution.
	AdditionalDelaySeconds float64
	// LeaseTimeout overrides the engine's lease timeout, in seconds.
	LeaseTimeout float64
	StartedAt    UnixTime
	FinishedAt   UnixTime
	RestartedAt  UnixTime
	// SpecHash identifies the version of the machine that wrote the message
	// (spec.Machine.Hash); empty in messages of other producers.
	SpecHash string
	// Extra holds unknown system keys verbatim, so that they survive a round trip.
	Extra map[string]json.RawMessage
}

// Wire-format keys.
const (
	keyVersion                = "version"
	keySystem                 = "system_context"
	keyUser                   = "user_context"
	keyMachineName            = "machine_name"
	keyCurrentState           = "current_state"
	keyCurrentEvent           = "current_event"
	keyCorrelationID          = "correlation_id"
	keySteps                  = "steps"
	keyRetries                = "retries"
	keyMaxRetries             = "max_retries"
	keyLeasePrimary           = "lease_primary"
	keyAdditionalDelaySeconds = "additional_delay_seconds"
	keyLeaseTimeout           = "lease_timeout"
	keyStartedAt              = "started_at"
	keyFinishedAt             = "finished_at"
	keyRestartedAt            = "restarted_at"
	keySpecHash               = "spec_hash"
)

// DecodeError says what is wrong with a message that cannot be decoded.
type DecodeError struct {
	// Key is the offending key ("system_context.steps"), empty for the whole message.
	Key string
	// Problem is a lowercase description.
	Problem string
	Err     error
	// Reason classifies the problem for the record of the drop (empty:
	// DropMalformed).
	Reason DropReason
}

// Error reads "decode message: KEY: PROBLEM: ERR".
func (e *DecodeError) Error() string {
	s := "decode message: "
	if e.Key != "" {
		s += e.Key + ": "
	}
	s += e.Problem
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error, if any.
func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeMessage parses a wire-format message. It checks the types of every
// known key and names the first problem it finds; it never panics.
func DecodeMessage(data []byte) (Message, error) {
	m, _, err := decodeMessage(data, nil, false)
	return m, err
}

// names interns the machine, state and event names and the spec hashes an
// engine knows, so that decoding a message does not allocate them again.
type names map[string]string

func (n names) add(s string) { n[s] = s }

// decodeMessage is DecodeMessage with interned names (intern may be nil).
// With lazyUser, a non-empty user context is validated but returned as JSON
// (aliasing data), with User nil: the engine passes a context no action used
// on without decoding it.
func decodeMessage(data []byte, intern names, lazyUser bool) (m Message, userRaw []byte, err error) {
	m, userRaw, err = decodeMessageLazy(data, intern, lazyUser)
	if err != nil {
		return Message{}, nil, err
	}
	return m, userRaw, nil
}

// decodeMessageLazy is decodeMessage, but after an error m holds what was
// read before the problem was found (for the record of the drop).
func decodeMessageLazy(data []byte, intern names, lazyUser bool) (Message, []byte, error) {
	var (
		userRaw  []byte
		m        Message
		problem  error // the first problem with a key; syntax errors win over it
		sysSeen  bool
		userSeen bool
		seen     systemSeen
	)
	note := func(err error) {
		if problem == nil {
			problem = err
		}
	}
	s := scanner{data: data}
	if s.peek() != '{' {
		raw, err := s.skip(0)
		if err == nil {
			err = s.end()
		}
		if err != nil {
			return Message{}, nil, notJSON(data, err)
		}
		return Message{}, nil, &DecodeError{Problem: "want a JSON object, got " + kindOf(raw), Reason: DropNotJSON}
	}
	err := s.object(0, func(key []byte) error {
		switch string(key) {
		case keyVersion:
			raw, err := s.skip(1)
			if err != nil {
				return err
			}
			v, err := decodeString(raw)
			if err != nil {
				note(&DecodeError{Key: keyVersion, Problem: "want a string, got " + kindOf(raw)})
			}
			m.Version = v
		case keySystem:
			if s.peek() != '{' {
				raw, err := s.skip(1)
				note(&DecodeError{Key: keySystem, Problem: "want an object, got " + kindOf(raw)})
				return err
			}
			sysSeen = true
			m.System = SystemContext{}
			seen = systemSeen{}
			return s.object(1, func(k []byte) error {
				raw, err := s.skip(2)
				if err != nil {
					return err
				}
				if err := decodeSystemKey(&m.System, &seen, k, raw, intern); err != nil {
					note(err)
				}
				return nil
			})
		case keyUser:
			userSeen = true
			switch s.peek() {
			case '{':
				if lazyUser {
					raw, err := s.skip(1)
					if err != nil {
						return err
					}
					m.User, userRaw = nil, nil
					if len(raw) > 2 { // not "{}"
						userRaw = raw
					} else {
						m.User = map[string]any{}
					}
					return nil
				}
				v, err := s.parse(1)
				if err != nil {
					if !errors.Is(err, errSyntax) {
						note(&DecodeError{Key: keyUser, Problem: "invalid", Err: err})
						return nil
					}
					return err
				}
				m.User = v.(map[string]any)
			case 'n':
				m.User = nil
				return s.literal("null")
			default:
				raw, err := s.skip(1)
				note(&DecodeError{Key: keyUser, Problem: "want an object, got " + kindOf(raw)})
				return err
			}
		default:
			raw, err := s.skip(1)
			if err != nil {
				return err
			}
			if m.Extra == nil {
				m.Extra = map[string]json.RawMessage{}
			}
			m.Extra[string(key)] = bytes.Clone(raw)
		}
		return nil
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return m, nil, notJSON(data, err)
	}
	if problem != nil {
		return m, nil, problem
	}
	switch {
	case m.Version == "":
		return m, nil, &DecodeError{Key: keyVersion, Problem: "missing", Reason: DropNoVersion}
	case m.Version != WireVersion:
		return m, nil, &DecodeError{Key: keyVersion, Problem: fmt.Sprintf("unsupported version %q (want %q)", m.Version, WireVersion),
			Reason: DropUnknownVersion}
	case !sysSeen:
		return m, nil, &DecodeError{Key: keySystem, Problem: "missing"}
	}
	missing := func(k string, r DropReason) error {
		return &DecodeError{Key: keySystem + "." + k, Problem: "missing", Reason: r}
	}
	switch {
	case !seen.machine:
		return m, nil, missing(keyMachineName, "")
	case !seen.state:
		return m, nil, missing(keyCurrentState, "")
	case !seen.event:
		return m, nil, missing(keyCurrentEvent, DropNoEvent)
	case !seen.id || m.System.CorrelationID == "":
		return m, nil, missing(keyCorrelationID, DropNoCorrelationID)
	}
	if err := ValidateCorrelationID(m.System.CorrelationID); err != nil {
		return m, nil, &DecodeError{Key: keySystem + "." + keyCorrelationID, Problem: "invalid", Err: err, Reason: DropBadCorrelationID}
	}
	if !userSeen || m.User == nil && userRaw == nil {
		m.User = map[string]any{}
	}
	return m, userRaw, nil
}

// notJSON is the DecodeError of a payload the scanner refused with err: a
// NaN or Infinity (which Python's json.dumps writes by default) has a reason
// of its own, since it is a well-meant message the producer must fix.
func notJSON(data []byte, err error) error {
	reason := DropNotJSON
	var se *syntaxError
	if errors.As(err, &se) && se.offset <= len(data) {
		rest := data[se.offset:]
		if bytes.HasPrefix(rest, []byte("NaN")) || bytes.HasPrefix(rest, []byte("Infinity")) {
			reason = DropNonFinite
			err = fmt.Errorf("%w (NaN and Infinity are not JSON: have the producer refuse them, e.g. Python's json.dumps(..., allow_nan=False), or write them as strings or null)", err)
		}
	}
	return &DecodeError{Problem: "not JSON", Err: err, Reason: reason}
}

type systemSeen struct{ machine, state, event, id bool }

func decodeSystemKey(s *SystemContext, seen *systemSeen, k []byte, val []byte, intern names) error {
	var err error
	switch string(k) {
	case keyMachineName:
		s.MachineName, err = systemName(keyMachineName, val, intern)
		seen.machine = true
	case keyCurrentState:
		s.CurrentState, err = systemName(keyCurrentState, val, intern)
		seen.state = true
	case keyCurrentEvent:
		s.CurrentEvent, err = systemName(keyCurrentEvent, val, intern)
		seen.event = true
	case keyCorrelationID:
		s.CorrelationID, err = systemString(keyCorrelationID, val)
		seen.id = true
	case keySteps:
		s.Steps, err = systemCount(keySteps, val)
	case keyRetries:
		s.Retries, err = systemCount(keyRetries, val)
	case keyMaxRetries:
		if string(val) == "null" {
			s.MaxRetries = nil
			return nil
		}
		var n int
		n, err = systemCount(keyMaxRetries, val)
		s.MaxRetries = &n
	case keyLeasePrimary:
		switch string(val) {
		case "true", "false":
			b := string(val) == "true"
			s.LeasePrimary = &b
		case "null":
			s.LeasePrimary = nil
		default:
			return systemTypeError(keyLeasePrimary, "a boolean", val)
		}
	case keyAdditionalDelaySeconds:
		s.AdditionalDelaySeconds, err = systemNumber(keyAdditionalDelaySeconds, val)
	case keyLeaseTimeout:
		s.LeaseTimeout, err = systemNumber(keyLeaseTimeout, val)
	case keyStartedAt:
		err = systemTime(keyStartedAt, val, &s.StartedAt)
	case keyFinishedAt:
		err = systemTime(keyFinishedAt, val, &s.FinishedAt)
	case keyRestartedAt:
		err = systemTime(keyRestartedAt, val, &s.RestartedAt)
	case keySpecHash:
		if string(val) == "null" {
			s.SpecHash = ""
			return nil
		}
		s.SpecHash, err = systemName(keySpecHash, val, intern)
	default:
		if s.Extra == nil {
			s.Extra = map[string]json.RawMessage{}
		}
		s.Extra[string(k)] = bytes.Clone(val)
	}
	return err
}

func systemTypeError(key, want string, val []byte) error {
	return &DecodeError{Key: keySystem + "." + key, Problem: "want " + want + ", got " + kindOf(val)}
}

// systemName is systemString for names the engine may know already.
func systemName(key string, val []byte, intern names) (string, error) {
	if len(val) >= 2 && val[0] == '"' {
		if s, ok := intern[string(val[1:len(val)-1])]; ok {
			return s, nil
		}
	}
	return systemString(key, val)
}

func systemString(key string, val []byte) (string, error) {
	s, err := decodeString(val)
	if err != nil {
		return "", systemTypeError(key, "a string", val)
	}
	return s, nil
}

// systemCount reads a non-negative whole number (1 and 1.0 alike).
func systemCount(key string, val []byte) (int, error) {
	if n, ok := smallCount(val); ok && n <= math.MaxInt32 {
		return n, nil
	}
	if len(val) > 0 && (val[0] == '-' || val[0] >= '0' && val[0] <= '9') {
		f, err := strconv.ParseFloat(string(val), 64)
		if err == nil && f >= 0 && f == math.Trunc(f) && f <= math.MaxInt32 {
			return int(f), nil
		}
	}
	return 0, systemTypeError(key, "a non-negative integer", val)
}

// smallCount parses up to 15 decimal digits (Unix seconds included) without
// allocating.
func smallCount(val []byte) (int, bool) {
	if len(val) == 0 || len(val) > 15 {
		return 0, false
	}
	n := 0
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func systemNumber(key string, val []byte) (float64, error) {
	if string(val) == "null" {
		return 0, nil
	}
	if n, ok := smallCount(val); ok {
		return float64(n), nil
	}
	if len(val) > 0 && (val[0] == '-' || val[0] >= '0' && val[0] <= '9') {
		f, err := strconv.ParseFloat(string(val), 64)
		if err == nil && f >= 0 {
			return f, nil
		}
	}
	return 0, systemTypeError(key, "a non-negative number", val)
}

func systemTime(key string, val []byte, out *UnixTime) error {
	f, err := systemNumber(key, val)
	*out = UnixTime(f)
	return err
}

// kindOf names the JSON type of a valid JSON value, for error messages.
func kindOf(val []byte) string {
	if len(val) == 0 {
		return "nothing"
	}
	switch val[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// decodeString decodes a JSON string value without allocating more than the
// result when it needs no unescaping.
func decodeString(val []byte) (string, error) {
	if len(val) < 2 || val[0] != '"' {
		return "", errors.New("not a string")
	}
	inner := val[1 : len(val)-1]
	simple := true
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			simple = false
			break
		}
	}
	if simple {
		return string(inner), nil
	}
	var s string
	err := json.Unmarshal(val, &s)
	return s, err
}

// EncodeMessage renders m in the wire format: known keys in a fixed order, then
// extra keys sorted, so that equal messages encode to equal bytes.
func EncodeMessage(m Message) ([]byte, error) {
	return AppendMessage(make([]byte, 0, 256), m)
}

// AppendMessage is EncodeMessage appending to b.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	return appendMessage(b, m, nil)
}

// appendMessage writes userRaw as the user context when m.User is nil.
func appendMessage(b []byte, m Message, userRaw []byte) ([]byte, error) {
	v := m.Version
	if v == "" {
		v = WireVersion
	}
	b = append(b, `{"version":`...)
	b = appendString(b, v)
	b = append(b, `,"system_context":{"machine_name":`...)
	s := &m.System
	b = appendString(b, s.MachineName)
	b = append(b, `,"current_state":`...)
	b = appendString(b, s.CurrentState)
	b = append(b, `,"current_event":`...)
	b = appendString(b, s.CurrentEvent)
	b = append(b, `,"correlation_id":`...)
	b = appendString(b, s.CorrelationID)
	b = append(b, `,"steps":`...)
	b = strconv.AppendInt(b, int64(s.Steps), 10)
	b = append(b, `,"retries":`...)
	b = strconv.AppendInt(b, int64(s.Retries), 10)
	if s.MaxRetries != nil {
		b = append(b, `,"max_retries":`...)
		b = strconv.AppendInt(b, int64(*s.MaxRetries), 10)
	}
	if s.LeasePrimary != nil {
		b = append(b, `,"lease_primary":`...)
		b = strconv.AppendBool(b, *s.LeasePrimary)
	}
	b = appendNumber(b, keyAdditionalDelaySeconds, s.AdditionalDelaySeconds)
	b = appendNumber(b, keyLeaseTimeout, s.LeaseTimeout)
	b = appendNumber(b, keyStartedAt, float64(s.StartedAt))
	b = appendNumber(b, keyFinishedAt, float64(s.FinishedAt))
	b = appendNumber(b, keyRestartedAt, float64(s.RestartedAt))
	if s.SpecHash != "" {
		b = append(b, `,"spec_hash":`...)
		b = appendString(b, s.SpecHash)
	}
	b = appendExtra(b, s.Extra, true)
	b = append(b, `},"user_context":`...)
	if m.User == nil && len(userRaw) > 0 {
		b = append(b, userRaw...)
	} else if len(m.User) == 0 {
		b = append(b, "{}"...)
	} else {
		var err error
		// The decoder reads the user context at depth 2 (the message is 1).
		if b, err = appendObjectAt(b, m.User, 2); err != nil {
			return nil, fmt.Errorf("encode user context: %w", err)
		}
	}
	b = appendExtra(b, m.Extra, false)
	return append(b, '}'), nil
}

func appendNumber(b []byte, key string, f float64) []byte {
	if f == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return strconv.AppendInt(b, int64(f), 10) // the common case, and much cheaper
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

func appendExtra(b []byte, extra map[string]json.RawMessage, system bool) []byte {
	if len(extra) == 0 {
		return b
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !reserved(k, system) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := extra[k]
		if !json.Valid(v) {
			continue // not ours to repair; dropping keeps the message valid
		}
		b = append(b, ',')
		b = appendString(b, k)
		b = append(b, ':')
		b = append(b, v...)
	}
	return b
}

// reserved reports whether an extra key would clash with a key the encoder writes.
func reserved(k string, system bool) bool {
	if !system {
		return k == keyVersion || k == keySystem || k == keyUser
	}
	switch k {
	case keyMachineName, keyCurrentState, keyCurrentEvent, keyCorrelationID, keySteps, keyRetries,
		keyMaxRetries, keyLeasePrimary, keyAdditionalDelaySeconds, keyLeaseTimeout,
		keyStartedAt, keyFinishedAt, keyRestartedAt, keySpecHash:
		return true
	}
	return false
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // marshalling a string cannot fail
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// NewCorrelationID returns a random (version 4) UUID as 32 hex characters.
func NewCorrelationID() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return hex.EncodeToString(u[:])
}

// MaxCorrelationIDLength is the longest correlation id the engine accepts.
const MaxCorrelationIDLength = 128

// ErrInvalidCorrelationID: a correlation id breaks the rule of
// ValidateCorrelationID.
var ErrInvalidCorrelationID = errors.New("invalid correlation id")

// idChar marks the bytes a correlation id may hold: A-Z a-z 0-9 . _ : -
var idChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	t['.'], t['_'], t[':'], t['-'] = true, true, true, true
	return t
}()

// ValidateCorrelationID checks that id is 1 to MaxCorrelationIDLength bytes
// of A-Z, a-z, 0-9, '.', '_', ':' and '-': what every place an id goes on
// AWS takes as it is (a DynamoDB key, an SQS message attribute, group or
// deduplication id, a Kinesis partition key), and what the Python
// framework's 32 hex characters and UUIDs satisfy. The error wraps
// ErrInvalidCorrelationID and says what is wrong.
func ValidateCorrelationID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalidCorrelationID)
	case len(id) > MaxCorrelationIDLength:
		return fmt.Errorf("%w: %d bytes long, at most %d allowed", ErrInvalidCorrelationID, len(id), MaxCorrelationIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !idChar[id[i]] {
			what := strconv.QuoteRune(rune(id[i]))
			if id[i] >= utf8.RuneSelf || id[i] < 0x20 {
				what = fmt.Sprintf("byte 0x%02x", id[i])
			}
			return fmt.Errorf("%w: %s at offset %d; use only A-Z a-z 0-9 . _ : - (at most %d)", ErrInvalidCorrelationID, what, i, MaxCorrelationIDLength)
		}
	}
	return nil
}

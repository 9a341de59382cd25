// Package fsm is what user action code imports: the Action interface, the
// Context an action reads and writes, and the errors that steer retries.
//
// An action is a thin shim over code you already have:
//
//	func Charge(ctx context.Context, c *fsm.Context) (string, error) {
//		var order Order
//		if err := c.Decode("order", &order); err != nil {
//			return "", fsm.Permanent(err) // bad input: retrying will not help
//		}
//		id, err := payments.Charge(ctx, order)
//		if err != nil {
//			return "", err // retried with backoff, up to max_retries
//		}
//		c.Set("payment_id", id)
//		return "done", nil
//	}
//
// The returned event picks the next transition. Returning "" from a do action of
// a non-final state leaves the execution waiting for an outside event.
//
// Package fsm imports nothing but the standard library.
package fsm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// Action is one entry, do, exit or transition action.
type Action interface {
	Execute(ctx context.Context, c *Context) (event string, err error)
}

// ActionFunc adapts a function to Action.
type ActionFunc func(ctx context.Context, c *Context) (event string, err error)

// Execute calls f.
func (f ActionFunc) Execute(ctx context.Context, c *Context) (string, error) { return f(ctx, c) }

// ActionKind says which slot of the spec an action runs in.
type ActionKind string

// Action kinds, named after the spec's keys.
const (
	KindEntry      ActionKind = "entry_action"
	KindDo         ActionKind = "do_action"
	KindExit       ActionKind = "exit_action"
	KindTransition ActionKind = "action"
)

// Facts are the read-only facts of the step an action runs in.
type Facts struct {
	Machine string
	State   string
	// Kind is the slot the running action fills (entry, do, exit or transition);
	// only the do action's returned event picks the next transition.
	Kind          ActionKind
	Event         string
	CorrelationID string
	// Steps counts the messages of the execution dispatched so far (0 for the start).
	Steps int
	// Retries counts earlier failed attempts of this step.
	Retries int
	// MaxRetries is how many retries the step gets after its first attempt
	// (the message's max_retries, else the machine's, else 5; 0: none). The
	// attempt with Retries == MaxRetries is the last: an action can choose a
	// fallback event then instead of failing the execution.
	MaxRetries int
	// Fence is the lease's fence token: pass it to shared resources so that they
	// can refuse writes from a worker whose lease was taken over.
	Fence int64
}

// Context is the user context of an execution (a JSON object carried from step to
// step) plus the facts of the current step. It is not safe for concurrent use.
type Context struct {
	facts  Facts
	values map[string]any
	// raw, when not nil, is the user context still as JSON: it is decoded with
	// decode on first use, so an action that never reads or writes the context
	// costs no decoding (and the engine passes the JSON on as it came).
	raw     []byte
	decode  func([]byte) (map[string]any, error)
	loadErr error
	logger  *slog.Logger
	delay   time.Duration
}

// NewContext returns a Context holding values (which it takes ownership of; nil
// means empty). The engine uses it, and so can tests of your actions.
func NewContext(facts Facts, values map[string]any, logger *slog.Logger) *Context {
	if values == nil {
		values = map[string]any{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Context{facts: facts, values: values, logger: logger}
}

// NewLazyContext returns a Context whose values are the JSON object raw,
// decoded with decode the first time an action uses them. Engines use it.
func NewLazyContext(facts Facts, raw []byte, decode func([]byte) (map[string]any, error), logger *slog.Logger) *Context {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Context{facts: facts, raw: raw, decode: decode, logger: logger}
}

// load decodes a lazy context.
func (c *Context) load() {
	if c.raw == nil {
		return
	}
	c.values, c.loadErr = c.decode(c.raw)
	if c.values == nil {
		c.values = map[string]any{}
	}
	c.raw, c.decode = nil, nil
}

// RawValues returns the user context's JSON and true if nothing has used the
// values of a lazy Context yet, so that they can be passed on unchanged.
func (c *Context) RawValues() ([]byte, bool) { return c.raw, c.raw != nil }

// LoadErr reports a failure to decode a lazy Context's JSON (the values are
// then empty).
func (c *Context) LoadErr() error { return c.loadErr }

// Machine is the machine's name.
func (c *Context) Machine() string { return c.facts.Machine }

// State is the state whose action runs.
func (c *Context) State() string { return c.facts.State }

// Event is the event that led to this step.
func (c *Context) Event() string { return c.facts.Event }

// CorrelationID identifies the execution.
func (c *Context) CorrelationID() string { return c.facts.CorrelationID }

// Steps is the number of messages dispatched so far.
func (c *Context) Steps() int { return c.facts.Steps }

// Retries is the number of earlier failed attempts of this step.
func (c *Context) Retries() int { return c.facts.Retries }

// MaxRetries is how many retries this step gets after its first attempt;
// Retries() == MaxRetries() on the last attempt.
func (c *Context) MaxRetries() int { return c.facts.MaxRetries }

// LastAttempt reports whether this is the step's last attempt: an error now
// fails the execution, so an action may return a fallback event instead.
func (c *Context) LastAttempt() bool { return c.facts.Retries >= c.facts.MaxRetries }

// Fence is the lease's fence token for this step.
func (c *Context) Fence() int64 { return c.facts.Fence }

// Facts returns all facts at once.
func (c *Context) Facts() Facts { return c.facts }

// SetFacts replaces the facts. The engine calls it as an invocation moves from
// action to action (so one Context serves a whole chain of local transitions);
// tests of actions may call it too. Actions themselves should not.
func (c *Context) SetFacts(f Facts) { c.facts = f }

// Logger carries machine, state, event, correlation_id, steps and retries.
func (c *Context) Logger() *slog.Logger { return c.logger }

// Get returns the raw value under key: as decoded from JSON, a string,
// json.Number, bool, nil, []any or map[string]any, or, within the step that
// set it, whatever an action Set. Numbers are json.Number, which keeps the
// literal the producer wrote (12345678901234567891 and 1.0 stay as they are
// from message to message, where a float64 would round the one and drop the
// other's ".0"); read them with Int, Float or Number, which accept every
// number type.
func (c *Context) Get(key string) (any, bool) {
	c.load()
	v, ok := c.values[key]
	return v, ok
}

// Set stores v under key. v must be JSON-encodable; it is encoded when the next
// message is sent.
func (c *Context) Set(key string, v any) {
	c.load()
	c.values[key] = v
}

// Delete removes key.
func (c *Context) Delete(key string) {
	c.load()
	delete(c.values, key)
}

// Keys returns the keys, sorted.
func (c *Context) Keys() []string {
	c.load()
	return slices.Sorted(maps.Keys(c.values))
}

// Values returns the user context itself (not a copy).
func (c *Context) Values() map[string]any {
	c.load()
	return c.values
}

// ErrMissingKey is returned by Decode when the key is absent.
var ErrMissingKey = errors.New("key not in context")

// Decode decodes the value under key into out (a pointer), through JSON, so that
// a value written by an earlier step as a map can be read as a struct.
func (c *Context) Decode(key string, out any) error {
	c.load()
	v, ok := c.values[key]
	if !ok {
		return fmt.Errorf("decode %q: %w", key, ErrMissingKey)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %q: %w", key, err)
	}
	return nil
}

// String returns the value under key if it is a string.
func (c *Context) String(key string) (string, bool) {
	c.load()
	s, ok := c.values[key].(string)
	return s, ok
}

// Int returns the value under key as an int if it is a whole number that an
// int holds (42, and 42.0 or 4.2e1 too).
func (c *Context) Int(key string) (int, bool) {
	c.load()
	switch v := c.values[key].(type) {
	case int:
		return v, true
	case int64:
		return int(v), true
	case float64:
		return wholeInt(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return int(n), true
		}
		if f, err := v.Float64(); err == nil {
			return wholeInt(f)
		}
	}
	return 0, false
}

// wholeInt converts f to an int if it is whole and within an int's range.
func wholeInt(f float64) (int, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int(f), true
}

// Float returns the value under key as a float64 if it is a number (the
// nearest float64: 12345678901234567891 reads as 1.2345678901234567e19; use
// Number for the exact literal).
func (c *Context) Float(key string) (float64, bool) {
	c.load()
	switch v := c.values[key].(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	}
	return 0, false
}

// Number returns the value under key as a json.Number if it is a number:
// the literal as the producer wrote it when it came from JSON, else the
// number formatted as JSON would write it.
func (c *Context) Number(key string) (json.Number, bool) {
	c.load()
	switch v := c.values[key].(type) {
	case json.Number:
		return v, true
	case int:
		return json.Number(strconv.Itoa(v)), true
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), true
	case float64:
		b, err := json.Marshal(v)
		return json.Number(b), err == nil
	}
	return "", false
}

// Delay asks for the next message to be delivered no earlier than d from now
// (a timer). The largest request of a step wins. Backends cap it (SQS: 900 s).
func (c *Context) Delay(d time.Duration) {
	if d > c.delay {
		c.delay = d
	}
}

// RequestedDelay is the delay asked for with Delay during this step.
func (c *Context) RequestedDelay() time.Duration { return c.delay }

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so the engine fails the execution at once instead of
// retrying. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

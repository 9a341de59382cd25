package lambda

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lfsm/lfsm/internal/engine"
)

// Commands of a direct invocation.
const (
	CommandStart  = "start"
	CommandSend   = "send"
	CommandStop   = "stop"
	CommandResume = "resume"
)

// Request is a direct invocation (docs/lambda.md): an operator call.
type Request struct {
	// Command is start, send, stop or resume.
	Command string `json:"command"`
	// Machine and Context (a JSON object, default {}) for start.
	Machine string          `json:"machine,omitempty"`
	Context json.RawMessage `json:"context,omitempty"`
	// CorrelationID names the execution: required by send, stop and resume;
	// for start, empty means a new random id.
	CorrelationID string `json:"correlation_id,omitempty"`
	// Event to deliver to a waiting execution (send).
	Event string `json:"event,omitempty"`
}

// Response answers a Request. A refused request (a caller's mistake, or an
// execution not in a state that allows it) is an answer with Error set; a
// store or queue failure is an invocation error instead, so that callers
// can tell "do not retry" from "retry".
type Response struct {
	FormatVersion string `json:"format_version"`
	Command       string `json:"command"`
	CorrelationID string `json:"correlation_id,omitempty"`
	// Status of the execution after the command.
	Status engine.Status  `json:"status,omitempty"`
	Error  *ResponseError `json:"error,omitempty"`
}

// ResponseError says why a request was refused.
type ResponseError struct {
	// Code is stable: bad_request, unknown_machine, not_found, exists,
	// not_waiting, unknown_event, not_resumable, inactive.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// refusals maps the engine's sentinel errors to response codes.
var refusals = []struct {
	err  error
	code string
}{
	{engine.ErrUnknownMachine, "unknown_machine"},
	{engine.ErrNotFound, "not_found"},
	{engine.ErrExists, "exists"},
	{engine.ErrNotWaiting, "not_waiting"},
	{engine.ErrUnknownEvent, "unknown_event"},
	{engine.ErrNotResumable, "not_resumable"},
	{engine.ErrInactive, "inactive"},
}

// direct runs a Request.
func (h *Handler) direct(ctx context.Context, payload []byte) ([]byte, error) {
	var r Request
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	resp := Response{FormatVersion: FormatVersion}
	if err := dec.Decode(&r); err != nil {
		resp.Error = &ResponseError{Code: "bad_request", Message: "decode request: " + err.Error()}
		return marshal(resp)
	}
	resp.Command, resp.CorrelationID = r.Command, r.CorrelationID
	if msg := r.check(); msg != "" {
		resp.Error = &ResponseError{Code: "bad_request", Message: msg}
		return marshal(resp)
	}
	var err error
	switch r.Command {
	case CommandStart:
		var uc map[string]any
		if len(r.Context) > 0 {
			if err := json.Unmarshal(r.Context, &uc); err != nil {
				resp.Error = &ResponseError{Code: "bad_request", Message: "context: " + err.Error()}
				return marshal(resp)
			}
		}
		if uc == nil {
			uc = map[string]any{}
		}
		resp.CorrelationID, err = h.eng.Start(ctx, engine.StartRequest{Machine: r.Machine, Context: uc, CorrelationID: r.CorrelationID})
	case CommandSend:
		err = h.eng.Send(ctx, r.CorrelationID, r.Event)
	case CommandStop:
		err = h.eng.Stop(ctx, r.CorrelationID)
	case CommandResume:
		err = h.eng.Resume(ctx, r.CorrelationID)
	}
	h.logger.LogAttrs(ctx, slog.LevelInfo, "direct request", slog.String("command", r.Command),
		slog.String("correlation_id", resp.CorrelationID), slog.String("machine", r.Machine), slog.String("event", r.Event),
		slog.Any("err", err))
	if err != nil {
		for _, ref := range refusals {
			if errors.Is(err, ref.err) {
				resp.Error = &ResponseError{Code: ref.code, Message: err.Error()}
				return marshal(resp)
			}
		}
		return nil, err
	}
	if h.store != nil {
		x, err := h.store.Get(ctx, resp.CorrelationID)
		if err != nil {
			return nil, fmt.Errorf("%s %s: read status: %w", r.Command, resp.CorrelationID, err)
		}
		resp.Status = x.Status
	}
	return marshal(resp)
}

// check says what is wrong with r, or "".
func (r *Request) check() string {
	switch r.Command {
	case CommandStart:
		if r.Machine == "" {
			return "start needs a machine"
		}
		if r.Event != "" {
			return "start takes no event"
		}
	case CommandSend:
		if r.CorrelationID == "" || r.Event == "" {
			return "send needs a correlation_id and an event"
		}
	case CommandStop, CommandResume:
		if r.CorrelationID == "" {
			return r.Command + " needs a correlation_id"
		}
	default:
		return fmt.Sprintf("unknown command %q (start, send, stop or resume)", r.Command)
	}
	if r.Command != CommandStart && (r.Machine != "" || len(r.Context) > 0) {
		return r.Command + " takes no machine or context"
	}
	return ""
}

package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/graph"
	"github.com/lfsm/lfsm/internal/local"
	"github.com/lfsm/lfsm/internal/spec"
)

// Page sizes of GET /api/executions.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// MaxContextBytes is how much of a user context (indented JSON) an
// execution's page shows; GET /api/executions/{id}/context has all of it.
const MaxContextBytes = 8 << 10

// MachinesResult is GET /api/machines.
type MachinesResult struct {
	FormatVersion string        `json:"format_version"`
	Target        string        `json:"target"`
	Machines      []MachineInfo `json:"machines"`
}

// MachineInfo is one machine of the spec.
type MachineInfo struct {
	Name   string      `json:"name"`
	States []StateInfo `json:"states"`
	// Listing is lfsm graph --output listing: what runs in each λ.
	Listing string `json:"listing"`
	// Graph is the URL of its SVG diagram (lfsm graph --lambdas).
	Graph string `json:"graph"`
	// StartNode is the start circle's node: executions whose start message
	// has not run yet are counted in state pseudo_init, drawn there.
	StartNode string `json:"start_node"`
}

// StateInfo is one state: its node in the diagram (the <title> of the
// node's group in the SVG) and the events it has transitions for.
type StateInfo struct {
	Name    string   `json:"name"`
	Node    string   `json:"node"`
	Initial bool     `json:"initial,omitempty"`
	Final   bool     `json:"final,omitempty"`
	Events  []string `json:"events"`
}

// ExecutionView is an execution as the API shows it.
type ExecutionView struct {
	CorrelationID string        `json:"correlation_id"`
	Machine       string        `json:"machine"`
	Status        engine.Status `json:"status"`
	State         string        `json:"state"`
	Event         string        `json:"event"`
	// Step is the last step committed as done (-1 before the first).
	Step      int       `json:"step"`
	Retries   int       `json:"retries"`
	Lease     LeaseView `json:"lease"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// LeaseView is an execution's lease, as lfsm inspect shows it.
type LeaseView struct {
	Step    int       `json:"step"`
	Fence   int64     `json:"fence"`
	Expires time.Time `json:"expires,omitzero"`
	Held    bool      `json:"held"`
}

// ExecutionsFilter is the filter GET /api/executions applied.
type ExecutionsFilter struct {
	Machine       string `json:"machine"`
	State         string `json:"state"`
	Status        string `json:"status"`
	CorrelationID string `json:"correlation_id"`
	Limit         int    `json:"limit"`
}

// ExecutionsResult is GET /api/executions: one page, newest first.
type ExecutionsResult struct {
	FormatVersion string           `json:"format_version"`
	Filter        ExecutionsFilter `json:"filter"`
	Executions    []ExecutionView  `json:"executions"`
	// Next is the cursor of the next page (?cursor=NEXT); empty on the last.
	Next string `json:"next"`
}

// ExecutionResult is GET /api/executions/{id}.
type ExecutionResult struct {
	FormatVersion string        `json:"format_version"`
	Execution     ExecutionView `json:"execution"`
	SpecHash      string        `json:"spec_hash,omitempty"`
	// Context is the user context when it fits in MaxContextBytes
	// (indented); otherwise null, ContextTruncated is set and ContextText
	// holds its first MaxContextBytes.
	Context          json.RawMessage `json:"context"`
	ContextText      string          `json:"context_text"`
	ContextBytes     int             `json:"context_bytes"`
	ContextTruncated bool            `json:"context_truncated"`
	History          []HistoryView   `json:"history"`
	// Events are those a waiting execution can be sent (its state's
	// transitions); empty unless it is waiting and the spec has its state.
	Events []string `json:"events"`
	// Operations are what the buttons may do now: stop, resume, send.
	Operations []string `json:"operations"`
}

// HistoryView is one history entry with its λ number (0 when the spec has
// no such λ).
type HistoryView struct {
	engine.HistoryEntry
	Lambda int `json:"lambda"`
}

// OperateRequest is the body of POST /api/executions/{id}/send.
type OperateRequest struct {
	Event string `json:"event"`
}

// OperateResult answers the POSTs: the execution afterwards.
type OperateResult struct {
	FormatVersion string        `json:"format_version"`
	Operation     string        `json:"operation"`
	CorrelationID string        `json:"correlation_id"`
	Event         string        `json:"event,omitempty"`
	Status        engine.Status `json:"status"`
}

// ErrorResult is the body of every API error.
type ErrorResult struct {
	FormatVersion string `json:"format_version"`
	Error         string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResult{FormatVersion: "1", Error: msg})
}

// fail maps an error of the store or the engine to a status.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *engine.StatusError
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, engine.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, engine.ErrBadCursor), errors.Is(err, engine.ErrUnknownEvent), errors.Is(err, engine.ErrUnknownMachine):
		status = http.StatusBadRequest
	case errors.As(err, &se), errors.Is(err, engine.ErrInactive), errors.Is(err, engine.ErrNotWaiting), errors.Is(err, engine.ErrNotResumable):
		status = http.StatusConflict
	}
	if status == http.StatusInternalServerError {
		s.logger.Error("ui request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err.Error())
}

func (s *Server) view(x engine.Execution) ExecutionView {
	v := ExecutionView{
		CorrelationID: x.CorrelationID, Machine: x.Machine, Status: x.Status, State: x.State, Event: x.Event,
		Step: x.DoneStep, Retries: x.Retries, LastError: local.CurrentError(x),
		Lease:     LeaseView{Step: x.LeaseStep, Fence: x.Fence, Expires: x.LeaseExpires},
		CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt,
	}
	v.Lease.Held = !x.LeaseExpires.IsZero() && x.LeaseExpires.After(s.o.Clock())
	return v
}

func (s *Server) machine(name string) *spec.Machine {
	if s.o.Spec == nil {
		return nil
	}
	return s.o.Spec.Machine(name)
}

func (s *Server) apiMachines(w http.ResponseWriter, r *http.Request) {
	res := MachinesResult{FormatVersion: "1", Target: s.o.Target, Machines: []MachineInfo{}}
	if s.o.Spec != nil {
		for _, m := range s.o.Spec.Machines {
			nodes := graph.NodeNames(m)
			mi := MachineInfo{Name: m.Name, States: []StateInfo{}, Graph: "/api/machines/" + pathEscape(m.Name) + "/graph.svg",
				StartNode: graph.StartNodeName(m)}
			for _, st := range m.States {
				si := StateInfo{Name: string(st.Name), Node: nodes[st.Name], Initial: st.Initial, Final: st.Final, Events: stateEvents(st)}
				mi.States = append(mi.States, si)
			}
			var b bytes.Buffer
			if err := graph.WriteListing(&b, m); err == nil {
				mi.Listing = b.String()
			}
			res.Machines = append(res.Machines, mi)
		}
	}
	writeJSON(w, http.StatusOK, res)
}

func stateEvents(st *spec.State) []string {
	out := []string{}
	for _, t := range st.Transitions {
		out = append(out, string(t.Event))
	}
	return out
}

func pathEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "%", "%25"), "/", "%2F")
}

func (s *Server) apiGraph(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("machine")
	if s.machine(name) == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no machine %q in the spec", name))
		return
	}
	svg, err := s.graphs.svg(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write(svg)
}

func (s *Server) apiCounts(w http.ResponseWriter, r *http.Request) {
	res, err := s.counts.get(r.Context(), r.URL.Query().Get("machine"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// apiCountsStream sends the counts as server-sent events ("counts", the
// JSON of GET /api/counts) when they change, checking every CountEvery.
func (s *Server) apiCountsStream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	machine := r.URL.Query().Get("machine")
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	var last []byte
	t := time.NewTicker(s.counts.every)
	defer t.Stop()
	for {
		res, err := s.counts.get(r.Context(), machine)
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			b, _ := json.Marshal(ErrorResult{FormatVersion: "1", Error: err.Error()})
			fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
		} else {
			b, _ := json.Marshal(res)
			// Only a change is news; the time of the count is not.
			key, _ := json.Marshal(res.Counts)
			if !bytes.Equal(key, last) {
				last = key
				fmt.Fprintf(w, "event: counts\ndata: %s\n\n", b)
			}
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) apiExecutions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := ExecutionsFilter{Machine: q.Get("machine"), State: q.Get("state"), Status: q.Get("status"),
		CorrelationID: strings.TrimSpace(q.Get("correlation_id")), Limit: DefaultLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid limit %q: want a number from 1 to %d", v, MaxLimit))
			return
		}
		f.Limit = n
	}
	if f.Status != "" && !validStatus(engine.Status(f.Status)) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid status %q: want running, waiting, failed, done or stopped", f.Status))
		return
	}
	res := ExecutionsResult{FormatVersion: "1", Filter: f, Executions: []ExecutionView{}}
	if f.CorrelationID != "" {
		// A correlation id names at most one execution: the other filters
		// then only say whether it is listed.
		x, err := s.o.Store.Get(r.Context(), f.CorrelationID)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			s.fail(w, r, err)
			return
		}
		if err == nil && (f.Machine == "" || x.Machine == f.Machine) && (f.State == "" || x.State == f.State) &&
			(f.Status == "" || string(x.Status) == f.Status) {
			res.Executions = append(res.Executions, s.view(x))
		}
		writeJSON(w, http.StatusOK, res)
		return
	}
	page, err := s.o.Store.List(r.Context(), engine.ListFilter{Machine: f.Machine, State: f.State, Status: engine.Status(f.Status),
		Limit: f.Limit, Cursor: q.Get("cursor")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, x := range page.Executions {
		res.Executions = append(res.Executions, s.view(x))
	}
	res.Next = page.Next
	writeJSON(w, http.StatusOK, res)
}

func validStatus(st engine.Status) bool {
	for _, s := range allStatuses {
		if s == st {
			return true
		}
	}
	return false
}

func (s *Server) apiExecution(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	x, err := s.o.Store.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hist, err := s.o.Store.History(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res := ExecutionResult{FormatVersion: "1", Execution: s.view(x), History: []HistoryView{}, Events: []string{}, Operations: []string{}}
	user := map[string]any{}
	if msg, err := engine.DecodeMessage(x.Checkpoint); err == nil {
		if msg.User != nil {
			user = msg.User
		}
		res.SpecHash = msg.System.SpecHash
	}
	text, err := json.MarshalIndent(user, "", "  ")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res.ContextBytes = len(text)
	if len(text) > MaxContextBytes {
		cut := MaxContextBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		res.ContextText, res.ContextTruncated, res.Context = string(text[:cut]), true, json.RawMessage("null")
	} else {
		res.ContextText, res.Context = string(text), text
	}
	m := s.machine(x.Machine)
	var trace *local.Trace
	if m != nil {
		trace = local.NewTrace(m)
	}
	for _, h := range hist {
		if h.Actions == nil {
			h.Actions = []string{}
		}
		hv := HistoryView{HistoryEntry: h}
		if trace != nil {
			if n, _, ok := trace.Find(h.From, h.Event); ok {
				hv.Lambda = n
			}
		}
		res.History = append(res.History, hv)
	}
	switch x.Status {
	case engine.StatusWaiting:
		res.Operations = append(res.Operations, "send", "stop")
		if m != nil {
			if st := m.State(spec.StateName(x.State)); st != nil {
				res.Events = stateEvents(st)
			}
		}
	case engine.StatusRunning:
		res.Operations = append(res.Operations, "stop")
	case engine.StatusFailed, engine.StatusStopped:
		res.Operations = append(res.Operations, "resume")
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) apiContext(w http.ResponseWriter, r *http.Request) {
	x, err := s.o.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	user := map[string]any{}
	if msg, err := engine.DecodeMessage(x.Checkpoint); err == nil && msg.User != nil {
		user = msg.User
	}
	writeJSON(w, http.StatusOK, user)
}

func (s *Server) apiStop(w http.ResponseWriter, r *http.Request) {
	s.operate(w, r, "stop", "", s.o.Operator.Stop)
}

func (s *Server) apiResume(w http.ResponseWriter, r *http.Request) {
	s.operate(w, r, "resume", "", s.o.Operator.Resume)
}

func (s *Server) apiSend(w http.ResponseWriter, r *http.Request) {
	var req OperateRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid body: want {\"event\": \"EVENT\"}: "+err.Error())
		return
	}
	if req.Event == "" {
		writeError(w, http.StatusBadRequest, "invalid body: event is empty: want {\"event\": \"EVENT\"}")
		return
	}
	s.operate(w, r, "send", req.Event, func(ctx context.Context, id string) error { return s.o.Operator.Send(ctx, id, req.Event) })
}

func (s *Server) operate(w http.ResponseWriter, r *http.Request, op, event string, f func(context.Context, string) error) {
	id := r.PathValue("id")
	if err := f(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	x, err := s.o.Store.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.logger.Info("ui operation", "operation", op, "correlation_id", id, "event", event)
	writeJSON(w, http.StatusOK, OperateResult{FormatVersion: "1", Operation: op, CorrelationID: id, Event: event, Status: x.Status})
}

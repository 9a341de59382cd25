package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lfsm/lfsm/internal/engine"
)

func newServer(t *testing.T, f *fixture, mod func(*Options)) *Server {
	t.Helper()
	o := Options{Store: f.store, Operator: operator{f.engine}, Spec: f.spec, Target: "local", Token: "tok", Clock: f.clock.Now, CountEvery: time.Minute}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr ...string) response {
	t.Helper()
	r := httptest.NewRequest(method, "http://127.0.0.1:7780"+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return response{w.Code, w.Body.Bytes(), w.Header()}
}

func get[T any](t *testing.T, h http.Handler, path string) T {
	t.Helper()
	r := do(t, h, "GET", path, "")
	if r.code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.code, r.body)
	}
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v
}

func ids(xs []ExecutionView) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, x.CorrelationID)
	}
	return out
}

func TestMachines(t *testing.T) {
	f := newFixture(t)
	s := newServer(t, f, nil)
	res := get[MachinesResult](t, s, "/api/machines")
	if len(res.Machines) != 1 || res.Machines[0].Name != "Orders" || res.Target != "local" {
		t.Fatalf("machines: %+v", res)
	}
	m := res.Machines[0]
	var approval StateInfo
	for _, st := range m.States {
		if st.Name == "Approval" {
			approval = st
		}
	}
	if diff := cmp.Diff(StateInfo{Name: "Approval", Node: "Approval", Events: []string{"approve", "reject"}}, approval); diff != "" {
		t.Errorf("Approval (-want +got):\n%s", diff)
	}
	if !strings.Contains(m.Listing, "λ1") || m.Graph != "/api/machines/Orders/graph.svg" || m.StartNode != "pseudo_init" {
		t.Errorf("listing %q, graph %q", m.Listing, m.Graph)
	}
}

func TestExecutions(t *testing.T) {
	f := newFixture(t)
	f.known(t)
	s := newServer(t, f, nil)
	all := get[ExecutionsResult](t, s, "/api/executions")
	want := []string{f.ids["running"], f.ids["large"], f.ids["stopped"], f.ids["failed"], f.ids["waiting"], f.ids["done"]}
	if diff := cmp.Diff(want, ids(all.Executions)); diff != "" {
		t.Fatalf("newest first (-want +got):\n%s", diff)
	}
	status := map[string]engine.Status{}
	for _, x := range all.Executions {
		status[x.CorrelationID] = x.Status
	}
	for name, st := range map[string]engine.Status{"running": "running", "waiting": "waiting", "failed": "failed", "done": "done", "stopped": "stopped"} {
		if status[f.ids[name]] != st {
			t.Errorf("%s is %s, want %s", name, status[f.ids[name]], st)
		}
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?state=Approval", []string{f.ids["large"], f.ids["stopped"], f.ids["waiting"]}},
		{"?status=waiting", []string{f.ids["large"], f.ids["waiting"]}},
		{"?machine=Orders&state=Approval&status=stopped", []string{f.ids["stopped"]}},
		{"?machine=Nope", []string{}},
		{"?correlation_id=" + f.ids["failed"], []string{f.ids["failed"]}},
		{"?correlation_id=" + f.ids["failed"] + "&status=done", []string{}},
		{"?correlation_id=nosuchid", []string{}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			got := get[ExecutionsResult](t, s, "/api/executions"+tc.query)
			if diff := cmp.Diff(tc.want, ids(got.Executions)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	t.Run("paged", func(t *testing.T) {
		var got []string
		cursor, pages := "", 0
		for {
			p := get[ExecutionsResult](t, s, "/api/executions?limit=4&cursor="+cursor)
			if len(p.Executions) > 4 {
				t.Fatalf("page of %d", len(p.Executions))
			}
			got = append(got, ids(p.Executions)...)
			pages++
			if cursor = p.Next; cursor == "" {
				break
			}
		}
		if diff := cmp.Diff(want, got); diff != "" || pages != 2 {
			t.Errorf("%d pages (-want +got):\n%s", pages, diff)
		}
	})

	for _, q := range []string{"?limit=0", "?limit=x", "?limit=501", "?status=sleeping", "?cursor=garbage"} {
		t.Run("bad"+q, func(t *testing.T) {
			r := do(t, s, "GET", "/api/executions"+q, "")
			var e ErrorResult
			if r.code != http.StatusBadRequest || json.Unmarshal(r.body, &e) != nil || e.Error == "" {
				t.Errorf("%d %s", r.code, r.body)
			}
		})
	}
}

func TestExecution(t *testing.T) {
	f := newFixture(t)
	f.known(t)
	s := newServer(t, f, nil)

	failed := get[ExecutionResult](t, s, "/api/executions/"+f.ids["failed"])
	x := failed.Execution
	if x.Status != engine.StatusFailed || x.State != "New" || x.Event != "broken" || x.Retries != 2 || !strings.Contains(x.LastError, "warehouse unreachable") {
		t.Errorf("failed: %+v", x)
	}
	var outcomes []string
	for _, h := range failed.History {
		outcomes = append(outcomes, string(h.Outcome)+"/"+h.To)
		if h.Lambda == 0 {
			t.Errorf("history entry without λ: %+v", h)
		}
	}
	if len(failed.History) < 3 || !slices.Contains(outcomes, "retry/New") || outcomes[len(outcomes)-1] != "failed/New" {
		t.Errorf("failed history: %v", outcomes)
	}
	if diff := cmp.Diff([]string{"resume"}, failed.Operations); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}

	waiting := get[ExecutionResult](t, s, "/api/executions/"+f.ids["waiting"])
	if waiting.Execution.Status != engine.StatusWaiting || waiting.Execution.State != "Approval" {
		t.Errorf("waiting: %+v", waiting.Execution)
	}
	if diff := cmp.Diff([]string{"approve", "reject"}, waiting.Events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"send", "stop"}, waiting.Operations); diff != "" {
		t.Errorf("operations (-want +got):\n%s", diff)
	}
	var ctx map[string]any
	if err := json.Unmarshal(waiting.Context, &ctx); err != nil || ctx["order"] != 42.0 || ctx["asked"] != true || waiting.ContextTruncated {
		t.Errorf("context %s (%v)", waiting.Context, err)
	}

	large := get[ExecutionResult](t, s, "/api/executions/"+f.ids["large"])
	if !large.ContextTruncated || string(large.Context) != "null" || len(large.ContextText) > MaxContextBytes || large.ContextBytes <= 3*MaxContextBytes {
		t.Errorf("large: truncated %v, context %.20s, text %d bytes of %d", large.ContextTruncated, large.Context, len(large.ContextText), large.ContextBytes)
	}
	full := get[map[string]any](t, s, "/api/executions/"+f.ids["large"]+"/context")
	if full["blob"] != strings.Repeat("x", 3*MaxContextBytes) {
		t.Errorf("full context lost the blob")
	}

	if r := do(t, s, "GET", "/api/executions/nosuchid", ""); r.code != http.StatusNotFound {
		t.Errorf("unknown id: %d %s", r.code, r.body)
	}
	if r := do(t, s, "GET", "/api/nothing", ""); r.code != http.StatusNotFound {
		t.Errorf("unknown API: %d %s", r.code, r.body)
	}
}

func TestOperate(t *testing.T) {
	f := newFixture(t)
	f.known(t)
	s := newServer(t, f, nil)
	tok := []string{TokenHeader, "tok", "Content-Type", "application/json"}
	post := func(path, body string, hdr ...string) response {
		return do(t, s, "POST", path, body, hdr...)
	}
	waiting := "/api/executions/" + f.ids["waiting"]

	// Refused before anything is done.
	for name, r := range map[string]response{
		"no token":     post(waiting+"/send", `{"event":"approve"}`),
		"wrong token":  post(waiting+"/send", `{"event":"approve"}`, TokenHeader, "nope"),
		"cross-site":   post(waiting+"/send", `{"event":"approve"}`, TokenHeader, "tok", "Sec-Fetch-Site", "cross-site"),
		"other origin": post(waiting+"/send", `{"event":"approve"}`, TokenHeader, "tok", "Origin", "http://evil.example"),
	} {
		if r.code != http.StatusForbidden {
			t.Errorf("%s: %d %s", name, r.code, r.body)
		}
	}
	for name, tc := range map[string]struct {
		path, body string
		code       int
	}{
		"bad body":      {waiting + "/send", `{"evnt":"approve"}`, http.StatusBadRequest},
		"no event":      {waiting + "/send", `{}`, http.StatusBadRequest},
		"unknown event": {waiting + "/send", `{"event":"ship"}`, http.StatusBadRequest},
		"not waiting":   {"/api/executions/" + f.ids["done"] + "/send", `{"event":"approve"}`, http.StatusConflict},
		"resume done":   {"/api/executions/" + f.ids["done"] + "/resume", ``, http.StatusConflict},
		"unknown id":    {"/api/executions/nosuchid/stop", ``, http.StatusNotFound},
	} {
		if r := post(tc.path, tc.body, tok...); r.code != tc.code {
			t.Errorf("%s: %d %s, want %d", name, r.code, r.body, tc.code)
		}
	}
	if x, _ := f.backend.Get(t.Context(), f.ids["waiting"]); x.Status != engine.StatusWaiting {
		t.Fatalf("a refused request changed the execution: %s", x.Status)
	}

	r := post(waiting+"/send", `{"event":"approve"}`, tok...)
	var res OperateResult
	if r.code != http.StatusOK || json.Unmarshal(r.body, &res) != nil || res.Status != engine.StatusRunning || res.Event != "approve" {
		t.Fatalf("send: %d %s", r.code, r.body)
	}
	f.drain(t)
	if x := get[ExecutionResult](t, s, waiting); x.Execution.Status != engine.StatusDone || x.Execution.State != "Shipped" {
		t.Errorf("after send: %+v", x.Execution)
	}

	if r := post("/api/executions/"+f.ids["large"]+"/stop", "", tok...); r.code != http.StatusOK {
		t.Fatalf("stop: %d %s", r.code, r.body)
	}
	if x, _ := f.backend.Get(t.Context(), f.ids["large"]); x.Status != engine.StatusStopped {
		t.Errorf("after stop: %s", x.Status)
	}
	if r := post("/api/executions/"+f.ids["stopped"]+"/resume", "", tok...); r.code != http.StatusOK {
		t.Fatalf("resume: %d %s", r.code, r.body)
	}
	if x, _ := f.backend.Get(t.Context(), f.ids["stopped"]); x.Status != engine.StatusWaiting {
		t.Errorf("after resume: %s", x.Status)
	}
}

func TestSecretAndHost(t *testing.T) {
	f := newFixture(t)
	s := newServer(t, f, func(o *Options) { o.Secret = "s3cret" })
	if r := do(t, s, "GET", "/api/machines", ""); r.code != http.StatusUnauthorized {
		t.Errorf("no secret: %d", r.code)
	}
	if r := do(t, s, "GET", "/", ""); r.code != http.StatusUnauthorized || strings.Contains(string(r.body), "tok") {
		t.Errorf("page without secret: %d %s", r.code, r.body)
	}
	if r := do(t, s, "GET", "/api/machines", "", "Authorization", "Bearer s3cret"); r.code != http.StatusOK {
		t.Errorf("bearer: %d", r.code)
	}
	r := do(t, s, "GET", "/?secret=s3cret", "")
	cookie := r.header.Get("Set-Cookie")
	if r.code != http.StatusSeeOther || !strings.Contains(cookie, "lfsm_secret=s3cret") || !strings.Contains(cookie, "HttpOnly") {
		t.Fatalf("secret URL: %d %q", r.code, cookie)
	}
	if r := do(t, s, "GET", "/", "", "Cookie", "lfsm_secret=s3cret"); r.code != http.StatusOK || !strings.Contains(string(r.body), `content="tok"`) {
		t.Errorf("page with cookie: %d", r.code)
	}
	if r := do(t, s, "GET", "/", "", "Cookie", "lfsm_secret=wrong"); r.code != http.StatusUnauthorized {
		t.Errorf("wrong cookie: %d", r.code)
	}

	lb := newServer(t, f, func(o *Options) { o.Loopback = true })
	req := httptest.NewRequest("GET", "http://evil.example:7780/api/machines", nil)
	w := httptest.NewRecorder()
	lb.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden {
		t.Errorf("rebinding host: %d", w.Code)
	}
	for _, host := range []string{"127.0.0.1:7780", "localhost:7780", "[::1]:7780"} {
		req.Host = host
		w := httptest.NewRecorder()
		lb.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Errorf("host %s: %d", host, w.Code)
		}
	}
}

// hideCounter hides the store's Count, as the DynamoDB store has none.
type hideCounter struct{ engine.Store }

func TestCounts(t *testing.T) {
	want := map[engine.Status]int{"running": 1, "waiting": 2, "failed": 1, "done": 1, "stopped": 1}
	for _, name := range []string{"counter", "scan"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.known(t)
			s := newServer(t, f, func(o *Options) {
				if name == "scan" {
					o.Store = hideCounter{f.backend}
				}
			})
			c := get[CountsResult](t, s, "/api/counts?machine=Orders")
			if diff := cmp.Diff(want, c.ByStatus); diff != "" || c.Total != 6 || c.Scanned != (name == "scan") || c.Truncated {
				t.Errorf("total %d scanned %v (-want +got):\n%s", c.Total, c.Scanned, diff)
			}
			if !slices.Contains(c.Counts, engine.CountRow{State: "Approval", Status: "waiting", N: 2}) {
				t.Errorf("counts: %+v", c.Counts)
			}
			// Rate-limited: a new execution shows only once CountEvery passed.
			f.start(t, "", map[string]any{"route": "auto"})
			if c := get[CountsResult](t, s, "/api/counts?machine=Orders"); c.Total != 6 {
				t.Errorf("counted again within CountEvery: %d", c.Total)
			}
			f.clock.advance(time.Minute)
			if c := get[CountsResult](t, s, "/api/counts?machine=Orders"); c.Total != 7 {
				t.Errorf("not counted again after CountEvery: %d", c.Total)
			}
		})
	}
	t.Run("truncated scan", func(t *testing.T) {
		f := newFixture(t)
		f.known(t)
		s := newServer(t, f, func(o *Options) { o.Store = hideCounter{f.backend}; o.ScanLimit = 3 })
		if c := get[CountsResult](t, s, "/api/counts"); c.Total != 3 || !c.Truncated {
			t.Errorf("scan limit: total %d truncated %v", c.Total, c.Truncated)
		}
	})
}

func TestCountsStream(t *testing.T) {
	f := newFixture(t)
	f.known(t)
	srv := httptest.NewServer(newServer(t, f, nil))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/counts/stream?machine=Orders", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			var c CountsResult
			if event != "counts" || json.Unmarshal([]byte(v), &c) != nil || c.Total != 6 || c.Machine != "Orders" {
				t.Fatalf("event %q: %s", event, v)
			}
			return
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
}

func TestGraph(t *testing.T) {
	f := newFixture(t)
	s := newServer(t, f, func(o *Options) { o.GraphCacheDir = graphCache })
	r := do(t, s, "GET", "/api/machines/Orders/graph.svg", "")
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(string(r.body), "<title>Approval</title>") {
		t.Fatalf("graph: %d %.200s", r.code, r.body)
	}
	// Rendered once per machine: the second answer is the same bytes, kept.
	a, _ := s.graphs.svg(t.Context(), "Orders")
	b, _ := s.graphs.svg(t.Context(), "Orders")
	if len(a) == 0 || &a[0] != &b[0] || string(a) != string(r.body) {
		t.Error("the SVG was rendered again")
	}
	if r := do(t, s, "GET", "/api/machines/Nope/graph.svg", ""); r.code != http.StatusNotFound {
		t.Errorf("unknown machine: %d", r.code)
	}
	page := do(t, s, "GET", "/", "")
	if page.code != http.StatusOK || !strings.Contains(string(page.body), `<meta name="lfsm-token" content="tok">`) ||
		!strings.Contains(page.header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("page: %d %s", page.code, page.header)
	}
	for _, a := range []string{"/assets/app.js", "/assets/style.css"} {
		if r := do(t, s, "GET", a, ""); r.code != http.StatusOK || len(r.body) == 0 {
			t.Errorf("%s: %d", a, r.code)
		}
	}
}

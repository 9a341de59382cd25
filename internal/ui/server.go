package ui

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

//go:embed assets
var assets embed.FS

// Operator runs the operator commands. The CLI passes the code paths of lfsm
// stop, resume and send, so that a button does exactly what the command does.
type Operator interface {
	Stop(ctx context.Context, correlationID string) error
	Resume(ctx context.Context, correlationID string) error
	Send(ctx context.Context, correlationID, event string) error
}

// Options configure a Server. Store and Operator are required.
type Options struct {
	Store    engine.Store
	Operator Operator
	// Spec gives the machines drawn and the events offered to a waiting
	// execution; nil shows executions without diagrams.
	Spec *spec.Spec
	// Target names what the store is (local, aws), for the page's header.
	Target string
	// Token is the per-process token every mutating request carries in the
	// X-LFSM-Token header (the page has it); empty draws a random one.
	Token string
	// Secret, when set, is required of every request: as the lfsm_secret
	// cookie (which /?secret=SECRET sets) or an "Authorization: Bearer"
	// header. The CLI sets it when it listens beyond loopback.
	Secret string
	// Loopback refuses requests whose Host is not a loopback name (a DNS
	// rebinding defence for a console that listens on loopback).
	Loopback bool
	// CountEvery is the least time between two counting queries of the store
	// for one machine, however many pages watch (default 2s; 30s when the
	// store cannot count and the console pages through it).
	CountEvery time.Duration
	// ScanLimit bounds the executions read to count them when the store is
	// not an engine.Counter (default 10,000); counts beyond it are marked
	// truncated.
	ScanLimit int
	// GraphCacheDir keeps Graphviz's compiled module between processes ("":
	// compile it once per process).
	GraphCacheDir string
	// Clock tells the time (lease held, rate limits); nil means time.Now.
	Clock func() time.Time
	// Logger logs failed requests; nil discards.
	Logger *slog.Logger
}

// Server is the console: an http.Handler.
type Server struct {
	o       Options
	token   string
	handler http.Handler
	index   []byte
	counts  *counts
	graphs  *graphs
	logger  *slog.Logger
}

// TokenHeader is the header that carries the per-process token.
const TokenHeader = "X-LFSM-Token"

const secretCookie = "lfsm_secret"

// New builds the console.
func New(o Options) (*Server, error) {
	if o.Store == nil || o.Operator == nil {
		return nil, errors.New("ui: Store and Operator are required")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.ScanLimit <= 0 {
		o.ScanLimit = 10000
	}
	s := &Server{o: o, token: o.Token, logger: o.Logger}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.token == "" {
		s.token = RandomSecret()
	}
	every := o.CountEvery
	counter, ok := o.Store.(engine.Counter)
	if !ok {
		counter = &scanCounter{store: o.Store, limit: o.ScanLimit}
	}
	if every <= 0 {
		every = 2 * time.Second
		if !ok {
			every = 30 * time.Second
		}
	}
	s.counts = newCounts(counter, !ok, every, o.Clock)
	s.graphs = &graphs{spec: o.Spec, cacheDir: o.GraphCacheDir, m: map[string]*graphEntry{}}
	tmpl, err := template.ParseFS(assets, "assets/index.html")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, map[string]string{"Token": s.token, "Target": o.Target}); err != nil {
		return nil, err
	}
	s.index = b.Bytes()

	mux := http.NewServeMux()
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.serveIndex)
	mux.HandleFunc("GET /api/machines", s.apiMachines)
	mux.HandleFunc("GET /api/machines/{machine}/graph.svg", s.apiGraph)
	mux.HandleFunc("GET /api/counts", s.apiCounts)
	mux.HandleFunc("GET /api/counts/stream", s.apiCountsStream)
	mux.HandleFunc("GET /api/executions", s.apiExecutions)
	mux.HandleFunc("GET /api/executions/{id}", s.apiExecution)
	mux.HandleFunc("GET /api/executions/{id}/context", s.apiContext)
	mux.HandleFunc("POST /api/executions/{id}/stop", s.apiStop)
	mux.HandleFunc("POST /api/executions/{id}/resume", s.apiResume)
	mux.HandleFunc("POST /api/executions/{id}/send", s.apiSend)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API: "+r.Method+" "+r.URL.Path+" (docs/ui.md lists them)")
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	s.handler = s.guard(cop.Handler(mux))
	return s, nil
}

// Token is the per-process token mutating requests carry.
func (s *Server) Token() string { return s.token }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// RandomSecret returns 32 random hex digits (a token or a secret).
func RandomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// guard checks the Host (on loopback), the secret (when set) and the token
// of mutating requests, and sets the headers every response has.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		if s.o.Loopback && !loopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, "this console listens on loopback: open it as http://127.0.0.1 or http://localhost")
			return
		}
		if s.o.Secret != "" && !s.secretOK(w, r) {
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get(TokenHeader)), []byte(s.token)) != 1 {
				writeError(w, http.StatusForbidden, "missing or wrong "+TokenHeader+" header: mutating requests carry the token of the page (its meta lfsm-token)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// secretOK accepts the secret from the cookie, a bearer header, or the
// query of the page's URL (which sets the cookie and redirects without it).
func (s *Server) secretOK(w http.ResponseWriter, r *http.Request) bool {
	eq := func(v string) bool { return v != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.o.Secret)) == 1 }
	if c, err := r.Cookie(secretCookie); err == nil && eq(c.Value) {
		return true
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(v) {
		return true
	}
	if r.URL.Path == "/" && eq(r.URL.Query().Get("secret")) {
		http.SetCookie(w, &http.Cookie{Name: secretCookie, Value: s.o.Secret, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return false
	}
	writeError(w, http.StatusUnauthorized, "this console needs the secret lfsm ui printed: open the URL it printed, or send Authorization: Bearer SECRET")
	return false
}

func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(s.index)
}

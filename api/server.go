// Package api is riskd's HTTP API: the synchronous decide call for the
// payment authorization hook, and the admin routes for analysts and
// support. Every route is authenticated with a bearer token whose role
// must be allowed on the route; request bodies are size-limited.
//
// A Server routes; each group of routes comes from a constructor that
// takes what it consumes: DecideRoute a Decider (the stream pipeline),
// AccountRoutes an Accounts (LockService: engine, audit table, actions
// topic), TimelineRoutes the store and the engine's lock state, CaseRoutes
// the store, AlertStreamRoute the notifier's stream. The rules API
// (api/rulesapi) adds its own routes to the same Server.
//
//	srv := api.NewServer(tokens, log, reg)
//	srv.Handle(api.DecideRoute(pipe, api.DecideConfig{OnTimeout: rules.Allow, Rules: holder}, reg))
//	srv.Handle(api.AccountRoutes(api.NewLockService(eng, store, pipe, time.Now))...)
//	mux.Handle("/v1/", srv)
package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Route is one endpoint: a net/http pattern ("POST /v1/decide"), the roles
// that may call it (admin always may), and its handler.
type Route struct {
	Pattern string
	Roles   []Role
	// MaxBody bounds the request body; 0 means DefaultMaxBody.
	MaxBody int64
	Handler http.Handler
}

// DefaultMaxBody is the body limit of routes that set none.
const DefaultMaxBody = 1 << 20

// Server routes authenticated requests.
type Server struct {
	mux      *http.ServeMux
	tokens   []Token
	log      *slog.Logger
	requests *prometheus.CounterVec
	routes   []string
}

// NewServer makes a server for tokens; reg receives its request metrics
// (nil: not registered).
func NewServer(tokens []Token, log *slog.Logger, reg prometheus.Registerer) *Server {
	s := &Server{
		mux:    http.NewServeMux(),
		tokens: tokens,
		log:    log,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "riskd_api_requests_total", Help: "API requests by route and status code.",
		}, []string{"route", "status"}),
	}
	if reg != nil {
		reg.MustRegister(s.requests)
	}
	return s
}

// Handle adds routes.
func (s *Server) Handle(routes ...Route) {
	for _, rt := range routes {
		s.routes = append(s.routes, rt.Pattern)
		s.mux.Handle(rt.Pattern, s.guard(rt))
	}
}

// Patterns lists the registered routes, for tests that must cover them all.
func (s *Server) Patterns() []string { return append([]string(nil), s.routes...) }

// ServeHTTP authenticates every request before routing it, so a caller
// without a valid token learns nothing, not even which routes exist
// (a wrong method would otherwise answer 405).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, ok := authenticate(s.tokens, r)
	if !ok {
		s.requests.WithLabelValues("unauthenticated", strconv.Itoa(http.StatusUnauthorized)).Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="riskd"`)
		WriteError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	s.mux.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), caller)))
}

// Authenticate returns the caller whose token secret is secret, compared
// as a bearer token is: the console exchanges a token for a session with it.
func (s *Server) Authenticate(secret string) (Caller, bool) {
	return matchSecret(s.tokens, secret)
}

// HasTokens reports whether any token is configured; with none, every
// request is refused and a sign-in could never succeed.
func (s *Server) HasTokens() bool { return len(s.tokens) > 0 }

// ServeAs routes r as caller, already authenticated by other means (the
// console's session cookie): the route's role check and body limit apply
// as they do to a bearer token.
func (s *Server) ServeAs(w http.ResponseWriter, r *http.Request, caller Caller) {
	s.mux.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), caller)))
}

// guard authorises, limits the body and counts the request.
func (s *Server) guard(rt Route) http.Handler {
	limit := rt.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() { s.requests.WithLabelValues(rt.Pattern, strconv.Itoa(sw.status)).Inc() }()
		caller, ok := CallerFrom(r.Context()) // ServeHTTP authenticated it
		if !ok {
			WriteError(sw, http.StatusUnauthorized, "missing or invalid bearer token")
			return
		}
		if !allowed(caller.Role, rt.Roles) {
			s.log.Warn("api: forbidden", "route", rt.Pattern, "token", caller.Name, "role", caller.Role)
			WriteError(sw, http.StatusForbidden, "role "+string(caller.Role)+" may not call "+rt.Pattern)
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
		rt.Handler.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status code for the request metric. It keeps
// Flush working for streaming responses.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	// Details carries structured problems, e.g. a rule's id and position.
	Details any `json:"details,omitempty"`
}

// WriteError writes an ErrorBody.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, ErrorBody{Error: msg})
}

// ReadBody reads a request body, answering 413 when it is over the
// route's limit; ok is false when a response was already written.
func ReadBody(w http.ResponseWriter, r *http.Request) (body []byte, ok bool) {
	b, err := readAll(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			WriteError(w, http.StatusRequestEntityTooLarge, "request body over "+strconv.FormatInt(tooBig.Limit, 10)+" bytes")
		} else {
			WriteError(w, http.StatusBadRequest, "reading body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// DecodeJSON reads a JSON body into v (unknown fields rejected).
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, ok := ReadBody(w, r)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

// since formats a duration in fractional milliseconds for responses.
func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

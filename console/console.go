// Package console is riskd's web console: a browser app for analysts and
// support served from the binary at /console. It signs a browser in by
// exchanging an API token for a session cookie, and hands the app's
// /console/api/v1/... calls to the API server as the session's caller, so
// the API's role checks are the console's. The app itself is plain ES
// modules and CSS embedded from assets/, with no external request.
//
//	h, err := console.New(console.Config{SessionTTL: 8 * time.Hour}, apiServer, log)
//	mux.Handle("/console", h)
//	mux.Handle("/console/", h)
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"riskd/api"
)

//go:embed assets
var embedded embed.FS

// Config tunes the console.
type Config struct {
	// SessionTTL is how long a sign-in lasts (config console.session_ttl).
	SessionTTL time.Duration
	// MaxSessions bounds the sessions held at once; 0 means DefaultMaxSessions.
	MaxSessions int
	// Secure marks the cookie Secure: set it when riskd serves TLS.
	Secure bool
	// Now is the clock of session expiry; nil means time.Now.
	Now func() time.Time
}

// Defaults and bounds of Config.
const (
	DefaultSessionTTL  = 8 * time.Hour
	MinSessionTTL      = 5 * time.Minute
	MaxSessionTTL      = 7 * 24 * time.Hour
	DefaultMaxSessions = 10000
	// maxSignInBody bounds the sign-in body: a token and a little JSON.
	maxSignInBody = 4 << 10
)

// CookieName is the session cookie.
const CookieName = "riskd_session"

// Validate checks the config; messages name the config key.
func (c Config) Validate() error {
	if c.SessionTTL < MinSessionTTL || c.SessionTTL > MaxSessionTTL {
		return fmt.Errorf("console.session_ttl: %s is outside %s..%s", c.SessionTTL, MinSessionTTL, MaxSessionTTL)
	}
	if c.MaxSessions < 0 {
		return errors.New("console: MaxSessions is negative")
	}
	return nil
}

// Console serves the app, the session endpoints and the API pass-through.
type Console struct {
	cfg      Config
	api      *api.Server
	log      *slog.Logger
	sessions *sessions
	throttle *throttle
	assets   http.Handler
	index    []byte
}

// ErrNoTokens is returned by New when the API has no tokens: no one could
// sign in, so the console is off.
var ErrNoTokens = errors.New("console: auth has no tokens, so no one could sign in")

// New makes the console in front of srv.
func New(cfg Config, srv *api.Server, log *slog.Logger) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !srv.HasTokens() {
		return nil, ErrNoTokens
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		return nil, fmt.Errorf("console: assets: %w", err)
	}
	return &Console{cfg: cfg, api: srv, log: log, index: index,
		sessions: newSessions(cfg.SessionTTL, cfg.MaxSessions, cfg.Now),
		throttle: newThrottle(signInFailures, signInWindow, maxThrottled, cfg.Now),
		assets:   http.StripPrefix("/console/assets/", http.FileServerFS(sub))}, nil
}

// contentSecurityPolicy allows this origin only, and no inline script.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// ServeHTTP routes /console/...: the app, its assets, the session and the API.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !c.sameOrigin(r) {
		c.log.Warn("console: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		api.WriteError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	p := r.URL.Path
	switch {
	case p == "/console":
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
	case p == "/console/" || p == "/console/index.html":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			api.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Cache-Control", "no-cache")
		w.Write(c.index)
	case strings.HasPrefix(p, "/console/assets/") && strings.HasSuffix(p, "/"):
		api.WriteError(w, http.StatusNotFound, "not found") // no directory listings
	case strings.HasPrefix(p, "/console/assets/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			api.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		// Assets change with the binary; no-cache revalidates them.
		hdr.Set("Cache-Control", "no-cache")
		if path.Ext(p) == ".js" { // modules must be JavaScript, whatever the host's mime.types says
			hdr.Set("Content-Type", "text/javascript; charset=utf-8")
		}
		c.assets.ServeHTTP(w, r)
	case p == "/console/session":
		hdr.Set("Cache-Control", "no-store")
		c.serveSession(w, r)
	case strings.HasPrefix(p, "/console/api/v1/"):
		hdr.Set("Cache-Control", "no-store")
		c.serveAPI(w, r)
	default:
		api.WriteError(w, http.StatusNotFound, "not found")
	}
}

// sameOrigin reports whether a changing request comes from this host: its
// Origin, when the browser sent one, must name the host it was sent to.
func (c *Console) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// whoAmI is the body of GET and POST /console/session.
type whoAmI struct {
	Name    string   `json:"name"`
	Role    api.Role `json:"role"`
	CSRF    string   `json:"csrf"`
	Expires int64    `json:"expires"` // Unix milliseconds
}

func (c *Console) serveSession(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		c.signIn(w, r)
	case http.MethodGet:
		_, sess, ok := c.session(r)
		if !ok {
			api.WriteError(w, http.StatusUnauthorized, "not signed in")
			return
		}
		api.WriteJSON(w, http.StatusOK, whoAmI{Name: sess.caller.Name, Role: sess.caller.Role,
			CSRF: sess.csrf, Expires: sess.expires.UnixMilli()})
	case http.MethodDelete:
		id, sess, ok := c.session(r)
		if !ok {
			c.clearCookie(w)
			api.WriteError(w, http.StatusUnauthorized, "not signed in")
			return
		}
		if !sameSecret(r.Header.Get("X-CSRF-Token"), sess.csrf) {
			api.WriteError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token")
			return
		}
		c.sessions.end(id)
		c.clearCookie(w)
		c.log.Info("console: signed out", "token", sess.caller.Name)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		api.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// signIn exchanges an API token, sent as JSON {"token": ...} or as the
// form field token, for a session cookie.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	addr := clientAddr(r.RemoteAddr)
	if wait, first, ok := c.throttle.check(addr); !ok {
		if first {
			c.log.Warn("console: sign-ins throttled after failures", "remote", addr, "failures", signInFailures, "retry_after", wait)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		api.WriteError(w, http.StatusTooManyRequests, "too many failed sign-ins from this address: try again later")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSignInBody))
	if err != nil {
		api.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("sign-in body over %d bytes", maxSignInBody))
		return
	}
	var token string
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var in struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			api.WriteError(w, http.StatusBadRequest, "invalid JSON body: want {\"token\": \"...\"}")
			return
		}
		token = in.Token
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			api.WriteError(w, http.StatusBadRequest, "invalid form body")
			return
		}
		token = form.Get("token")
	default:
		api.WriteError(w, http.StatusUnsupportedMediaType, "send the token as JSON or as a form")
		return
	}
	caller, ok := c.api.Authenticate(token)
	if !ok {
		// The token itself is never logged: it may be a real one mistyped.
		c.log.Warn("console: sign-in refused", "remote", r.RemoteAddr)
		c.throttle.fail(addr)
		api.WriteError(w, http.StatusUnauthorized, "unknown token")
		return
	}
	id, sess := c.sessions.create(caller)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/console", MaxAge: int(c.cfg.SessionTTL.Seconds()),
		HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
	c.log.Info("console: signed in", "token", caller.Name, "role", caller.Role)
	api.WriteJSON(w, http.StatusOK, whoAmI{Name: caller.Name, Role: caller.Role, CSRF: sess.csrf, Expires: sess.expires.UnixMilli()})
}

func (c *Console) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/console", MaxAge: -1,
		HttpOnly: true, Secure: c.cfg.Secure, SameSite: http.SameSiteStrictMode})
}

// session finds the request's live session.
func (c *Console) session(r *http.Request) (id string, sess session, ok bool) {
	ck, err := r.Cookie(CookieName)
	if err != nil {
		return "", session{}, false
	}
	sess, ok = c.sessions.get(ck.Value)
	return ck.Value, sess, ok
}

// serveAPI hands /console/api/v1/... to the API as /v1/... with the
// session's caller. A changing request must carry the session's CSRF token.
func (c *Console) serveAPI(w http.ResponseWriter, r *http.Request) {
	_, sess, ok := c.session(r)
	if !ok {
		api.WriteError(w, http.StatusUnauthorized, "not signed in")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameSecret(r.Header.Get("X-CSRF-Token"), sess.csrf) {
		c.log.Warn("console: request without its CSRF token refused", "method", r.Method, "path", r.URL.Path, "token", sess.caller.Name)
		api.WriteError(w, http.StatusForbidden, "missing or wrong X-CSRF-Token")
		return
	}
	// The request ends with its session: at its expiry, or when it is
	// signed out (a live alert stream would otherwise outlive it).
	ctx, cancel := context.WithDeadline(r.Context(), sess.expires)
	defer cancel()
	go func() {
		select {
		case <-sess.ended:
			cancel()
		case <-ctx.Done():
		}
	}()
	r2 := r.Clone(ctx)
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/console/api")
	if r.URL.RawPath != "" {
		r2.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, "/console/api")
	}
	if path.Clean(r2.URL.Path) != r2.URL.Path {
		api.WriteError(w, http.StatusBadRequest, "unclean path")
		return
	}
	r2.RequestURI = ""
	r2.Header.Del("Authorization") // the session is the credential, never a header
	r2.Header.Del("Cookie")
	c.api.ServeAs(w, r2, sess.caller)
}

package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Prefix is the path the console is served under on the admin listener.
const Prefix = "/console/"

// Actor is the actor of every record the console writes.
const Actor = "console"

// cookieName names the session cookie.
const cookieName = "jwtguard_console"

// Config configures the console.
type Config struct {
	// Token is the admin token: the console signs the operator in with
	// it and calls the admin API with it. Empty: the console is off and
	// answers every page with a note saying so.
	Token string
	// TLS is true when the admin listener serves TLS: the session cookie
	// is then Secure.
	TLS bool
	// SessionTTL is how long a session lasts after sign-in. Default 8 h.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions kept; signing in past it ends the
	// oldest. Default 64.
	MaxSessions int
	// Log receives sign-in and action lines. Default slog.Default().
	Log *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// session is one signed-in browser.
type session struct {
	csrf    string
	expires time.Time
	created time.Time
}

// Console is the console's http.Handler, mounted at Prefix.
type Console struct {
	api   http.Handler
	rates *Rates
	cfg   Config

	mu       sync.Mutex
	sessions map[string]*session
}

// New returns the console over api, the admin API's handler, with the
// decision counters rates (nil: the rates view stays empty).
func New(api http.Handler, rates *Rates, cfg Config) *Console {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if rates == nil {
		rates = NewRates()
	}
	return &Console{api: api, rates: rates, cfg: cfg, sessions: map[string]*session{}}
}

// Mount returns a handler serving the console under Prefix and everything
// else with api.
func Mount(c *Console, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Prefix, c)
	mux.Handle("/console", http.RedirectHandler(Prefix, http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}

// securityHeaders are set on every answer of the console.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send Origin: null on our own forms
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// ServeHTTP routes the console's pages.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	p := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/"))
	if strings.HasPrefix(p, "/static/") {
		serveStatic(w, r, strings.TrimPrefix(p, "/static/"))
		return
	}
	if c.cfg.Token == "" {
		c.render(w, http.StatusServiceUnavailable, "off", nil, page{Title: "Console off"})
		return
	}
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	if p == "/login" {
		c.login(w, r)
		return
	}
	s := c.session(r)
	if s == nil {
		if r.Method != http.MethodGet {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
			http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
			return
		}
	}
	route, ok := routes[routeKey{r.Method, p}]
	if !ok {
		if _, get := routes[routeKey{http.MethodGet, p}]; get {
			w.Header().Set("Allow", "GET")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		http.NotFound(w, r)
		return
	}
	route(c, w, r, s)
}

// routeKey is one route: method and path under Prefix.
type routeKey struct{ method, path string }

// routes are the console's pages and actions.
var routes map[routeKey]func(*Console, http.ResponseWriter, *http.Request, *session)

// sameOrigin refuses a POST that a browser says comes from another site
// (Origin or Sec-Fetch-Site), on top of the CSRF token.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// login serves the sign-in form and checks the admin token against the
// admin API itself, so that a wrong token is refused (and audited) as any
// other admin authentication failure.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		c.render(w, http.StatusOK, "login", nil, page{Title: "Sign in"})
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tok := r.PostForm.Get("token")
	res := c.callAs(r, tok, http.MethodGet, "/v1/status", nil)
	if res.status != http.StatusOK || subtle.ConstantTimeCompare([]byte(tok), []byte(c.cfg.Token)) != 1 {
		c.cfg.Log.Warn("console sign-in refused", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "login", nil, page{Title: "Sign in", Error: "Wrong admin token."})
		return
	}
	id, s := c.newSession()
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: Prefix, HttpOnly: true, Secure: c.cfg.TLS || r.TLS != nil,
		SameSite: http.SameSiteStrictMode, Expires: s.expires,
	})
	c.cfg.Log.Info("console sign-in", "remote", r.RemoteAddr)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// logout ends the session.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.mu.Lock()
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix, HttpOnly: true, Secure: c.cfg.TLS || r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newSession starts a session, ending the oldest when MaxSessions are held.
func (c *Console) newSession() (string, *session) {
	now := c.cfg.Now()
	s := &session{csrf: randomString(), created: now, expires: now.Add(c.cfg.SessionTTL)}
	id := randomString()
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, old := range c.sessions {
		if !now.Before(old.expires) {
			delete(c.sessions, k)
		}
	}
	for len(c.sessions) >= c.cfg.MaxSessions {
		var oldest string
		for k, old := range c.sessions {
			if oldest == "" || old.created.Before(c.sessions[oldest].created) {
				oldest = k
			}
		}
		delete(c.sessions, oldest)
	}
	c.sessions[id] = s
	return id, s
}

// session returns r's live session, or nil.
func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s == nil {
		return nil
	}
	if !c.cfg.Now().Before(s.expires) {
		delete(c.sessions, ck.Value)
		return nil
	}
	return s
}

// apiResult is one in-process admin API answer.
type apiResult struct {
	status int
	body   []byte
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// call calls the admin API with the admin token on behalf of the browser
// request r (its remote address, for the API's log and audit trail).
func (c *Console) call(r *http.Request, method, path string, body []byte) apiResult {
	return c.callAs(r, c.cfg.Token, method, path, body)
}

// maxAPIAnswer bounds an API answer the console renders.
const maxAPIAnswer = 8 << 20

func (c *Console) callAs(r *http.Request, token, method, path string, body []byte) apiResult {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return apiResult{status: http.StatusInternalServerError, body: []byte(err.Error())}
	}
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "jwtguard-console")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{h: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	b, _ := io.ReadAll(io.LimitReader(&rec.body, maxAPIAnswer))
	return apiResult{status: rec.status, body: b}
}

// errNotAvailable: the admin API of this build has no such endpoint.
var errNotAvailable = errors.New("not available in this build")

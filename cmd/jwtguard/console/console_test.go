package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/console"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/source"
)

const adminToken = "console-test-admin-token-0123456789"

// env is a console over a real admin API and embedded store.
type env struct {
	srv   *httptest.Server
	store *embedded.Store
}

func newEnv(t *testing.T, token string) *env {
	t.Helper()
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	api := admin.NewHandler(store, rev, admin.Config{Token: token}, admin.WithLogger(log))
	c := console.New(api, nil, console.Config{Token: token, Log: log})
	srv := httptest.NewServer(console.Mount(c, api))
	t.Cleanup(srv.Close)
	return &env{srv: srv, store: store}
}

// browser is a client with a cookie jar that does not follow redirects.
func (e *env) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func post(t *testing.T, c *http.Client, u string, form url.Values, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login signs c in and returns the session's CSRF token.
func (e *env) login(t *testing.T, c *http.Client) string {
	t.Helper()
	code, _ := post(t, c, e.srv.URL+"/console/login", url.Values{"token": {adminToken}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", code)
	}
	code, body, _ := get(t, c, e.srv.URL+"/console/revoke")
	m := csrfField.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("revoke page: %d, csrf %v", code, m)
	}
	return m[1]
}

func (e *env) records(t *testing.T) int {
	t.Helper()
	st, err := e.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Records
}

// TestConsoleRefusesWithoutSession: every page and action needs a session
// from the admin token; a wrong token, no cookie, a forged cookie, a
// missing or wrong CSRF token, or a cross-site request changes nothing.
func TestConsoleRefusesWithoutSession(t *testing.T) {
	e := newEnv(t, adminToken)
	revoke := url.Values{"kind": {"subject"}, "issuer": {"https://issuer.test"}, "value": {"alice"}, "reason": {"r"}, "confirm": {"yes"}}

	anon := e.browser(t)
	if code, _, h := get(t, anon, e.srv.URL+"/console/revocations"); code != http.StatusSeeOther || h.Get("Location") != "/console/login" {
		t.Errorf("page without session: %d to %q, want redirect to sign-in", code, h.Get("Location"))
	}
	if code, _ := post(t, anon, e.srv.URL+"/console/login", url.Values{"token": {"wrong"}}, nil); code != http.StatusUnauthorized {
		t.Errorf("wrong admin token: %d, want 401", code)
	}
	if code, _ := post(t, anon, e.srv.URL+"/console/revoke", revoke, nil); code != http.StatusUnauthorized {
		t.Errorf("revoke without session: %d, want 401", code)
	}
	forged := e.browser(t)
	u, _ := url.Parse(e.srv.URL + "/console/")
	forged.Jar.SetCookies(u, []*http.Cookie{{Name: "jwtguard_console", Value: "made-up"}})
	if code, _ := post(t, forged, e.srv.URL+"/console/revoke", revoke, nil); code != http.StatusUnauthorized {
		t.Errorf("revoke with a forged cookie: %d, want 401", code)
	}

	b := e.browser(t)
	csrf := e.login(t, b)
	tests := []struct {
		name string
		csrf string
		hdr  map[string]string
		want int
	}{
		{"no csrf", "", nil, http.StatusForbidden},
		{"wrong csrf", csrf + "x", nil, http.StatusForbidden},
		{"cross-site", csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign origin", csrf, map[string]string{"Origin": "https://evil.test"}, http.StatusForbidden},
		{"null origin", csrf, map[string]string{"Origin": "null"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		form := url.Values{}
		for k, v := range revoke {
			form[k] = v
		}
		if tt.csrf != "" {
			form.Set("csrf", tt.csrf)
		}
		if code, _ := post(t, b, e.srv.URL+"/console/revoke", form, tt.hdr); code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, code, tt.want)
		}
	}
	if n := e.records(t); n != 0 {
		t.Fatalf("%d records stored by refused requests", n)
	}

	// The same request with the session's CSRF token is stored, as the
	// console.
	form := url.Values{"csrf": {csrf}}
	for k, v := range revoke {
		form[k] = v
	}
	if code, body := post(t, b, e.srv.URL+"/console/revoke", form, map[string]string{"Origin": e.srv.URL}); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	recs, _, err := e.store.List(context.Background(), source.ListQuery{})
	if err != nil || len(recs) != 1 || recs[0].Actor != console.Actor || recs[0].Value != "alice" {
		t.Fatalf("stored %+v, %v; want one subject record by the console", recs, err)
	}

	// Signing out ends the session: the old cookie no longer works.
	if code, _ := post(t, b, e.srv.URL+"/console/logout", url.Values{"csrf": {csrf}}, nil); code != http.StatusSeeOther {
		t.Errorf("sign-out: %d", code)
	}
	if code, _ := post(t, b, e.srv.URL+"/console/revoke", form, nil); code != http.StatusUnauthorized {
		t.Errorf("revoke after sign-out: %d, want 401", code)
	}
}

// TestConsoleHeaders: the cookie is HttpOnly and SameSite=Strict, and
// every answer carries a strict Content-Security-Policy.
func TestConsoleHeaders(t *testing.T) {
	e := newEnv(t, adminToken)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/console/login", strings.NewReader(url.Values{"token": {adminToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "jwtguard_console" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/console/" || len(ck.Value) < 40 {
		t.Fatalf("session cookie %+v", ck)
	}
	for _, p := range []string{"/console/login", "/console/static/console.js", "/console/revocations"} {
		_, _, h := get(t, http.DefaultClient, e.srv.URL+p)
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", p, h.Get("X-Frame-Options"))
		}
	}
	// The admin API itself is still served beside the console.
	if code, _, _ := get(t, http.DefaultClient, e.srv.URL+"/v1/status"); code != http.StatusUnauthorized {
		t.Errorf("admin API without token: %d, want 401", code)
	}
}

// TestConsoleOffWithoutToken: without an admin token there is no way to
// sign in, so the console is off.
func TestConsoleOffWithoutToken(t *testing.T) {
	e := newEnv(t, "")
	for _, p := range []string{"/console/", "/console/login"} {
		if code, body, _ := get(t, http.DefaultClient, e.srv.URL+p); code != http.StatusServiceUnavailable || !strings.Contains(body, "admin-token-file") {
			t.Errorf("%s: %d", p, code)
		}
	}
	if code, _ := post(t, http.DefaultClient, e.srv.URL+"/console/login", url.Values{"token": {""}}, nil); code != http.StatusServiceUnavailable {
		t.Errorf("sign-in with an empty token: %d, want 503", code)
	}
}

// TestConsoleRevokeBounds: a console action names at most so many
// records, each valid, with a reason.
func TestConsoleRevokeBounds(t *testing.T) {
	e := newEnv(t, adminToken)
	b := e.browser(t)
	csrf := e.login(t, b)
	many := url.Values{"csrf": {csrf}, "reason": {"r"}, "confirm": {"yes"}}
	for i := 0; i < 1001; i++ {
		many.Add("kind", "subject")
		many.Add("issuer", "")
		many.Add("value", "u"+strings.Repeat("x", i%3))
	}
	tests := []struct {
		name string
		form url.Values
	}{
		{"too many", many},
		{"no reason", url.Values{"csrf": {csrf}, "kind": {"subject"}, "issuer": {""}, "value": {"a"}, "confirm": {"yes"}}},
		{"bad kind", url.Values{"csrf": {csrf}, "kind": {"everyone"}, "issuer": {""}, "value": {"a"}, "reason": {"r"}, "confirm": {"yes"}}},
		{"uneven fields", url.Values{"csrf": {csrf}, "kind": {"subject", "subject"}, "issuer": {""}, "value": {"a"}, "reason": {"r"}, "confirm": {"yes"}}},
		{"not confirmed", url.Values{"csrf": {csrf}, "kind": {"subject"}, "issuer": {""}, "value": {"a"}, "reason": {"r"}}},
	}
	for _, tt := range tests {
		if code, _ := post(t, b, e.srv.URL+"/console/revoke", tt.form, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", tt.name, code)
		}
	}
	if n := e.records(t); n != 0 {
		t.Fatalf("%d records stored", n)
	}
}

package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	issO         = "https://as.test" // the issuer of opaque tokens
	clientID     = "jwtguard client" // a space: the Basic credentials are form-encoded
	clientSecret = "s3cret:with/odd&chars"
)

// authServer is an OAuth 2.0 introspection endpoint (RFC 7662) in the
// test: it checks jwtguard's client authentication and answers from a
// table of tokens, or misbehaves as the test says.
type authServer struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string]string // token -> JSON answer; others are inactive
	mode    string            // "", "down", "garbage", "oversized", "html", "slow", "active-string", "duplicate"
	release chan struct{}     // closes to end "slow" answers
	once    sync.Once
	calls   atomic.Int32
	badAuth atomic.Int32
}

func newAuthServer(t testing.TB) *authServer {
	t.Helper()
	s := &authServer{answers: map[string]string{}, release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.unblock()
		s.Close()
	})
	return s
}

func (s *authServer) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	id, secret, ok := r.BasicAuth()
	// RFC 6749 2.3.1: both are form-encoded before Basic encoding.
	if !ok || r.Method != http.MethodPost || id != "jwtguard+client" || secret != "s3cret%3Awith%2Fodd%26chars" ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		s.badAuth.Add(1)
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	answer, known := s.answers[r.PostForm.Get("token")]
	mode := s.mode
	s.mu.Unlock()
	if !known {
		answer = `{"active":false}`
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch mode {
	case "down":
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	case "garbage":
		answer = `{"active":true,`
	case "oversized":
		answer = `{"active":true,"pad":"` + strings.Repeat("x", maxIntrospectionBytes) + `"}`
	case "html":
		w.Header().Set("Content-Type", "text/html")
	case "slow":
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
		return
	case "active-string":
		answer = `{"active":"true"}`
	case "duplicate":
		answer = strings.Replace(answer, `{"active":true`, `{"active":false,"active":true`, 1)
	}
	_, _ = w.Write([]byte(answer))
}

// unblock ends every "slow" answer, with an empty body.
func (s *authServer) unblock() { s.once.Do(func() { close(s.release) }) }

func (s *authServer) set(tok string, answer map[string]any) {
	b, _ := json.Marshal(answer)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[tok] = string(b)
}

func (s *authServer) setMode(mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode = mode
}

// opaqueWorld is a checker whose issuer issO judges opaque tokens at an
// authServer, with a clock the test moves.
type opaqueWorld struct {
	as      *authServer
	checker *Checker
	rev     *Revocations
	src     *memSource
	clock   atomic.Int64
	now     int64
}

func newOpaqueWorld(t testing.TB, mod func(*Config)) *opaqueWorld {
	t.Helper()
	w := &opaqueWorld{as: newAuthServer(t), src: newMemSource(), now: time.Now().Unix()}
	w.clock.Store(w.now)
	cfg := DefaultConfig()
	cfg.Leeway = 0
	ic := DefaultIssuerConfig(issO)
	ic.Audiences = []string{"api"}
	in := DefaultIntrospectionConfig()
	in.URL, in.ClientID = w.as.URL, clientID
	in.ClientSecretFile = writeTestFile(t, t.TempDir(), "client.secret", []byte(clientSecret+"\n"))
	in.Scopes = []string{"read"}
	in.Timeout = 200 * time.Millisecond // only the "slow" endpoint reaches it
	ic.Introspection = &in
	cfg.Issuers = []IssuerConfig{ic}
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, ClaimHeader{Claim: "username", Header: "x-user"})
	if mod != nil {
		mod(&cfg)
	}
	w.rev = newTestRevocations(t, w.src)
	var err error
	w.checker, err = NewChecker(cfg, w.rev, WithClock(func() time.Time { return time.Unix(w.clock.Load(), 0) }))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// active is the answer for a valid token of sub alice, changed by mod.
func (w *opaqueWorld) active(mod func(map[string]any)) map[string]any {
	a := map[string]any{
		"active": true, "iss": issO, "sub": "alice", "sid": "sess-1", "aud": "api", "scope": "read write",
		"iat": w.now - 60, "exp": w.now + 600, "client_id": "app", "username": "alice@example.test",
	}
	if mod != nil {
		mod(a)
	}
	return a
}

func (w *opaqueWorld) check(tok string) Decision {
	return w.checker.Check(context.Background(), MapHeaders{"authorization": "Bearer " + tok})
}

func TestIntrospectionAnswers(t *testing.T) {
	w := newOpaqueWorld(t, nil)
	tests := []struct {
		name   string
		answer map[string]any // nil: unknown to the server
		want   Reason
	}{
		{"active", w.active(nil), ReasonOK},
		{"active, aud in an array", w.active(func(a map[string]any) { a["aud"] = []string{"other", "api"} }), ReasonOK},
		{"active, no iss (optional)", w.active(func(a map[string]any) { delete(a, "iss") }), ReasonOK},
		{"unknown token", nil, ReasonInactive},
		{"inactive", map[string]any{"active": false}, ReasonInactive},
		{"inactive with claims", w.active(func(a map[string]any) { a["active"] = false }), ReasonInactive},
		{"expired", w.active(func(a map[string]any) { a["exp"] = w.now - 1 }), ReasonExpired},
		{"no exp", w.active(func(a map[string]any) { delete(a, "exp") }), ReasonLifetimeTooLong},
		{"no iat", w.active(func(a map[string]any) { delete(a, "iat") }), ReasonLifetimeTooLong},
		{"lifetime too long", w.active(func(a map[string]any) { a["exp"] = w.now + 48*3600 }), ReasonLifetimeTooLong},
		{"not yet valid", w.active(func(a map[string]any) { a["nbf"] = w.now + 60 }), ReasonNotYetValid},
		{"other issuer", w.active(func(a map[string]any) { a["iss"] = "https://evil.test" }), ReasonWrongIssuer},
		{"other audience", w.active(func(a map[string]any) { a["aud"] = "other" }), ReasonWrongAudience},
		{"no aud", w.active(func(a map[string]any) { delete(a, "aud") }), ReasonWrongAudience},
		{"scope missing", w.active(func(a map[string]any) { a["scope"] = "write" }), ReasonInsufficientScope},
		{"scope as an array is not RFC 7662", w.active(func(a map[string]any) { a["scope"] = []string{"read"} }), ReasonInsufficientScope},
		{"sub not a string", w.active(func(a map[string]any) { a["sub"] = 7 }), ReasonIntrospectionUnavailable},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := "opaque-" + string(rune('a'+i)) + "-token"
			if tc.answer != nil {
				w.as.set(tok, tc.answer)
			}
			d := w.check(tok)
			if d.Reason != tc.want {
				t.Fatalf("%s (%v), want %s", d.Reason, d.Err, tc.want)
			}
			if d.Err != nil && strings.Contains(d.Err.Error(), tok) {
				t.Errorf("the error quotes the token: %v", d.Err)
			}
			if tc.want == ReasonInsufficientScope && d.RequiredScope != "read" {
				t.Errorf("required scope %q, want read", d.RequiredScope)
			}
			if tc.want != ReasonOK {
				return
			}
			rec, err := OpaqueTokenRecord("Bearer "+tok, issO)
			if err != nil {
				t.Fatal(err)
			}
			c := d.Claims
			if c.Issuer != issO || c.Subject != "alice" || c.Session != "sess-1" || c.TokenID != rec.Value || c.Extra[2] != "alice@example.test" {
				t.Errorf("claims %+v; want the answer's, and the token id of OpaqueTokenRecord %s", c, rec.Value)
			}
		})
	}
	if n := w.as.badAuth.Load(); n != 0 {
		t.Errorf("%d calls without the right client authentication", n)
	}
}

func TestIntrospectionCache(t *testing.T) {
	w := newOpaqueWorld(t, func(c *Config) { c.Issuers[0].Introspection.CacheTTL = 60 * time.Second })
	long, short := "long-lived", "short-lived"
	w.as.set(long, w.active(nil))
	w.as.set(short, w.active(func(a map[string]any) { a["exp"] = w.now + 30 }))
	w.as.set("inactive", map[string]any{"active": false})
	for _, tok := range []string{long, short, "inactive", long, short, "inactive"} {
		w.check(tok)
	}
	if n := w.as.calls.Load(); n != 3 {
		t.Fatalf("%d calls for 3 tokens asked twice, want 3: answers are cached", n)
	}

	// Past the short token's exp: its cached answer is not served.
	w.clock.Store(w.now + 30)
	if d := w.check(short); d.Reason != ReasonInactive && d.Reason != ReasonExpired {
		t.Errorf("short-lived token after its exp: %s, want expired or inactive", d.Reason)
	}
	if d := w.check(long); d.Reason != ReasonOK || w.as.calls.Load() != 4 {
		t.Errorf("long-lived token within the TTL: %s after %d calls, want ok from the cache", d.Reason, w.as.calls.Load())
	}

	// Revoked at the authorization server: refused once the TTL is over.
	w.as.set(long, map[string]any{"active": false})
	w.clock.Store(w.now + 59)
	if d := w.check(long); d.Reason != ReasonOK {
		t.Errorf("within the TTL: %s, want ok (cached)", d.Reason)
	}
	w.clock.Store(w.now + 60)
	if d := w.check(long); d.Reason != ReasonInactive {
		t.Errorf("after the TTL: %s, want inactive_token", d.Reason)
	}
}

func TestIntrospectionEndpointDown(t *testing.T) {
	w := newOpaqueWorld(t, func(c *Config) { c.Issuers[0].Introspection.CacheTTL = 60 * time.Second })
	w.as.set("known", w.active(nil))
	w.as.set("new", w.active(nil))
	if d := w.check("known"); d.Reason != ReasonOK {
		t.Fatal(d.Reason, d.Err)
	}
	for _, mode := range []string{"down", "garbage", "oversized", "html", "slow", "active-string", "duplicate"} {
		t.Run(mode, func(t *testing.T) {
			w.as.setMode(mode)
			defer w.as.setMode("")
			if d := w.check("known"); d.Reason != ReasonOK {
				t.Errorf("cached token: %s, want ok until its answer expires", d.Reason)
			}
			before := w.as.calls.Load()
			for range 2 {
				d := w.check("new")
				if d.Reason != ReasonIntrospectionUnavailable {
					t.Fatalf("new token: %s (%v), want introspection_unavailable", d.Reason, d.Err)
				}
				if strings.Contains(d.Err.Error(), "new") && mode != "garbage" {
					t.Logf("err: %v", d.Err)
				}
			}
			if got := w.as.calls.Load() - before; got != 2 {
				t.Errorf("%d calls for two checks, want 2: a failure is not cached", got)
			}
		})
	}
	// Down past the cached answer's TTL: deny, never allow.
	w.as.setMode("down")
	w.clock.Store(w.now + 60)
	if d := w.check("known"); d.Reason != ReasonIntrospectionUnavailable {
		t.Errorf("cached answer expired, endpoint down: %s, want introspection_unavailable", d.Reason)
	}
	w.as.setMode("")
	if d := w.check("new"); d.Reason != ReasonOK {
		t.Errorf("endpoint back: %s, want ok", d.Reason)
	}
}

func TestIntrospectionRevocations(t *testing.T) {
	w := newOpaqueWorld(t, nil)
	byToken, err := OpaqueTokenRecord("tok-1", issO) // as `jwtguard revoke --token tok-1 --issuer ...` makes it
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tok  string
		rec  Record
		kind Kind
	}{
		{"token", "tok-1", byToken, KindToken},
		{"subject", "tok-2", Record{Kind: KindSubject, Value: "bob"}, KindSubject},
		{"session", "tok-3", Record{Kind: KindSession, Issuer: issO, Value: "sess-3"}, KindSession},
		{"issuer-before", "tok-4", Record{Kind: KindIssuerBefore, Issuer: issO, Before: time.Unix(w.now-30, 0)}, KindIssuerBefore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.as.set(tc.tok, w.active(func(a map[string]any) {
				switch tc.kind {
				case KindSubject:
					a["sub"] = "bob"
				case KindSession:
					a["sid"] = "sess-3"
				}
			}))
			if d := w.check(tc.tok); d.Reason != ReasonOK {
				t.Fatalf("before: %s (%v)", d.Reason, d.Err)
			}
			w.src.store(tc.rec)
			w.rev.Enforce(tc.rec)
			if d := w.check(tc.tok); d.Reason != ReasonRevoked || d.RevokedBy != tc.kind {
				t.Fatalf("after: %s by %q, want revoked by %s", d.Reason, d.RevokedBy, tc.kind)
			}
		})
	}
	if d := w.check("tok-other"); d.Reason != ReasonInactive {
		t.Errorf("another token: %s", d.Reason)
	}
}

func TestIntrospectionBounds(t *testing.T) {
	w := newOpaqueWorld(t, nil)
	tests := []struct {
		name string
		tok  string
		want Reason
	}{
		{"odd characters", "abc\"def", ReasonMalformed},
		{"only padding", "===", ReasonMalformed},
		{"too large", strings.Repeat("a", 9000), ReasonTooLarge},
		{"JWS-shaped: not introspected", "a.b.c", ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := w.as.calls.Load()
			if d := w.check(tc.tok); d.Reason != tc.want {
				t.Errorf("%s (%v), want %s", d.Reason, d.Err, tc.want)
			}
			if w.as.calls.Load() != before {
				t.Error("the endpoint was asked")
			}
		})
	}
}

// TestIntrospectionFlood: new tokens arriving faster than the endpoint
// answers make at most maxIntrospectionsInFlight calls at once; the others
// are denied at once, and none is allowed.
func TestIntrospectionFlood(t *testing.T) {
	w := newOpaqueWorld(t, func(c *Config) { c.Issuers[0].Introspection.Timeout = 30 * time.Second })
	w.as.setMode("slow")
	const n = maxIntrospectionsInFlight + 16
	results := make(chan Decision, n)
	for i := range n {
		go func() { results <- w.check("flood-" + strings.Repeat("x", i)) }()
	}
	var got []Decision
	deadline := time.After(30 * time.Second)
	for len(got) < n-maxIntrospectionsInFlight {
		select {
		case d := <-results:
			got = append(got, d)
		case <-deadline:
			t.Fatalf("%d denies of the %d tokens past the bound", len(got), n-maxIntrospectionsInFlight)
		}
	}
	w.as.unblock()
	for len(got) < n {
		got = append(got, <-results)
	}
	for _, d := range got {
		if d.Reason != ReasonIntrospectionUnavailable {
			t.Errorf("%s (%v), want introspection_unavailable", d.Reason, d.Err)
		}
	}
	if c := w.as.calls.Load(); c > maxIntrospectionsInFlight {
		t.Errorf("%d calls, want at most %d", c, maxIntrospectionsInFlight)
	}
}

func TestOpaqueTokenRecord(t *testing.T) {
	if _, err := TokenRecord("opaque"); !errors.Is(err, ErrOpaqueToken) {
		t.Errorf("TokenRecord of an opaque token: %v, want ErrOpaqueToken", err)
	}
	a, err := OpaqueTokenRecord("  Bearer abc~+/=  ", issO)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil || a.Kind != KindToken || a.Issuer != issO || a.Value != opaqueTokenID("abc~+/=") {
		t.Errorf("record %+v (%v)", a, err)
	}
	for _, bad := range []struct{ tok, iss string }{{"abc", ""}, {"a.b.c", issO}, {"a b", issO}, {"", issO}} {
		if _, err := OpaqueTokenRecord(bad.tok, bad.iss); err == nil {
			t.Errorf("OpaqueTokenRecord(%q, %q) succeeded", bad.tok, bad.iss)
		}
	}
}

func TestIntrospectionConfig(t *testing.T) {
	ok := DefaultIntrospectionConfig()
	ok.URL, ok.ClientID, ok.ClientSecretFile = "https://as.test/introspect", "id", "/secret"
	tests := []struct {
		name string
		mod  func(*IntrospectionConfig)
		want string
	}{
		{"plain http to a remote host", func(c *IntrospectionConfig) { c.URL = "http://as.test/introspect" }, "loopback"},
		{"no client id", func(c *IntrospectionConfig) { c.ClientID = "" }, "client-id"},
		{"no secret", func(c *IntrospectionConfig) { c.ClientSecretFile = "" }, "client-secret-file"},
		{"ttl", func(c *IntrospectionConfig) { c.CacheTTL = 2 * time.Hour }, "cache-ttl"},
		{"scope with space", func(c *IntrospectionConfig) { c.Scopes = []string{"a b"} }, "scopes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one naming %s", err, tc.want)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	cfg := DefaultConfig()
	for _, iss := range []string{"https://a.test", "https://b.test"} {
		ic := DefaultIssuerConfig(iss)
		in := ok
		ic.Introspection = &in
		cfg.Issuers = append(cfg.Issuers, ic)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "at most one issuer") {
		t.Errorf("two introspection issuers: %v", err)
	}
}

// FuzzIntrospectionAnswer: whatever the endpoint answers, reading it never
// panics, and an answer that lets a token through says active true, with
// an exp and an issue time. Seeds in testdata/fuzz.
func FuzzIntrospectionAnswer(f *testing.F) {
	w := newOpaqueWorld(f, nil)
	in := w.checker.introspection
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := in.judge(w.checker, "tok", body, w.now)
		if err != nil || a.reason != ReasonOK {
			return
		}
		var m map[string]any
		if json.Unmarshal(body, &m) != nil || m["active"] != true || m["exp"] == nil || (m["iat"] == nil && m["nbf"] == nil) {
			t.Fatalf("allowed an answer %q", body)
		}
	})
}

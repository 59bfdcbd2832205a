package authz

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
)

// jwksServer serves a key set that the test can swap or break.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	failing bool
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...*mint.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failing {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, keys ...*mint.Key) {
	t.Helper()
	b, err := mint.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body, s.failing = b, false
	s.mu.Unlock()
}

func (s *jwksServer) fail() {
	s.mu.Lock()
	s.failing = true
	s.mu.Unlock()
}

func urlChecker(t *testing.T, url string, minRefetch time.Duration) *Checker {
	t.Helper()
	f, err := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := NewRevocations(f, emptyLookup{}, DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev.SetReady(true)
	cfg := DefaultConfig()
	ic := DefaultIssuerConfig(benchIssuer)
	ic.JWKSURL, ic.Audiences, ic.JWKSMinRefetch = url, []string{"api"}, minRefetch
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

func mustNewKey(t *testing.T, alg, kid string) *mint.Key {
	t.Helper()
	k, err := mint.NewKey(alg, kid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	k1, k2 := mustNewKey(t, "ES256", "k1"), mustNewKey(t, "ES256", "k2")
	srv := newJWKSServer(t, k1)
	c := urlChecker(t, srv.URL, 0)
	want := func(tok string, reason Reason) {
		t.Helper()
		if d := c.CheckToken(ctx, tok); d.Reason != reason {
			t.Fatalf("reason %s (%v), want %s", d.Reason, d.Err, reason)
		}
	}
	want(benchToken(t, k1, "a"), ReasonOK)

	// The issuer rotates to k2: a token with the new kid triggers a refetch.
	srv.set(t, k2)
	before := srv.fetches.Load()
	want(benchToken(t, k2, "b"), ReasonOK)
	if srv.fetches.Load() != before+1 {
		t.Errorf("unknown kid made %d fetches, want 1", srv.fetches.Load()-before)
	}
	// k1 is gone from the set: its tokens are denied retired_key.
	want(benchToken(t, k1, "c"), ReasonRetiredKey)

	// The key set URL fails: the last good keys keep working.
	srv.fail()
	if err := c.LoadKeys(ctx); err == nil {
		t.Fatal("LoadKeys succeeded against a failing key set URL")
	}
	want(benchToken(t, k2, "d"), ReasonOK)
	want(benchToken(t, mustNewKey(t, "ES256", "k3"), "e"), ReasonUnknownKey)
}

func TestUnknownKidRefetchIsRateLimited(t *testing.T) {
	ctx := context.Background()
	k1 := mustNewKey(t, "ES256", "k1")
	srv := newJWKSServer(t, k1)
	c := urlChecker(t, srv.URL, time.Hour)
	before := srv.fetches.Load()
	stranger := mustNewKey(t, "ES256", "unknown")
	for i := 0; i < 20; i++ {
		if d := c.CheckToken(ctx, benchToken(t, stranger, string(rune('a'+i)))); d.Reason != ReasonUnknownKey {
			t.Fatalf("reason %s, want unknown_key", d.Reason)
		}
	}
	if n := srv.fetches.Load() - before; n > 1 {
		t.Errorf("20 unknown kids made %d fetches within the refetch interval, want at most 1", n)
	}
}

func TestKeySetDropsUnusableKeys(t *testing.T) {
	ctx := context.Background()
	hs := mustNewKey(t, "HS256", "sym")
	// A key set URL serving a symmetric key: it must never verify anything.
	body := []byte(`{"keys":[{"kty":"oct","kid":"sym","alg":"HS256","k":"` + b64url(hs.Secret()) + `"}]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	defer srv.Close()
	f, _ := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	rev, _ := NewRevocations(f, emptyLookup{}, DefaultRevocationConfig())
	rev.SetReady(true)
	cfg := DefaultConfig()
	ic := DefaultIssuerConfig(benchIssuer)
	ic.JWKSURL, ic.Audiences = srv.URL, []string{"api"}
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, rev)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.LoadKeys(ctx)
	if d := c.CheckToken(ctx, benchToken(t, hs, "x")); d.Allowed() {
		t.Fatal("an HS256 token verified with a symmetric key from a key set URL")
	}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestJWKSURLMustBeHTTPS(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://idp.test/jwks":      true,
		"http://127.0.0.1:8080/jwks": true,
		"http://localhost/jwks":      true,
		"http://[::1]:9/jwks":        true,
		"http://idp.test/jwks":       false,
		"http://10.0.0.1/jwks":       false,
		"file:///etc/jwks.json":      false,
		"ftp://idp.test/jwks":        false,
	} {
		ic := DefaultIssuerConfig("https://idp.test")
		ic.JWKSURL = url
		if err := ic.Validate(); (err == nil) != ok {
			t.Errorf("%s: err=%v, want ok=%v", url, err, ok)
		}
	}
}

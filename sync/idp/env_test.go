package idp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

const (
	testIss       = "https://idp.test"
	testClient    = "jwtguard"
	testAudience  = "https://jwtguard.test/ssf"
	testPushToken = "push-token-0123456789abcdef"
	testPrefix    = "/idp/test/"
)

// env is one node's state (an embedded store, revocations and a checker
// trusting the provider's access tokens) with a Provider writing to it and
// its endpoints served on loopback. The provider signs access tokens,
// logout tokens and SETs with one key, as identity providers do.
type env struct {
	key     *mint.Key
	jwks    string // path of the provider's key set
	store   *embedded.Store
	rev     *authz.Revocations
	checker *authz.Checker
	p       *Provider
	srv     *httptest.Server
	nextJTI atomic.Int64
}

func newEnv(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	e := &env{}
	var err error
	if e.key, err = mint.NewKey("ES256", "idp-1"); err != nil {
		t.Fatal(err)
	}
	e.jwks = writeJWKS(t, e.key)
	if e.store, err = embedded.Open(t.TempDir(), embedded.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	f, err := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	if e.rev, err = authz.NewRevocations(f, e.store, authz.DefaultRevocationConfig()); err != nil {
		t.Fatal(err)
	}
	e.rev.SetReady(true)
	acfg := authz.DefaultConfig()
	ic := authz.DefaultIssuerConfig(testIss)
	ic.JWKSFile = e.jwks
	acfg.Issuers = []authz.IssuerConfig{ic}
	if e.checker, err = authz.NewChecker(acfg, e.rev); err != nil {
		t.Fatal(err)
	}
	if err := e.checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(e.jwks)
	if mutate != nil {
		mutate(&cfg)
	}
	e.p = e.newProvider(t, cfg)
	e.srv = httptestServer(t, e.p)
	return e
}

// httptestServer serves p's endpoints on loopback until the test ends.
func httptestServer(t *testing.T, p *Provider) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(p.Handler(testPrefix))
	t.Cleanup(srv.Close)
	return srv
}

func testConfig(jwks string) Config {
	cfg := DefaultConfig("test")
	cfg.Issuer, cfg.JWKSFile, cfg.ClientID = testIss, jwks, testClient
	cfg.Audience, cfg.PushToken = testAudience, testPushToken
	return cfg
}

// newProvider is a provider over e's store and revocations, with the
// replay memory of a fresh process.
func (e *env) newProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	p, err := New(cfg, e.store, admin.Config{}, WithRevocations(e.rev), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeJWKS(t *testing.T, keys ...*mint.Key) string {
	t.Helper()
	jwks, err := mint.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *env) jti(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, e.nextJTI.Add(1))
}

// accessToken is an access token of the provider for sub in session sid,
// issued at iat.
func (e *env) accessToken(t *testing.T, sub, sid string, iat int64) string {
	t.Helper()
	claims := map[string]any{"iss": testIss, "sub": sub, "iat": iat, "exp": iat + 600, "jti": e.jti("at")}
	if sid != "" {
		claims["sid"] = sid
	}
	tok, err := e.key.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// check is the checker's decision on tok.
func (e *env) check(t *testing.T, tok string) authz.Reason {
	t.Helper()
	return e.checker.CheckToken(context.Background(), tok).Reason
}

// logoutClaims are those of a valid logout token now for sid and sub.
func (e *env) logoutClaims(sid, sub string) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{
		"iss": testIss, "aud": testClient, "iat": now, "exp": now + 120, "jti": e.jti("lo"),
		"events": map[string]any{authz.BackChannelLogoutEvent: map[string]any{}},
	}
	if sid != "" {
		c["sid"] = sid
	}
	if sub != "" {
		c["sub"] = sub
	}
	return c
}

// sign signs claims with k under a header of typ (and extra members; a nil
// value removes one).
func sign(t *testing.T, k *mint.Key, typ string, extra map[string]any, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": typ}
	for name, v := range extra {
		h[name] = v
	}
	tok, err := k.SignHeader(h, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends body to path with contentType and optional bearer token.
func (e *env) post(t *testing.T, path, contentType, bearer, body string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	if len(data) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("answer %d is not a JSON object: %q", resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

// logout posts a logout_token form.
func (e *env) logout(t *testing.T, tok string) (int, map[string]string) {
	t.Helper()
	return e.post(t, testPrefix+"backchannel-logout", "application/x-www-form-urlencoded", "", url.Values{"logout_token": {tok}}.Encode())
}

// records returns every record in the store.
func (e *env) records(t *testing.T) []authz.Record {
	t.Helper()
	var out []authz.Record
	if _, err := e.store.Range(context.Background(), time.Now(), func(r authz.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

package envoy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// TestKeySetNotLoadedIsNotReady: while an issuer's key set has never
// loaded, its tokens are answered 503 not_ready by both adapters (as
// /readyz says), not 401 unknown_key; once it loads they are allowed.
func TestKeySetNotLoadedIsNotReady(t *testing.T) {
	e := newEnv(t)
	w := keys(t)
	jwks := mustJWKS(t, w.b)
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			http.Error(rw, "key server down", http.StatusInternalServerError)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(jwks)
	}))
	defer srv.Close()
	cfg := authz.DefaultConfig()
	b := authz.DefaultIssuerConfig(issB)
	b.JWKSURL, b.Audiences, b.Algs = srv.URL, []string{"api-b1"}, []string{"ES256"}
	cfg.Issuers = []authz.IssuerConfig{b}
	checker, err := authz.NewChecker(cfg, e.rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.LoadKeys(context.Background()); err == nil {
		t.Fatal("the key set loaded from a failing server")
	}
	a := envoy.NewAuthorization(checker)
	fa := httptest.NewServer(a)
	defer fa.Close()
	tok := sign(t, w.b, e.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, "api-b1" }))

	check := func(wantStatus int, wantReason string) {
		t.Helper()
		o := outcomeOf(t, checkWith(t, a, map[string]string{"authorization": "Bearer " + tok}))
		if wantStatus == http.StatusOK {
			if !o.allowed {
				t.Errorf("gRPC: denied %s, want allowed", o.reason)
			}
		} else if o.allowed || o.httpCode != wantStatus || o.reason != wantReason {
			t.Errorf("gRPC: %+v, want %d %s", o, wantStatus, wantReason)
		}
		req, _ := http.NewRequest(http.MethodGet, fa.URL+"/authz/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var db struct{ Reason string }
		_ = json.Unmarshal(body, &db)
		if resp.StatusCode != wantStatus || (wantReason != "" && db.Reason != wantReason) {
			t.Errorf("forward-auth: %d %s, want %d %s", resp.StatusCode, body, wantStatus, wantReason)
		}
	}
	check(http.StatusServiceUnavailable, string(authz.ReasonNotReady))
	up.Store(true)
	if err := checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	check(http.StatusOK, "")
	// Loaded: an unknown kid is a bad token again.
	other := sign(t, w.other, e.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, "api-b1" }))
	if o := outcomeOf(t, checkWith(t, a, map[string]string{"authorization": "Bearer " + other})); o.reason != string(authz.ReasonUnknownKey) {
		t.Errorf("unknown kid once loaded: %+v, want unknown_key", o)
	}
}

package envoy_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
)

// TestOpaqueTokens: opaque tokens through the real gRPC server, judged by
// an introspection endpoint in the test: active (allowed, its sub sent
// upstream), inactive (401), the endpoint down (503 for a new token, the
// cached one still allowed), and revoked by its hash.
func TestOpaqueTokens(t *testing.T) {
	var down atomic.Bool
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "jwtguard" || secret != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		now := time.Now().Unix()
		switch r.PostFormValue("token") {
		case "good-token", "other-good-token":
			_, _ = w.Write([]byte(`{"active":true,"sub":"carol","aud":"` + audA + `","scope":"orders:read","iat":` + strconv.FormatInt(now-10, 10) + `,"exp":` + strconv.FormatInt(now+600, 10) + `}`))
		default:
			_, _ = w.Write([]byte(`{"active":false}`))
		}
	}))
	t.Cleanup(as.Close)
	secret := writeFile(t, t.TempDir(), "secret", []byte("secret\n"))
	const issAS = "https://as.test"
	e := newEnvWith(t, func(cfg *authz.Config) {
		ic := authz.DefaultIssuerConfig(issAS)
		ic.Audiences = []string{audA}
		in := authz.DefaultIntrospectionConfig()
		in.URL, in.ClientID, in.ClientSecretFile = as.URL, "jwtguard", secret
		ic.Introspection = &in
		cfg.Issuers = append(cfg.Issuers, ic)
	})
	check := func(tok string) outcome {
		t.Helper()
		return outcomeOf(t, e.check(t, map[string]string{"authorization": "Bearer " + tok}))
	}
	if o := check("good-token"); !o.allowed || o.upstream["x-jwt-sub"] != "carol" || o.upstream["x-jwt-iss"] != issAS {
		t.Errorf("active token: %+v", o)
	}
	if o := check("unknown-token"); o.allowed || o.reason != string(authz.ReasonInactive) || o.httpCode != http.StatusUnauthorized {
		t.Errorf("inactive token: %+v", o)
	}
	down.Store(true)
	if o := check("good-token"); !o.allowed {
		t.Errorf("cached token, endpoint down: %+v", o)
	}
	resp := e.check(t, map[string]string{"authorization": "Bearer other-good-token"})
	if o := outcomeOf(t, resp); o.allowed || o.reason != string(authz.ReasonIntrospectionUnavailable) || o.httpCode != http.StatusServiceUnavailable ||
		codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable {
		t.Errorf("new token, endpoint down: %+v", o)
	}
	rec, err := authz.OpaqueTokenRecord("good-token", issAS)
	if err != nil {
		t.Fatal(err)
	}
	e.revoke(rec)
	if o := check("good-token"); o.allowed || o.reason != string(authz.ReasonRevoked) || o.metadata["revoked_by"] != "token" {
		t.Errorf("revoked opaque token: %+v", o)
	}
}

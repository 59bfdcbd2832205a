package envoy_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// issR is revocation-only: Envoy's jwt_authn verifies its tokens and
// writes their payload under its name (Istio's layout).
const issR = "https://mesh-issuer.test"

// TestRevocationOnlyThroughGRPC sends the metadata jwt_authn writes
// through a real gRPC client: a verified payload is decided by revocation
// alone, without the token (it has a jti, and the JOSE header comes in
// metadata), and the same token is refused by forward-auth, which never
// trusts a payload.
func TestRevocationOnlyThroughGRPC(t *testing.T) {
	e := newEnvWith(t, func(cfg *authz.Config) {
		r := authz.DefaultIssuerConfig(issR)
		r.RevocationOnly, r.HeaderKey = true, "jwt_header"
		cfg.Issuers = append(cfg.Issuers, r)
	})
	payload := map[string]any{"iss": issR, "sub": "alice", "jti": "r-1", "email": "alice@example.test",
		"iat": e.now.Add(-time.Minute).Unix(), "exp": e.now.Add(time.Hour).Unix()}
	ns, err := structpb.NewStruct(map[string]any{issR: payload, "jwt_header": map[string]any{"alg": "ES256", "kid": kidA}})
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]*structpb.Struct{envoy.JWTAuthnNamespace: ns}

	o := outcomeOf(t, e.checkMetadata(t, nil, md))
	if !o.allowed || o.upstream["x-jwt-sub"] != "alice" || o.upstream["x-jwt-email"] != "alice@example.test" || o.metadata["kid"] != kidA {
		t.Fatalf("verified payload: %+v, want allowed with alice's claim headers and kid", o)
	}
	// The namespace of another filter is not jwt_authn's.
	if o := outcomeOf(t, e.checkMetadata(t, nil, map[string]*structpb.Struct{"envoy.filters.http.lua": ns})); o.allowed || o.reason != string(authz.ReasonMissingToken) {
		t.Fatalf("payload in another namespace: %+v, want missing_token", o)
	}
	e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issR, Value: "r-1"})
	if o := outcomeOf(t, e.checkMetadata(t, nil, md)); o.allowed || o.reason != string(authz.ReasonRevoked) {
		t.Fatalf("after revoke: %+v, want revoked", o)
	}

	// Forward-auth: no metadata, the issuer's payload-missing is deny.
	tok, err := e.key.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/authz/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	envoy.NewAuthorization(e.checker).ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != invalidToken(authz.ReasonNotVerifiedByProxy) {
		t.Fatalf("forward-auth: %d %q, want 401 %s", rec.Code, rec.Header().Get("WWW-Authenticate"), authz.ReasonNotVerifiedByProxy)
	}
	// gRPC without the metadata: the same deny.
	if o := outcomeOf(t, e.check(t, map[string]string{"authorization": "Bearer " + tok})); o.allowed || o.reason != string(authz.ReasonNotVerifiedByProxy) {
		t.Fatalf("gRPC without metadata: %+v, want %s", o, authz.ReasonNotVerifiedByProxy)
	}
}

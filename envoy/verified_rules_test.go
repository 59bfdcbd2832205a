package envoy_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// subjectBlocker blocks the tokens of one subject, as a detector's block
// policy would.
type subjectBlocker struct{ subject string }

func (b subjectBlocker) BlockedAddr(netip.Addr, time.Time) bool { return false }
func (b subjectBlocker) BlockedToken(_, _, _, subject string, _ time.Time) bool {
	return subject == b.subject
}

// TestRevocationOnlyUnderRules: a payload jwt_authn verified is held to
// the route's rule (scopes, claims against headers, no rule, public) and
// to the blocker, like a token jwtguard verifies itself; a revocation
// still wins over the rule.
func TestRevocationOnlyUnderRules(t *testing.T) {
	e := newEnvWith(t, func(cfg *authz.Config) {
		withRules(cfg)
		r := authz.DefaultIssuerConfig(issR)
		r.RevocationOnly, r.HeaderKey = true, "jwt_header"
		cfg.Issuers = append(cfg.Issuers, r)
	})
	a := envoy.NewAuthorization(e.checker, envoy.WithBlocker(subjectBlocker{"mallory"}))
	check := func(method, host, path string, headers map[string]string, claims map[string]any) outcome {
		t.Helper()
		var ext map[string]string
		if svc := headers["x-service"]; svc != "" {
			ext = map[string]string{"service": svc} // the route's context_extensions
		}
		req := routeRequest(method, host, path, ext, headers)
		if claims != nil {
			payload := map[string]any{"iss": issR, "sub": "alice", "jti": "r-rules",
				"iat": e.now.Add(-time.Minute).Unix(), "exp": e.now.Add(time.Hour).Unix()}
			for k, v := range claims {
				payload[k] = v
			}
			ns, err := structpb.NewStruct(map[string]any{issR: payload, "jwt_header": map[string]any{"alg": "ES256", "kid": kidA}})
			if err != nil {
				t.Fatal(err)
			}
			req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{envoy.JWTAuthnNamespace: ns}}
		}
		resp, err := a.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return outcomeOf(t, resp)
	}
	none := map[string]any{}
	for _, tc := range []struct {
		name, method, host, path string
		headers                  map[string]string
		claims                   map[string]any
		want                     authz.Reason
	}{
		{"scope held", "GET", "api.test", "/orders/1", nil, map[string]any{"scope": "orders:read"}, authz.ReasonOK},
		{"scope missing", "GET", "api.test", "/orders/1", nil, none, authz.ReasonInsufficientScope},
		{"second scope missing", "POST", "api.test", "/orders", nil, map[string]any{"scope": "orders:read"}, authz.ReasonInsufficientScope},
		{"scopes as a list", "POST", "api.test", "/orders", nil, map[string]any{"scope": []any{"orders:read", "orders:write"}}, authz.ReasonOK},
		{"claim contains", "GET", "api.test", "/admin/x", nil, map[string]any{"roles": []any{"admin"}}, authz.ReasonOK},
		{"claim missing", "GET", "api.test", "/admin/x", nil, none, authz.ReasonClaimMismatch},
		{"claim equals header", "GET", "a.tenants.test", "/", map[string]string{"x-tenant": "t1"}, map[string]any{"tenant": "t1"}, authz.ReasonOK},
		{"claim differs from header", "GET", "a.tenants.test", "/", map[string]string{"x-tenant": "t2"}, map[string]any{"tenant": "t1"}, authz.ReasonClaimMismatch},
		{"issuer not the rule's", "GET", "billing.test", "/", map[string]string{"x-service": "billing"}, none, authz.ReasonWrongIssuer},
		{"no rule", "GET", "unknown.test", "/", nil, none, authz.ReasonNoRule},
		{"public without payload", "GET", "api.test", "/healthz", nil, nil, authz.ReasonOK},
		{"blocked subject", "GET", "app.test", "/", nil, map[string]any{"sub": "mallory"}, authz.ReasonBlocked},
		{"plain route", "GET", "app.test", "/", nil, none, authz.ReasonOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := check(tc.method, tc.host, tc.path, tc.headers, tc.claims)
			if o.allowed != (tc.want == authz.ReasonOK) || (!o.allowed && o.reason != string(tc.want)) {
				t.Errorf("%+v, want %s", o, tc.want)
			}
		})
	}
	e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issR, Value: "r-rules"})
	if o := check("GET", "api.test", "/orders/1", nil, map[string]any{"scope": "orders:read"}); o.allowed || o.reason != string(authz.ReasonRevoked) {
		t.Fatalf("after revoke: %+v, want revoked", o)
	}
}

package envoy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

const issOther = "https://issuer-other.test"

// withRules configures the rules of the route tests, and a second issuer
// that only the billing service accepts.
func withRules(cfg *authz.Config) {
	other := cfg.Issuers[0]
	other.Issuer, other.Audiences = issOther, nil
	cfg.Issuers = append(cfg.Issuers, other)
	cfg.Rules = []authz.Rule{
		{Name: "health", Match: authz.RuleMatch{Path: "/healthz"}, Public: true},
		{Name: "admin", Match: authz.RuleMatch{PathPrefix: "/admin"}, Claims: []authz.ClaimRequirement{{Claim: "roles", Contains: "admin"}}},
		{Name: "orders-write", Match: authz.RuleMatch{PathPrefix: "/orders", Methods: []string{"POST"}}, Scopes: []string{"orders:write", "orders:read"}},
		{Name: "orders", Match: authz.RuleMatch{PathPrefix: "/orders"}, Scopes: []string{"orders:read"}},
		{Name: "billing", Match: authz.RuleMatch{ContextExtensions: map[string]string{"service": "billing"}}, Issuers: []string{issOther}},
		{Name: "reports", Match: authz.RuleMatch{ContextExtensions: map[string]string{"service": "reports"}}, Audiences: []string{"reports"}},
		{Name: "tenant", Match: authz.RuleMatch{Hosts: []string{"*.tenants.test"}}, Claims: []authz.ClaimRequirement{{Claim: "tenant", EqualsHeader: "x-tenant"}}},
		{Name: "app", Match: authz.RuleMatch{Hosts: []string{"app.test"}}},
	}
}

// routeRequest is a CheckRequest as Envoy sends it for a request to
// method host path, with the route's context_extensions.
func routeRequest(method, host, path string, ext map[string]string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":authority": host, ":path": path, ":method": method}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: ext,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Host: host, Path: path, Headers: h, Scheme: "https", Protocol: "HTTP/2",
		}},
	}}
}

// TestRoutes: every rule outcome through the real gRPC server (with
// context_extensions as Envoy sends them) and through forward-auth (the
// original request in X-Forwarded-*; no context_extensions there).
func TestRoutes(t *testing.T) {
	e := newEnvWith(t, withRules)
	tok := func(mod func(map[string]any)) string { return e.token(t, mod) }
	plain := tok(nil)
	reader := tok(func(c map[string]any) { c["scope"] = "openid orders:read" })
	writer := tok(func(c map[string]any) { c["scp"] = []string{"orders:read", "orders:write"} })
	admin := tok(func(c map[string]any) { c["roles"] = []string{"admin"} })
	acme := tok(func(c map[string]any) { c["tenant"] = "acme" })
	billing := e.token(t, func(c map[string]any) { c["iss"] = issOther })
	reports := tok(func(c map[string]any) { c["aud"] = []string{audA, "reports"} })

	tests := []struct {
		name               string
		method, host, path string
		ext                map[string]string // nil for both transports; set: gRPC only
		tok                string
		headers            map[string]string
		want               authz.Reason
		code               codes.Code
		status             int
		challenge          string
	}{
		{"public route, no token", "GET", "app.test", "/healthz", nil, "", nil, authz.ReasonOK, codes.OK, 200, ""},
		{"public route, a bad token passes unread", "GET", "app.test", "/healthz", nil, "garbage", nil, authz.ReasonOK, codes.OK, 200, ""},
		{"default rule", "GET", "app.test", "/", nil, plain, nil, authz.ReasonOK, codes.OK, 200, ""},
		{"default rule, no token", "GET", "app.test", "/", nil, "", nil, authz.ReasonMissingToken, codes.Unauthenticated, 401, "Bearer"},
		{"scope granted", "GET", "app.test", "/orders/1", nil, reader, nil, authz.ReasonOK, codes.OK, 200, ""},
		{"scope missing", "GET", "app.test", "/orders/1", nil, plain, nil, authz.ReasonInsufficientScope, codes.PermissionDenied, 403,
			`Bearer error="insufficient_scope", scope="orders:read", error_description="insufficient_scope"`},
		{"two scopes, one granted", "POST", "app.test", "/orders", nil, reader, nil, authz.ReasonInsufficientScope, codes.PermissionDenied, 403,
			`Bearer error="insufficient_scope", scope="orders:write orders:read", error_description="insufficient_scope"`},
		{"two scopes granted (scp)", "POST", "app.test", "/orders", nil, writer, nil, authz.ReasonOK, codes.OK, 200, ""},
		{"role granted", "DELETE", "app.test", "/admin/users/7", nil, admin, nil, authz.ReasonOK, codes.OK, 200, ""},
		{"role missing", "DELETE", "app.test", "/admin/users/7", nil, reader, nil, authz.ReasonClaimMismatch, codes.PermissionDenied, 403,
			`Bearer error="insufficient_scope", error_description="claim_mismatch"`},
		{"dot segments: no path rule, the default rule", "GET", "app.test", "/healthz/../admin", nil, "", nil, authz.ReasonMissingToken, codes.Unauthenticated, 401, "Bearer"},
		{"tenant header equals the claim", "GET", "acme.tenants.test", "/", nil, acme, map[string]string{"x-tenant": "acme"}, authz.ReasonOK, codes.OK, 200, ""},
		{"tenant header differs", "GET", "acme.tenants.test", "/", nil, acme, map[string]string{"x-tenant": "other"}, authz.ReasonClaimMismatch, codes.PermissionDenied, 403,
			`Bearer error="insufficient_scope", error_description="claim_mismatch"`},
		{"context extension, accepted issuer", "GET", "billing.internal", "/invoices", map[string]string{"service": "billing"}, billing, nil, authz.ReasonOK, codes.OK, 200, ""},
		{"context extension, other issuer", "GET", "billing.internal", "/invoices", map[string]string{"service": "billing"}, plain, nil, authz.ReasonWrongIssuer, codes.Unauthenticated, 401,
			`Bearer error="invalid_token", error_description="wrong_issuer"`},
		{"context extension, audience", "GET", "reports.internal", "/", map[string]string{"service": "reports"}, reports, nil, authz.ReasonOK, codes.OK, 200, ""},
		{"context extension, wrong audience", "GET", "reports.internal", "/", map[string]string{"service": "reports"}, plain, nil, authz.ReasonWrongAudience, codes.Unauthenticated, 401,
			`Bearer error="invalid_token", error_description="wrong_audience"`},
		{"no rule matches", "GET", "unknown.test", "/", nil, plain, nil, authz.ReasonNoRule, codes.PermissionDenied, 403, ""},
		{"context extension unknown: no rule", "GET", "billing.internal", "/", map[string]string{"service": "unknown"}, billing, nil, authz.ReasonNoRule, codes.PermissionDenied, 403, ""},
	}
	fa := httptest.NewServer(envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler))))
	defer fa.Close()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string]string{}
			for k, v := range tc.headers {
				headers[k] = v
			}
			if tc.tok != "" {
				headers["authorization"] = "Bearer " + tc.tok
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 2 { // the second from the caches
				resp, err := e.client.Check(ctx, routeRequest(tc.method, tc.host, tc.path, tc.ext, headers))
				if err != nil {
					t.Fatal(err)
				}
				o := outcomeOf(t, resp)
				if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
					t.Fatalf("gRPC status %s (%s), want %s", got, o.reason, tc.code)
				}
				if tc.want == authz.ReasonOK {
					continue
				}
				if o.reason != string(tc.want) || o.httpCode != tc.status || o.challenge != tc.challenge {
					t.Fatalf("gRPC: %s %d %q, want %s %d %q", o.reason, o.httpCode, o.challenge, tc.want, tc.status, tc.challenge)
				}
			}
			if tc.ext != nil {
				return // context_extensions come with gRPC only
			}
			req, err := http.NewRequest(http.MethodGet, fa.URL+"/authz/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("X-Forwarded-Method", tc.method)
			req.Header.Set("X-Forwarded-Host", tc.host)
			req.Header.Set("X-Forwarded-Uri", tc.path)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var b struct{ Reason string }
			_ = json.Unmarshal(body, &b)
			if res.StatusCode != tc.status || res.Header.Get("WWW-Authenticate") != tc.challenge || (tc.want != authz.ReasonOK && b.Reason != string(tc.want)) {
				t.Errorf("forward-auth: %d %q %s, want %d %q %s", res.StatusCode, res.Header.Get("WWW-Authenticate"), body, tc.status, tc.challenge, tc.want)
			}
		})
	}
}

// TestCheckAllocsWithRules: with rules on, a whole gRPC Check of a cached
// token allocates no more than without them (TestCheckAllocs).
func TestCheckAllocsWithRules(t *testing.T) {
	e := newEnvWith(t, withRules)
	a := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)))
	reader := e.token(t, func(c map[string]any) { c["scope"] = "orders:read" })
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want authz.Reason
		max  float64
	}{
		{"allowed by a scope rule", routeRequest("GET", "app.test", "/orders/1", nil, map[string]string{"authorization": "Bearer " + reader}), authz.ReasonOK, 6},
		{"allowed by a context extension rule", routeRequest("GET", "r.internal", "/", map[string]string{"service": "reports"}, map[string]string{"authorization": "Bearer " + e.token(t, func(c map[string]any) { c["aud"] = []string{audA, "reports"} })}), authz.ReasonOK, 6},
		{"insufficient scope", routeRequest("POST", "app.test", "/orders", nil, map[string]string{"authorization": "Bearer " + reader}), authz.ReasonInsufficientScope, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := a.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if o := outcomeOf(t, resp); o.allowed != (tt.want == authz.ReasonOK) || (!o.allowed && o.reason != string(tt.want)) {
				t.Fatalf("outcome %+v, want %s", o, tt.want)
			}
			got := testing.AllocsPerRun(200, func() { _, _ = a.Check(context.Background(), tt.req) })
			if got > tt.max {
				t.Errorf("%.0f allocs per Check, want at most %.0f", got, tt.max)
			}
		})
	}
}

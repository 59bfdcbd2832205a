package authz

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
)

const issR2 = "https://second.test"

// testRules are the rules of the tests: each kind of condition and
// requirement, a public route and a default rule last.
func testRules() []Rule {
	return []Rule{
		{Name: "health", Match: RuleMatch{Path: "/healthz"}, Public: true},
		{Name: "public-docs", Match: RuleMatch{PathPrefix: "/docs", Methods: []string{"GET", "HEAD"}}, Public: true},
		{Name: "admin", Match: RuleMatch{PathPrefix: "/admin/"}, Claims: []ClaimRequirement{{Claim: "roles", Contains: "admin"}}},
		{Name: "write", Match: RuleMatch{PathPrefix: "/api", Methods: []string{"POST", "PUT", "DELETE"}}, Scopes: []string{"api:write"}},
		{Name: "read", Match: RuleMatch{PathPrefix: "/api"}, Scopes: []string{"api:read"}},
		{Name: "tenant", Match: RuleMatch{PathPrefix: "/t"}, Claims: []ClaimRequirement{{Claim: "tenant", EqualsHeader: "X-Tenant"}}},
		{Name: "billing", Match: RuleMatch{ContextExtensions: map[string]string{"service": "billing"}}, Issuers: []string{issR2}},
		{Name: "reports", Match: RuleMatch{Hosts: []string{"*.reports.test"}}, Audiences: []string{"reports"}},
		{Name: "plan", Match: RuleMatch{Hosts: []string{"plan.test"}}, Claims: []ClaimRequirement{{Claim: "plan", Equals: "pro"}}},
		{Name: "default", Match: RuleMatch{Hosts: []string{"app.test"}}},
	}
}

// rulesChecker is a checker with rules over two issuers (the bench issuer
// and issR2), and their keys.
func rulesChecker(tb testing.TB, rules []Rule) (*Checker, *mint.Key, *mint.Key) {
	tb.Helper()
	k1, err := mint.NewKey("ES256", "k1")
	if err != nil {
		tb.Fatal(err)
	}
	k2, err := mint.NewKey("ES256", "k2")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	dir := tb.TempDir()
	for _, k := range []struct {
		iss string
		key *mint.Key
	}{{benchIssuer, k1}, {issR2, k2}} {
		jwks, err := mint.JWKS(k.key)
		if err != nil {
			tb.Fatal(err)
		}
		ic := DefaultIssuerConfig(k.iss)
		ic.JWKSFile = writeTestFile(tb, dir, strings.TrimPrefix(k.iss, "https://")+".json", jwks)
		cfg.Issuers = append(cfg.Issuers, ic)
	}
	cfg.Rules = rules
	rev := newTestRevocations(tb, emptyLookup{})
	c, err := NewChecker(cfg, rev)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.LoadKeys(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return c, k1, k2
}

func ruleToken(tb testing.TB, k *mint.Key, iss string, mod func(map[string]any)) string {
	tb.Helper()
	now := time.Now()
	c := map[string]any{"iss": iss, "aud": "api", "sub": "alice", "jti": "j",
		"iat": now.Unix() - 10, "exp": now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	tok, err := k.Sign(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func TestRuleDecisions(t *testing.T) {
	c, k1, k2 := rulesChecker(t, testRules())
	plain := ruleToken(t, k1, benchIssuer, nil)
	reader := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["scope"] = "openid api:read" })
	writer := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["scp"] = []string{"api:read", "api:write"} })
	admin := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["roles"] = []string{"user", "admin"} })
	adminString := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["roles"] = "admin" })
	acme := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["tenant"] = "acme" })
	second := ruleToken(t, k2, issR2, nil)
	reports := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["aud"] = []string{"api", "reports"} })
	pro := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["plan"] = "pro" })
	proArray := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["plan"] = []string{"pro"} })
	tests := []struct {
		name  string
		route Route
		tok   string // "" sends none
		extra http.Header
		want  Reason
		rule  string
	}{
		{"public exact path without token", Route{Method: "GET", Host: "app.test", Path: "/healthz"}, "", nil, ReasonOK, "health"},
		{"public exact path with a query", Route{Method: "GET", Host: "app.test", Path: "/healthz?x=1"}, "", nil, ReasonOK, "health"},
		{"public with a bad token: not verified", Route{Method: "GET", Path: "/healthz"}, "garbage", nil, ReasonOK, "health"},
		{"exact path is exact", Route{Method: "GET", Host: "app.test", Path: "/healthz/x"}, "", nil, ReasonMissingToken, "default"},
		{"public prefix", Route{Method: "GET", Host: "app.test", Path: "/docs/a/b"}, "", nil, ReasonOK, "public-docs"},
		{"public prefix, other method", Route{Method: "POST", Host: "app.test", Path: "/docs/a"}, "", nil, ReasonMissingToken, "default"},
		{"prefix at a segment boundary only", Route{Method: "GET", Host: "app.test", Path: "/docsecret"}, "", nil, ReasonMissingToken, "default"},
		{"dot segments match no path rule", Route{Method: "GET", Host: "app.test", Path: "/docs/../admin/x"}, "", nil, ReasonMissingToken, "default"},
		{"encoded slash matches no path rule", Route{Method: "GET", Host: "app.test", Path: "/docs%2F..%2Fadmin"}, "", nil, ReasonMissingToken, "default"},
		{"double slash matches no path rule", Route{Method: "GET", Host: "app.test", Path: "//docs/x"}, "", nil, ReasonMissingToken, "default"},
		{"read scope", Route{Method: "GET", Host: "app.test", Path: "/api/things"}, reader, nil, ReasonOK, "read"},
		{"read without scope", Route{Method: "GET", Host: "app.test", Path: "/api/things"}, plain, nil, ReasonInsufficientScope, "read"},
		{"write with read scope", Route{Method: "POST", Host: "app.test", Path: "/api/things"}, reader, nil, ReasonInsufficientScope, "write"},
		{"write with scp", Route{Method: "POST", Host: "app.test", Path: "/api"}, writer, nil, ReasonOK, "write"},
		{"admin role in an array", Route{Method: "GET", Host: "app.test", Path: "/admin/users"}, admin, nil, ReasonOK, "admin"},
		{"admin role as a string", Route{Method: "GET", Host: "app.test", Path: "/admin/users"}, adminString, nil, ReasonOK, "admin"},
		{"no admin role", Route{Method: "GET", Host: "app.test", Path: "/admin/users"}, reader, nil, ReasonClaimMismatch, "admin"},
		{"admin rule without token", Route{Method: "GET", Host: "app.test", Path: "/admin/users"}, "", nil, ReasonMissingToken, "admin"},
		{"tenant equals header", Route{Method: "GET", Path: "/t/1"}, acme, http.Header{"X-Tenant": {"acme"}}, ReasonOK, "tenant"},
		{"tenant differs", Route{Method: "GET", Path: "/t/1"}, acme, http.Header{"X-Tenant": {"evil"}}, ReasonClaimMismatch, "tenant"},
		{"tenant header twice", Route{Method: "GET", Path: "/t/1"}, acme, http.Header{"X-Tenant": {"acme", "evil"}}, ReasonClaimMismatch, "tenant"},
		{"tenant header missing", Route{Method: "GET", Path: "/t/1"}, acme, nil, ReasonClaimMismatch, "tenant"},
		{"no tenant claim, empty header", Route{Method: "GET", Path: "/t/1"}, plain, http.Header{"X-Tenant": {""}}, ReasonClaimMismatch, "tenant"},
		{"context extension, right issuer", Route{Path: "/x", ContextExtensions: map[string]string{"service": "billing"}}, second, nil, ReasonOK, "billing"},
		{"context extension, wrong issuer", Route{Path: "/x", ContextExtensions: map[string]string{"service": "billing", "other": "1"}}, plain, nil, ReasonWrongIssuer, "billing"},
		{"context extension, other value", Route{Host: "app.test", Path: "/x", ContextExtensions: map[string]string{"service": "billing2"}}, plain, nil, ReasonOK, "default"},
		{"wildcard host, audience", Route{Host: "eu.reports.test:8443", Path: "/r"}, reports, nil, ReasonOK, "reports"},
		{"wildcard host, wrong audience", Route{Host: "EU.Reports.Test", Path: "/r"}, plain, nil, ReasonWrongAudience, "reports"},
		{"wildcard host needs a subdomain", Route{Host: "reports.test", Path: "/r"}, reports, nil, ReasonNoRule, ""},
		{"claim equals", Route{Host: "plan.test", Path: "/"}, pro, nil, ReasonOK, "plan"},
		{"claim equals: an array is not the string", Route{Host: "plan.test", Path: "/"}, proArray, nil, ReasonClaimMismatch, "plan"},
		{"no rule matches", Route{Host: "other.test", Path: "/"}, plain, nil, ReasonNoRule, ""},
		{"no route at all", Route{}, plain, nil, ReasonNoRule, ""},
		{"no rule: token not read", Route{Host: "other.test", Path: "/"}, "garbage", nil, ReasonNoRule, ""},
		{"default rule, bad token", Route{Host: "app.test", Path: "/"}, "a.b.c", nil, ReasonMalformed, "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.extra {
				h[k] = v
			}
			if tc.tok != "" {
				h.Set("Authorization", "Bearer "+tc.tok)
			}
			// Twice: the second decision comes from the cache and must
			// be the same; and as Envoy sends headers.
			for i := range 2 {
				d := c.CheckRoute(context.Background(), h, &tc.route)
				if m := c.CheckRoute(context.Background(), joinHeaders(h), &tc.route); m.Reason != d.Reason && len(tc.extra["X-Tenant"]) < 2 {
					t.Fatalf("MapHeaders decide %s, http.Header %s", m.Reason, d.Reason)
				}
				if d.Reason != tc.want || d.Rule != tc.rule {
					t.Fatalf("check %d: %s by rule %q (%v), want %s by rule %q", i, d.Reason, d.Rule, d.Err, tc.want, tc.rule)
				}
				if want := map[string]string{"read": "api:read", "write": "api:write"}[tc.rule]; d.Reason == ReasonInsufficientScope && d.RequiredScope != want {
					t.Fatalf("required scope %q, want %q", d.RequiredScope, want)
				}
			}
		})
	}
}

func TestRulesValidation(t *testing.T) {
	issuers := []IssuerConfig{DefaultIssuerConfig(benchIssuer)}
	tests := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"default rule not last", []Rule{{}, {Match: RuleMatch{Path: "/x"}}}, "put the default rule last"},
		{"path and prefix", []Rule{{Match: RuleMatch{Path: "/x", PathPrefix: "/y"}}}, "exclusive"},
		{"relative path", []Rule{{Match: RuleMatch{Path: "x"}}}, "match.path"},
		{"dot segment in prefix", []Rule{{Match: RuleMatch{PathPrefix: "/a/../b"}}}, "match.path-prefix"},
		{"host with port", []Rule{{Match: RuleMatch{Hosts: []string{"a.test:80"}}}}, "match.hosts"},
		{"lower-case method", []Rule{{Match: RuleMatch{Methods: []string{"get"}}}}, "match.methods"},
		{"unknown issuer", []Rule{{Issuers: []string{"https://nobody.test"}}}, "not a configured issuer"},
		{"public with scopes", []Rule{{Public: true, Scopes: []string{"a"}}}, "public"},
		{"scope with a quote", []Rule{{Scopes: []string{`a"b`}}}, "scopes"},
		{"claim with two conditions", []Rule{{Claims: []ClaimRequirement{{Claim: "a", Equals: "x", Contains: "y"}}}}, "exactly one"},
		{"claim without condition", []Rule{{Claims: []ClaimRequirement{{Claim: "a"}}}}, "exactly one"},
		{"bad header", []Rule{{Claims: []ClaimRequirement{{Claim: "a", EqualsHeader: "x y"}}}}, "equals-header"},
		{"too many header claims", []Rule{{Claims: []ClaimRequirement{
			{Claim: "a", EqualsHeader: "x"}, {Claim: "b", EqualsHeader: "x"}, {Claim: "c", EqualsHeader: "x"},
			{Claim: "d", EqualsHeader: "x"}, {Claim: "e", EqualsHeader: "x"}}}}, "more than 4"},
		{"too many rules", make([]Rule, MaxRules+1), "at most 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Issuers, cfg.Rules = issuers, tc.rules
			cfg.Issuers[0].JWKSFile = "/x"
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestRuleVerdictsPacked: every rule's verdict is kept apart from its
// neighbours'.
func TestRuleVerdictsPacked(t *testing.T) {
	var rv ruleVerdicts
	for i := range MaxRules {
		rv.set(i, uint8(i%5))
	}
	rv.set(3, verdictClaim)
	rv.set(3, verdictOK)
	for i := range MaxRules {
		want := uint8(i % 5)
		if i == 3 {
			want = verdictOK
		}
		if got := rv.get(i); got != want {
			t.Fatalf("rule %d: verdict %d, want %d", i, got, want)
		}
	}
}

// BenchmarkCheckCachedRules is BenchmarkCheckCached's hot path with and
// without the test rules, 100k other tokens cached: a cached token allowed
// by the last rule (every rule before it tried) and by a scope rule.
func BenchmarkCheckCachedRules(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		rules []Rule
		route Route
	}{
		{"no-rules", nil, Route{Method: "GET", Host: "app.test", Path: "/x"}},
		{"last-rule", testRules(), Route{Method: "GET", Host: "app.test", Path: "/x", ContextExtensions: map[string]string{"service": "web"}}},
		{"scope-rule", testRules(), Route{Method: "GET", Host: "app.test", Path: "/api/things"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, k1, _ := rulesChecker(b, tc.rules)
			fillCache(b, c, k1, 100_000)
			tok := ruleToken(b, k1, benchIssuer, func(m map[string]any) { m["scope"] = "api:read" })
			h := MapHeaders{"authorization": "Bearer " + tok}
			if d := c.CheckRoute(ctx, h, &tc.route); !d.Allowed() {
				b.Fatal(d.Reason, d.Err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if d := c.CheckRoute(ctx, h, &tc.route); !d.Allowed() {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

package authz

import (
	"context"
	"testing"
	"time"
)

// The hot paths must not allocate: these pin their allocation counts so a
// change that adds one fails CI (the figures are in bench/README.md).
func TestHotPathAllocations(t *testing.T) {
	c, ks := benchChecker(t, nil, "ES256")
	tok := benchToken(t, ks["ES256"], "hot")
	h := MapHeaders{"authorization": "Bearer " + tok}
	ctx := context.Background()
	if d := c.Check(ctx, h); !d.Allowed() {
		t.Fatal(d.Reason, d.Err)
	}
	empty := MapHeaders{}
	var v verified
	if r, err := c.verify(ctx, tok, time.Now().Unix(), &v); r != ReasonOK {
		t.Fatal(r, err)
	}
	tests := []struct {
		name string
		want float64
		fn   func()
	}{
		{"Check of a cached token", 0, func() { c.Check(ctx, h) }},
		{"revocation check of a not revoked token", 0, func() { c.rev.check(ctx, &v, 0) }},
		{"missing token", 0, func() { c.Check(ctx, empty) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, tc.fn); got != tc.want {
				t.Errorf("%v allocations per run, want %v", got, tc.want)
			}
		})
	}
}

// TestHotPathAllocationsWithRules: with rules on, a cached token is
// matched and judged without allocating, through the last rule (every
// rule before it tried), one comparing a claim to a header.
func TestHotPathAllocationsWithRules(t *testing.T) {
	c, k1, _ := rulesChecker(t, testRules())
	ctx := context.Background()
	tok := ruleToken(t, k1, benchIssuer, func(m map[string]any) { m["tenant"], m["scope"] = "acme", "api:read" })
	tests := []struct {
		name  string
		route Route
		want  Reason
	}{
		{"allowed by the last rule", Route{Method: "GET", Host: "app.test:443", Path: "/x?y=1", ContextExtensions: map[string]string{"service": "web"}}, ReasonOK},
		{"scope rule", Route{Method: "GET", Host: "app.test", Path: "/api/things"}, ReasonOK},
		{"header claim rule", Route{Method: "GET", Host: "app.test", Path: "/t/1"}, ReasonOK},
		{"insufficient scope", Route{Method: "POST", Host: "app.test", Path: "/api/things"}, ReasonInsufficientScope},
		{"public", Route{Method: "GET", Path: "/healthz"}, ReasonOK},
		{"no rule", Route{Host: "other.test"}, ReasonNoRule},
	}
	h := MapHeaders{"authorization": "Bearer " + tok, "x-tenant": "acme"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := c.CheckRoute(ctx, h, &tc.route); d.Reason != tc.want {
				t.Fatal(d.Reason, d.Err)
			}
			if got := testing.AllocsPerRun(1000, func() { c.CheckRoute(ctx, h, &tc.route) }); got != 0 {
				t.Errorf("%v allocations per run, want 0", got)
			}
		})
	}
}

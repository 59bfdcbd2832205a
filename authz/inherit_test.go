package authz

import (
	"context"
	"testing"
)

// TestInherit: a checker replacing another (a reload) keeps the cached
// tokens of issuers configured as before and drops those of an issuer that
// changed; a change of a setting the entries were checked against drops
// them all.
func TestInherit(t *testing.T) {
	w := newTestWorld(t, false)
	ctx := context.Background()
	tokA := signClaims(t, w.byAlg["ES256"], w.claims(nil))
	tokH := signClaims(t, w.h, w.claims(func(c map[string]any) { c["iss"] = issH; delete(c, "aud") }))
	for _, tok := range []string{tokA, tokH} {
		if d := w.checker.Check(ctx, authorization(tok)); !d.Allowed() {
			t.Fatalf("%s (%v)", d.Reason, d.Err)
		}
	}
	if n := w.checker.CachedTokens(); n != 2 {
		t.Fatalf("%d cached tokens, want 2", n)
	}
	cfg := w.checker.cfg
	cfg.Issuers = append([]IssuerConfig(nil), cfg.Issuers...)
	cfg.Issuers[2].Algs = []string{"HS256", "HS384"} // issuer H changes
	next, err := NewChecker(cfg, w.rev, WithPrevious(w.checker))
	if err != nil {
		t.Fatal(err)
	}
	if n := next.CachedTokens(); n != 1 {
		t.Fatalf("%d cached tokens after the reload, want issuer A's one", n)
	}
	if next.issuers[issA].keys != w.checker.issuers[issA].keys || next.issuers[issH].keys == w.checker.issuers[issH].keys {
		t.Error("want issuer A's key set taken over, issuer H's new")
	}
	// Until it is replaced, the old checker may still add an entry of the
	// changed issuer: activating the new one drops it.
	w.checker.Check(ctx, authorization(tokH))
	next.Activate()
	if n := next.CachedTokens(); n != 1 {
		t.Fatalf("%d cached tokens after activation, want issuer A's one", n)
	}
	w.checker.Check(ctx, authorization(signClaims(t, w.h, w.claims(func(c map[string]any) { c["iss"] = issH; delete(c, "aud") }))))
	if n := next.CachedTokens(); n != 1 {
		t.Fatalf("the retired checker still fills the cache: %d entries", n)
	}
	if err := next.LoadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tokA, tokH} {
		if d := next.Check(ctx, authorization(tok)); !d.Allowed() {
			t.Fatalf("after the reload: %s (%v)", d.Reason, d.Err)
		}
	}
	cfg.Leeway++
	last, err := NewChecker(cfg, w.rev, WithPrevious(next))
	if err != nil {
		t.Fatal(err)
	}
	if n := last.CachedTokens(); n != 0 {
		t.Fatalf("%d cached tokens after the leeway changed, want 0", n)
	}
}

// TestInheritRulesChanged: a reload that changes the route rules takes
// over no cached token: their rule verdicts were decided against the old
// rules, and a rule that now requires a scope must deny.
func TestInheritRulesChanged(t *testing.T) {
	w := newTestWorld(t, false)
	ctx := context.Background()
	tok := signClaims(t, w.byAlg["ES256"], w.claims(nil))
	cfg := w.checker.cfg
	cfg.Rules = []Rule{{Name: "default"}}
	first, err := NewChecker(cfg, w.rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.LoadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if d := first.Check(ctx, authorization(tok)); !d.Allowed() {
		t.Fatalf("%s (%v)", d.Reason, d.Err)
	}
	cfg.Rules = []Rule{{Name: "default", Scopes: []string{"orders:write"}}}
	next, err := NewChecker(cfg, w.rev, WithPrevious(first))
	if err != nil {
		t.Fatal(err)
	}
	if n := next.CachedTokens(); n != 0 {
		t.Fatalf("%d cached tokens after the rules changed, want 0", n)
	}
	next.Activate()
	if err := next.LoadKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if d := next.Check(ctx, authorization(tok)); d.Reason != ReasonInsufficientScope {
		t.Fatalf("after the rules changed: %s (%v), want %s", d.Reason, d.Err, ReasonInsufficientScope)
	}
}

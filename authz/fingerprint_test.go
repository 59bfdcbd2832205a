package authz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// Two checkers loaded from the same key set have the same fingerprint;
// one more or one other key changes it.
func TestKeySetFingerprints(t *testing.T) {
	a, err := mint.NewKey("ES256", "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := mint.NewKey("ES256", "b")
	if err != nil {
		t.Fatal(err)
	}
	fp := func(keys ...*mint.Key) string {
		t.Helper()
		jwks, err := mint.JWKS(keys...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(path, jwks, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		ic := DefaultIssuerConfig("https://idp")
		ic.JWKSFile = path
		cfg.Issuers = []IssuerConfig{ic}
		c, err := NewChecker(cfg, newTestRevocations(t, newMemSource()))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.KeySetFingerprints()["https://idp"]; got != "" {
			t.Errorf("fingerprint %q before the first load, want none", got)
		}
		if err := c.LoadKeys(t.Context()); err != nil {
			t.Fatal(err)
		}
		return c.KeySetFingerprints()["https://idp"]
	}
	one, again, two, other := fp(a), fp(a), fp(a, b), fp(b)
	switch {
	case one == "" || one != again:
		t.Errorf("the same key set: %q and %q", one, again)
	case two == one || other == one || two == other:
		t.Errorf("different key sets share a fingerprint: %q, %q, %q", one, two, other)
	case fp(b, a) != two:
		t.Error("the order of the keys changes the fingerprint")
	}
}

package admin

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// fakeClock is a clock the test moves; every part of a node reads it.
type fakeClock struct{ unix atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(c.unix.Load(), 0) }
func (c *fakeClock) set(t time.Time)     { c.unix.Store(t.Unix()) }
func (c *fakeClock) add(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

// signingKey returns a new ES256 key with kid k1 and the path of its JWKS.
func signingKey(t *testing.T) (*mint.Key, string) {
	t.Helper()
	key, err := mint.NewKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := mint.JWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	return key, path
}

// lifetimeNode is one node's state as at a start: a filter built from the
// store's unexpired records, an empty confirm cache of one entry (so every
// other lookup evicts), and a checker with an empty token cache.
func lifetimeNode(t *testing.T, store *embedded.Store, clock *fakeClock, jwks string) *authz.Checker {
	t.Helper()
	f, err := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Range(context.Background(), clock.now(), func(r authz.Record) error {
		f.Add(r.LookupKey().FilterKey(), r.Position)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rcfg := authz.DefaultRevocationConfig()
	rcfg.ConfirmCacheSize = 1
	rev, err := authz.NewRevocations(f, store, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	rev.SetReady(true)
	cfg := authz.DefaultConfig()
	ic := authz.DefaultIssuerConfig("https://idp")
	ic.JWKSFile = jwks
	cfg.Issuers = []authz.IssuerConfig{ic}
	c, err := authz.NewChecker(cfg, rev, authz.WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRevokedStaysRevokedUntilExp revokes a token of the longest lifetime
// the checker accepts by each kind of record, then walks the clock to the
// token's exp. At every step a node that keeps running (caches warm, records
// pruned) and a node started afresh from the store (filter rebuilt, caches
// empty: a restart, a rebuild and an eviction at once) must deny it; the
// record may lapse only once the token has expired.
func TestRevokedStaysRevokedUntilExp(t *testing.T) {
	key, jwksPath := signingKey(t)
	defaults := authz.DefaultConfig()
	maxLife, leeway := defaults.MaxTokenLifetime, defaults.Leeway
	cfg := Config{MaxTokenLifetime: maxLife, Leeway: leeway}

	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	revokedAt := t0.Add(10 * time.Minute)
	tests := []struct {
		name string
		iat  time.Time // the token's issue time
		rec  authz.Record
		// lifted, when set, is another record covering the token, stored
		// with rec and lifted at once: rec alone must keep it revoked.
		lifted authz.Record
	}{
		{"token by jti", t0, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1"}, authz.Record{}},
		{"token by jti with its exp", t0, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1", ExpiresAt: t0.Add(maxLife)}, authz.Record{}},
		{"subject, default before", t0, authz.Record{Kind: authz.KindSubject, Value: "alice"}, authz.Record{}},
		// Issued within the leeway ahead of the revocation: acceptable at
		// that moment, so the default before must cover it.
		{"subject, token issued 25s ahead", revokedAt.Add(25 * time.Second), authz.Record{Kind: authz.KindSubject, Value: "alice"}, authz.Record{}},
		{"session, default before", revokedAt.Add(25 * time.Second), authz.Record{Kind: authz.KindSession, Issuer: "https://idp", Value: "s1"}, authz.Record{}},
		{"key", revokedAt.Add(25 * time.Second), authz.Record{Kind: authz.KindKey, Value: "k1"}, authz.Record{}},
		{"key with before", t0, authz.Record{Kind: authz.KindKey, Value: "k1", Before: revokedAt}, authz.Record{}},
		{"issuer-before", t0, authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://idp", Before: revokedAt}, authz.Record{}},
		{name: "token by jti, a subject record lifted", iat: t0, rec: authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1"},
			lifted: authz.Record{Kind: authz.KindSubject, Value: "alice"}},
		{name: "subject, a token record lifted", iat: t0, rec: authz.Record{Kind: authz.KindSubject, Value: "alice"},
			lifted: authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.set(revokedAt)
			store, err := embedded.Open(t.TempDir(), embedded.Options{Now: clock.now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = store.Close() })
			exp := tc.iat.Add(maxLife)
			tok, err := key.Sign(map[string]any{"iss": "https://idp", "sub": "alice", "sid": "s1", "jti": "j1", "iat": tc.iat.Unix(), "exp": exp.Unix()})
			if err != nil {
				t.Fatal(err)
			}
			running := lifetimeNode(t, store, clock, jwksPath)
			ctx := context.Background()
			if d := running.CheckToken(ctx, tok); !d.Allowed() {
				t.Fatalf("before the revocation: %s (%v), want allowed", d.Reason, d.Err)
			}
			rec := tc.rec
			if err := cfg.complete(&rec, clock.now()); err != nil {
				t.Fatal(err)
			}
			stored, err := store.Put(ctx, []authz.Record{rec})
			if err != nil {
				t.Fatal(err)
			}
			running.Revocations().Apply(stored...)
			if tc.lifted.Kind != "" {
				other := tc.lifted
				if err := cfg.complete(&other, clock.now()); err != nil {
					t.Fatal(err)
				}
				more, err := store.Put(ctx, []authz.Record{other})
				if err != nil {
					t.Fatal(err)
				}
				running.Revocations().Apply(more...)
				lift, err := store.Lift(ctx, more[0].ID, "test", "a mistake")
				if err != nil {
					t.Fatal(err)
				}
				running.Revocations().Apply(lift)
			}

			end := exp.Add(leeway)
			for step := 0; ; step++ {
				if step > 100 {
					t.Fatal("clock walk did not end")
				}
				now := clock.now()
				if _, err := store.Prune(now); err != nil {
					t.Fatal(err)
				}
				want := authz.ReasonRevoked
				if !now.Before(end) {
					want = authz.ReasonExpired
				}
				for name, c := range map[string]*authz.Checker{"running node": running, "fresh node": lifetimeNode(t, store, clock, jwksPath)} {
					if d := c.CheckToken(ctx, tok); d.Reason != want {
						t.Fatalf("%s at revocation+%s (exp at +%s): %s (%v), want %s",
							name, now.Sub(revokedAt), exp.Sub(revokedAt), d.Reason, d.Err, want)
					}
				}
				if !now.Before(end) {
					break
				}
				// Walk in hours, then second by second across the end.
				next := now.Add(time.Hour)
				switch {
				case now.After(end.Add(-3 * time.Second)):
					next = now.Add(time.Second)
				case next.After(end.Add(-2 * time.Second)):
					next = end.Add(-2 * time.Second)
				}
				clock.set(next)
			}
		})
	}
}

// TestLifetimeTooLong shows why the checker bounds lifetimes: a token that
// would outlive its revocation record is refused before any record exists.
func TestLifetimeTooLong(t *testing.T) {
	key, jwksPath := signingKey(t)
	maxLife := authz.DefaultConfig().MaxTokenLifetime
	clock := &fakeClock{}
	clock.set(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	store, err := embedded.Open(t.TempDir(), embedded.Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	c := lifetimeNode(t, store, clock, jwksPath)
	now := clock.now().Unix()
	life := int64(maxLife / time.Second)
	tests := []struct {
		name   string
		claims map[string]any
		want   authz.Reason
	}{
		{"iat + max lifetime", map[string]any{"iat": now, "exp": now + life}, authz.ReasonOK},
		{"iat + max lifetime + 1s", map[string]any{"iat": now, "exp": now + life + 1}, authz.ReasonLifetimeTooLong},
		{"ten days", map[string]any{"iat": now, "exp": now + 10*life}, authz.ReasonLifetimeTooLong},
		{"nbf bounds a token without iat", map[string]any{"nbf": now, "exp": now + life}, authz.ReasonOK},
		{"nbf too far from exp", map[string]any{"nbf": now, "exp": now + life + 1}, authz.ReasonLifetimeTooLong},
		{"iat wins over an nbf closer to exp", map[string]any{"iat": now - 3600, "nbf": now, "exp": now + life}, authz.ReasonLifetimeTooLong},
		{"neither iat nor nbf", map[string]any{"exp": now + 60}, authz.ReasonLifetimeTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.claims["iss"], tc.claims["sub"] = "https://idp", "alice"
			tok, err := key.Sign(tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			// Twice: the second answer may come from the token cache.
			for range 2 {
				if d := c.CheckToken(context.Background(), tok); d.Reason != tc.want {
					t.Fatalf("%s (%v), want %s", d.Reason, d.Err, tc.want)
				}
			}
		})
	}
}

package envoy_test

import (
	"context"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// revoke stores recs in the source and enforces them, as the admin API does.
func (e *env) revoke(t testing.TB, recs ...authz.Record) {
	t.Helper()
	for i := range recs {
		recs[i].ExpiresAt = e.now.Add(48 * time.Hour)
		recs[i].Actor, recs[i].Reason = "test", "test"
	}
	stored, err := e.store.Put(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	e.rev.Enforce(stored...)
}

func TestRevocationKinds(t *testing.T) {
	w := keys(t)
	type token struct {
		name    string
		key     string // alg of issuer A's key, or "B" for issuer B
		claims  func(map[string]any)
		revoked bool
	}
	tests := []struct {
		name   string
		record func(e *env) authz.Record
		tokens []token
	}{
		{
			name:   "token by jti",
			record: func(*env) authz.Record { return authz.Record{Kind: authz.KindToken, Issuer: issA, Value: "jti-1"} },
			tokens: []token{
				{"the revoked token", "ES256", func(c map[string]any) { c["jti"] = "jti-1" }, true},
				{"another token of the same subject", "ES256", func(c map[string]any) { c["jti"] = "jti-2" }, false},
				{"same jti from another issuer", "B", func(c map[string]any) { c["jti"] = "jti-1" }, false},
			},
		},
		{
			name: "subject before a time",
			record: func(e *env) authz.Record {
				return authz.Record{Kind: authz.KindSubject, Value: "alice", Before: e.now}
			},
			tokens: []token{
				{"issued before", "ES256", func(c map[string]any) {}, true},
				{"issued exactly at the time", "RS256", nil, true}, // iat set to the record's time below
				{"issued after (a new login)", "ES256", func(c map[string]any) { c["iat"] = time.Now().Add(2 * time.Second).Unix() }, false},
				{"without iat, nbf before", "ES256", func(c map[string]any) { c["nbf"] = c["iat"]; delete(c, "iat") }, true},
				{"without iat, nbf after", "ES256", func(c map[string]any) { delete(c, "iat"); c["nbf"] = time.Now().Add(2 * time.Second).Unix() }, false},
				{"another subject", "ES256", func(c map[string]any) { c["sub"] = "bob" }, false},
				{"same subject at another issuer", "B", func(c map[string]any) {}, true},
			},
		},
		{
			name: "subject of one issuer",
			record: func(e *env) authz.Record {
				return authz.Record{Kind: authz.KindSubject, Issuer: issB, Value: "alice", Before: e.now}
			},
			tokens: []token{
				{"that issuer", "B", func(c map[string]any) {}, true},
				{"another issuer", "ES256", func(c map[string]any) {}, false},
			},
		},
		{
			name:   "session",
			record: func(*env) authz.Record { return authz.Record{Kind: authz.KindSession, Issuer: issA, Value: "sid-1"} },
			tokens: []token{
				{"token of the session", "ES256", func(c map[string]any) { c["sid"] = "sid-1" }, true},
				{"another token of the session", "RS256", func(c map[string]any) { c["sid"] = "sid-1"; c["jti"] = "other" }, true},
				{"another session", "ES256", func(c map[string]any) { c["sid"] = "sid-2" }, false},
				{"no session", "ES256", func(c map[string]any) {}, false},
			},
		},
		{
			name:   "signing key",
			record: func(*env) authz.Record { return authz.Record{Kind: authz.KindKey, Value: "a-ES256"} },
			tokens: []token{
				{"signed with the key", "ES256", func(c map[string]any) {}, true},
				{"signed with another key", "RS256", func(c map[string]any) {}, false},
			},
		},
		{
			name: "issuer before a time",
			record: func(e *env) authz.Record {
				return authz.Record{Kind: authz.KindIssuerBefore, Issuer: issA, Before: e.now}
			},
			tokens: []token{
				{"issued before", "ES256", func(c map[string]any) {}, true},
				{"another algorithm, issued before", "EdDSA", func(c map[string]any) {}, true},
				{"issued after", "ES256", func(c map[string]any) { c["iat"] = time.Now().Add(2 * time.Second).Unix() }, false},
				{"another issuer", "B", func(c map[string]any) {}, false},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			rec := tc.record(e)
			toks := make([]string, len(tc.tokens))
			for i, tk := range tc.tokens {
				c := e.claims(tk.claims)
				if tk.claims == nil {
					c["iat"] = rec.Before.Unix()
				}
				k := w.byAlg[tk.key]
				if tk.key == "B" {
					k = w.b
					c["iss"], c["aud"] = issB, "api-b1"
				}
				toks[i] = sign(t, k, c)
				// Each token is verified and cached before the revocation.
				if o := outcomeOf(t, e.checkToken(t, toks[i])); !o.allowed {
					t.Fatalf("%s: denied before any revocation: %s", tk.name, o.reason)
				}
			}
			e.revoke(t, rec)
			for i, tk := range tc.tokens {
				o := outcomeOf(t, e.checkToken(t, toks[i]))
				if tk.revoked {
					if o.allowed || o.reason != string(authz.ReasonRevoked) {
						t.Errorf("%s: got allowed=%v reason=%q, want revoked", tk.name, o.allowed, o.reason)
					}
					if o.metadata["revoked_by"] != string(rec.Kind) {
						t.Errorf("%s: revoked_by %q, want %q", tk.name, o.metadata["revoked_by"], rec.Kind)
					}
				} else if !o.allowed {
					t.Errorf("%s: denied (%s), want allowed", tk.name, o.reason)
				}
			}
		})
	}
}

// A token without a jti is revoked by the hash of its signing input, so a
// re-encoded ECDSA signature (r, n-s), which verifies too, is still denied.
func TestRevokeTokenWithoutJTIAndMalleatedSignature(t *testing.T) {
	e := newEnv(t)
	es := keys(t).byAlg["ES256"]
	tok := sign(t, es, e.claims(func(c map[string]any) { delete(c, "jti") }))
	twin := malleate(t, tok)
	if twin == tok {
		t.Fatal("malleated token equals the original")
	}
	for _, x := range []string{tok, twin} {
		if o := outcomeOf(t, e.checkToken(t, x)); !o.allowed {
			t.Fatalf("denied before revocation: %s", o.reason)
		}
	}
	input := tok[:strings.LastIndexByte(tok, '.')]
	sum := sha256.Sum256([]byte(input))
	e.revoke(t, authz.Record{Kind: authz.KindToken, Issuer: issA, Value: authz.TokenHashPrefix + hex.EncodeToString(sum[:])})
	for name, x := range map[string]string{"original": tok, "malleated": twin} {
		if o := outcomeOf(t, e.checkToken(t, x)); o.reason != string(authz.ReasonRevoked) {
			t.Errorf("%s: reason %q, want revoked", name, o.reason)
		}
	}
}

// malleate returns tok with its ECDSA signature (r, s) replaced by (r, n-s).
func malleate(t *testing.T, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(n, s)
	out := make([]byte, 64)
	copy(out, sig[:32])
	s.FillBytes(out[32:])
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}

// A "maybe" the confirm cache cannot answer goes to the source: a subject
// record applied from the feed (not cached) is found by exact lookup; and
// when the source fails, the request is denied, never allowed.
func TestConfirmThroughSourceAndFailClosed(t *testing.T) {
	e := newEnv(t)
	es := keys(t).byAlg["ES256"]
	tok := sign(t, es, e.claims(nil))
	recs, err := e.store.Put(context.Background(), []authz.Record{{
		Kind: authz.KindSubject, Value: "alice", Before: e.now, ExpiresAt: e.now.Add(time.Hour),
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.rev.Apply(recs...)
	if o := outcomeOf(t, e.checkToken(t, tok)); o.reason != string(authz.ReasonRevoked) {
		t.Fatalf("reason %q, want revoked", o.reason)
	}
	if st := e.rev.Stats(); st.Lookups == 0 {
		t.Errorf("no exact lookup was made: %+v", st)
	}
	// Another subject whose key the filter now flags, with the source closed.
	bob := sign(t, es, e.claims(func(c map[string]any) { c["sub"] = "bob" }))
	recs, err = e.store.Put(context.Background(), []authz.Record{{
		Kind: authz.KindSubject, Value: "bob", Before: e.now.Add(-time.Hour), ExpiresAt: e.now.Add(time.Hour),
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.rev.Apply(recs...)
	e.store.Close()
	if o := outcomeOf(t, e.checkToken(t, bob)); o.allowed || o.reason != string(authz.ReasonUnavailable) || o.httpCode != 503 {
		t.Fatalf("source down: allowed=%v reason=%q http=%d, want denied revocation_unavailable 503", o.allowed, o.reason, o.httpCode)
	}
}

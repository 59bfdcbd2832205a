package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// kindToken is one token of a revocation-kind case and whether the
// record revokes it.
type kindToken struct {
	name string
	key  string // alg of issuer A's key, "B" for issuer B, "twin" for the malleated twin of the case's first token
	// claims changes the default claims; nil sets iat to the record's
	// Before (the boundary).
	claims  func(c map[string]any)
	revoked bool
}

// TestRevocationKinds revokes with each kind of record and checks a set
// of tokens, each verified and cached before the revocation: the covered
// ones are denied revoked (by that kind), again when asked twice, and the
// others stay allowed. Each case runs with the record applied at once, as
// the admin API does, and with the record only in a loaded snapshot, so
// that the check confirms it through the source.
func TestRevocationKinds(t *testing.T) {
	noop := func(map[string]any) {}
	noJTI := func(c map[string]any) { delete(c, "jti") }
	tests := []struct {
		name string
		// record is the revocation; toks are the case's tokens, signed.
		record func(w *testWorld, toks []string) Record
		tokens []kindToken
	}{
		{
			name:   "token by jti",
			record: func(*testWorld, []string) Record { return Record{Kind: KindToken, Issuer: issA, Value: "jti-1"} },
			tokens: []kindToken{
				{"the revoked token", "ES256", func(c map[string]any) { c["jti"] = "jti-1" }, true},
				{"the same jti under another key of the issuer", "RS256", func(c map[string]any) { c["jti"] = "jti-1" }, true},
				{"another token of the same subject", "ES256", func(c map[string]any) { c["jti"] = "jti-2" }, false},
				{"same jti from another issuer", "B", func(c map[string]any) { c["jti"] = "jti-1" }, false},
			},
		},
		{
			// A token without a jti is revoked by the hash of its signing
			// input, so a re-encoded ECDSA signature, which verifies too,
			// is still denied.
			name: "token without jti, by the hash of its signing input",
			record: func(_ *testWorld, toks []string) Record {
				sum := sha256.Sum256([]byte(toks[0][:strings.LastIndexByte(toks[0], '.')]))
				return Record{Kind: KindToken, Issuer: issA, Value: TokenHashPrefix + hex.EncodeToString(sum[:])}
			},
			tokens: []kindToken{
				{"the revoked token", "ES256", noJTI, true},
				{"its malleated twin (r, n-s)", "twin", nil, true},
				{"another token without jti of the same subject", "ES256", func(c map[string]any) { delete(c, "jti"); c["iat"] = c["iat"].(int64) - 1 }, false},
				{"a token with a jti", "ES256", noop, false},
			},
		},
		{
			name: "subject before a time",
			record: func(w *testWorld, _ []string) Record {
				return Record{Kind: KindSubject, Value: "alice", Before: time.Unix(w.now-30, 0)}
			},
			tokens: []kindToken{
				{"issued before", "ES256", noop, true},
				{"issued exactly at the time", "RS256", nil, true},
				{"issued one second after (a new login)", "ES256", func(c map[string]any) { c["iat"] = c["iat"].(int64) + 31 }, false},
				{"without iat, nbf before", "ES256", func(c map[string]any) { c["nbf"] = c["iat"]; delete(c, "iat") }, true},
				{"without iat, nbf after", "ES256", func(c map[string]any) { c["nbf"] = c["iat"].(int64) + 31; delete(c, "iat") }, false},
				{"without iat, nbf exactly at the time", "EdDSA", func(c map[string]any) { c["nbf"] = c["iat"].(int64) + 30; delete(c, "iat") }, true},
				{"another subject", "ES256", func(c map[string]any) { c["sub"] = "bob" }, false},
				{"same subject at another issuer", "B", noop, true},
			},
		},
		{
			name: "subject of one issuer",
			record: func(w *testWorld, _ []string) Record {
				return Record{Kind: KindSubject, Issuer: issB, Value: "alice", Before: time.Unix(w.now-30, 0)}
			},
			tokens: []kindToken{
				{"that issuer", "B", noop, true},
				{"another issuer", "ES256", noop, false},
			},
		},
		{
			name:   "session",
			record: func(*testWorld, []string) Record { return Record{Kind: KindSession, Issuer: issA, Value: "sid-1"} },
			tokens: []kindToken{
				{"token of the session", "ES256", func(c map[string]any) { c["sid"] = "sid-1" }, true},
				{"another token of the session", "RS256", func(c map[string]any) { c["sid"] = "sid-1"; c["jti"] = "other" }, true},
				{"another session", "ES256", func(c map[string]any) { c["sid"] = "sid-2" }, false},
				{"no session", "ES256", noop, false},
				{"same session id at another issuer", "B", func(c map[string]any) { c["sid"] = "sid-1" }, false},
			},
		},
		{
			name:   "signing key",
			record: func(*testWorld, []string) Record { return Record{Kind: KindKey, Value: "a-ES256"} },
			tokens: []kindToken{
				{"signed with the key", "ES256", noop, true},
				{"signed with another key", "RS256", noop, false},
			},
		},
		{
			name: "issuer before a time",
			record: func(w *testWorld, _ []string) Record {
				return Record{Kind: KindIssuerBefore, Issuer: issA, Before: time.Unix(w.now-30, 0)}
			},
			tokens: []kindToken{
				{"issued before", "ES256", noop, true},
				{"another algorithm, issued before", "EdDSA", noop, true},
				{"issued exactly at the time", "PS256", nil, true},
				{"issued one second after", "ES256", func(c map[string]any) { c["iat"] = c["iat"].(int64) + 31 }, false},
				{"another issuer", "B", noop, false},
			},
		},
	}
	modes := []struct {
		name  string
		apply func(w *testWorld, rec Record)
	}{
		{"applied", func(w *testWorld, rec Record) { w.revoke(t, rec) }},
		{"from a snapshot", func(w *testWorld, rec Record) { w.snapshot(t, rec) }},
	}
	for _, tc := range tests {
		for _, mode := range modes {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				w := newTestWorld(t, false)
				toks := make([]string, len(tc.tokens))
				for i, tk := range tc.tokens {
					toks[i] = kindCaseToken(t, w, tk, toks)
				}
				rec := tc.record(w, toks)
				for i, tk := range tc.tokens {
					if d := w.checker.CheckToken(context.Background(), toks[i]); !d.Allowed() {
						t.Fatalf("%s: %s (%v) before any revocation", tk.name, d.Reason, d.Err)
					}
				}
				mode.apply(w, rec)
				for i, tk := range tc.tokens {
					for range 2 { // the second answer comes from the caches
						d := w.checker.CheckToken(context.Background(), toks[i])
						switch {
						case tk.revoked && (d.Reason != ReasonRevoked || d.RevokedBy != rec.Kind):
							t.Errorf("%s: %s by %q (%v), want revoked by %s", tk.name, d.Reason, d.RevokedBy, d.Err, rec.Kind)
						case tk.revoked && d.Claims.Subject == "":
							t.Errorf("%s: revoked without the token's claims", tk.name)
						case !tk.revoked && !d.Allowed():
							t.Errorf("%s: %s by %q (%v), want allowed", tk.name, d.Reason, d.RevokedBy, d.Err)
						}
					}
				}
			})
		}
	}
}

// kindCaseToken signs tk's token; prev are the case's tokens so far.
func kindCaseToken(t *testing.T, w *testWorld, tk kindToken, prev []string) string {
	t.Helper()
	if tk.key == "twin" {
		twin := malleate(t, prev[0])
		if twin == prev[0] {
			t.Fatal("the malleated token equals the original")
		}
		return twin
	}
	c := w.claims(tk.claims)
	if tk.claims == nil {
		c["iat"] = w.now - 30 // the records' Before
	}
	k := w.byAlg[tk.key]
	if tk.key == "B" {
		k = w.b
		c["iss"], c["aud"] = issB, "api-b1"
	}
	return signClaims(t, k, c)
}

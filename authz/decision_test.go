package authz

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// decisionCase is one request and the decision it must get.
type decisionCase struct {
	name string
	h    http.Header
	want Reason
	kid  string // when set, the kid an allowed decision reports
}

// TestCheckDecisions runs every reason a request is allowed or denied for
// before revocation through Checker.Check, with the headers in both forms
// the adapters pass: credentials, encoding, algorithms, signatures, keys,
// time claims with their leeway, lifetime, issuers and audiences. An
// allowed decision carries the token's claims; a deny before the token is
// verified carries none. (not_ready: TestCheckNotReady; revoked:
// TestRevocationKinds; revocation_unavailable: TestCacheDecisions.)
func TestCheckDecisions(t *testing.T) {
	w := newTestWorld(t, false)
	es := w.byAlg["ES256"]
	hdr := func(alg, kid string) string { return `{"alg":"` + alg + `","typ":"JWT","kid":"` + kid + `"}` }
	good := func() string { return mustJSON(t, w.claims(nil)) }
	with := func(mod func(map[string]any)) string { return mustJSON(t, w.claims(mod)) }
	signA := func(mod func(map[string]any)) string { return signClaims(t, es, w.claims(mod)) }
	valid := signA(nil)
	other := signA(func(c map[string]any) { c["sub"] = "admin" })
	parts := strings.Split(valid, ".")
	now := w.now
	const day = 24 * 3600 // DefaultConfig().MaxTokenLifetime

	tests := []decisionCase{
		// Credentials.
		{name: "no authorization header", h: http.Header{}, want: ReasonMissingToken},
		{name: "basic credentials", h: http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}, want: ReasonMissingToken},
		{name: "bearer without token", h: http.Header{"Authorization": {"Bearer "}}, want: ReasonMissingToken},
		{name: "scheme is case-insensitive", h: http.Header{"Authorization": {"bEaReR " + valid}}, want: ReasonOK},
		{name: "token header", h: http.Header{"X-Access-Token": {valid}}, want: ReasonOK},
		{name: "token header with bearer", h: http.Header{"X-Access-Token": {"Bearer " + valid}}, want: ReasonOK},
		{name: "cookie", h: http.Header{"Cookie": {"theme=dark; session=" + valid + "; lang=en"}}, want: ReasonOK},
		{name: "two Authorization headers", h: http.Header{"Authorization": {"Bearer " + valid, "Bearer " + other}}, want: ReasonMultipleTokens},
		{name: "Authorization twice with the same token", h: http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, want: ReasonMultipleTokens},
		{name: "cookie and Authorization", h: http.Header{"Cookie": {"session=" + valid}, "Authorization": {"Bearer " + other}}, want: ReasonMultipleTokens},
		{name: "token header and Authorization", h: http.Header{"X-Access-Token": {valid}, "Authorization": {"Bearer " + other}}, want: ReasonMultipleTokens},
		{name: "cookie set twice", h: http.Header{"Cookie": {"session=" + valid, "session=" + other}}, want: ReasonMultipleTokens},
		{name: "one value with two tokens", h: http.Header{"Authorization": {"Bearer " + valid + ",Bearer " + other}}, want: ReasonMultipleTokens},

		// Encoding.
		{name: "not a JWT", h: authorization("abc"), want: ReasonMalformed},
		{name: "two parts", h: authorization(parts[0] + "." + parts[1]), want: ReasonMalformed},
		{name: "anything after the signature", h: authorization(valid + ".x"), want: ReasonMalformed},
		{name: "trailing garbage", h: authorization(valid + "x"), want: ReasonMalformed},
		{name: "padding", h: authorization(parts[0] + "=." + parts[1] + "." + parts[2]), want: ReasonMalformed},
		{name: "stray character", h: authorization(parts[0] + "." + parts[1][:4] + "*" + parts[1][5:] + "." + parts[2]), want: ReasonMalformed},
		{name: "non-zero trailing bits", h: authorization(parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2])), want: ReasonMalformed},
		{name: "oversized", h: authorization(strings.Repeat("a", 9000)), want: ReasonTooLarge},
		{name: "duplicate claim", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), strings.Replace(good(), `"sub":"alice"`, `"sub":"alice","sub":"admin"`, 1))), want: ReasonMalformed},
		{name: "duplicate header member", h: authorization(signExact(t, es, `{"alg":"ES256","alg":"ES256","kid":"a-ES256"}`, good())), want: ReasonMalformed},
		{name: "invalid UTF-8", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), strings.Replace(good(), `"alice"`, "\"al\xffce\"", 1))), want: ReasonMalformed},
		{name: "exp as string", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["exp"] = "2030-01-01" }))), want: ReasonMalformed},
		{name: "exp zero", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["exp"] = 0 }))), want: ReasonMalformed},
		{name: "exp missing", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { delete(c, "exp") }))), want: ReasonMalformed},
		{name: "iat as string", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["iat"] = "now" }))), want: ReasonMalformed},
		{name: "sub as number", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["sub"] = 42 }))), want: ReasonMalformed},
		{name: "aud array with a number", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["aud"] = []any{audA, 1} }))), want: ReasonMalformed},
		{name: "payload not an object", h: authorization(signExact(t, es, hdr("ES256", "a-ES256"), `["x"]`)), want: ReasonMalformed},

		// Algorithms and token types.
		{name: "alg none", h: authorization(enc64(`{"alg":"none","typ":"JWT"}`) + "." + enc64(good()) + "."), want: ReasonMalformed},
		{name: "alg none with a signature", h: authorization(enc64(`{"alg":"none","typ":"JWT"}`) + "." + enc64(good()) + "." + parts[2]), want: ReasonBadAlgorithm},
		{name: "header without alg", h: authorization(signExact(t, es, `{"typ":"JWT","kid":"a-ES256"}`, good())), want: ReasonBadAlgorithm},
		{name: "alg in other case", h: authorization(signExact(t, es, hdr("es256", "a-ES256"), good())), want: ReasonBadAlgorithm},
		{name: "alg not allowed for issuer", h: authorization(signClaims(t, w.h, w.claims(nil))), want: ReasonBadAlgorithm},
		{name: "alg confusion: HS256 keyed with the public key", h: authorization(hmacWithPublicKey(t, es, good())), want: ReasonBadAlgorithm},
		{name: "unknown crit header", h: authorization(signExact(t, es, `{"alg":"ES256","kid":"a-ES256","crit":["exp"],"exp":1}`, good())), want: ReasonUnsupported},
		{name: "JWE", h: authorization(enc64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".a.b.c.d"), want: ReasonUnsupported},
		{name: "typ not accepted", h: authorization(signExact(t, es, `{"alg":"ES256","kid":"a-ES256","typ":"dpop+jwt"}`, good())), want: ReasonUnsupported},
		{name: "typ at+jwt", h: authorization(signExact(t, es, `{"alg":"ES256","kid":"a-ES256","typ":"at+jwt"}`, good())), want: ReasonOK, kid: "a-ES256"},

		// Signatures and keys.
		{name: "tampered payload", h: authorization(parts[0] + "." + enc64(strings.Replace(mustJSON(t, w.claims(nil)), "alice", "admin", 1)) + "." + parts[2]), want: ReasonBadSignature},
		{name: "attacker key with a known kid", h: authorization(signClaims(t, w.other, w.claims(nil))), want: ReasonBadSignature},
		{name: "jwk header naming the attacker's key", h: authorization(withEmbeddedKey(t, w.worldKeys, "jwk", good())), want: ReasonBadSignature},
		{name: "jku header to the attacker's key set", h: authorization(withEmbeddedKey(t, w.worldKeys, "jku", good())), want: ReasonBadSignature},
		{name: "x5u header", h: authorization(withEmbeddedKey(t, w.worldKeys, "x5u", good())), want: ReasonBadSignature},
		{name: "unknown kid", h: authorization(signExact(t, es, hdr("ES256", "nope"), good())), want: ReasonUnknownKey},

		// Time claims, with the 30 s leeway.
		{name: "expired", h: authorization(signA(func(c map[string]any) { c["exp"] = now - 60 })), want: ReasonExpired},
		{name: "expired at the end of the leeway", h: authorization(signA(func(c map[string]any) { c["exp"] = now - 30 })), want: ReasonExpired},
		{name: "expired within leeway", h: authorization(signA(func(c map[string]any) { c["exp"] = now - 29 })), want: ReasonOK},
		{name: "not yet valid", h: authorization(signA(func(c map[string]any) { c["nbf"] = now + 3600 })), want: ReasonNotYetValid},
		{name: "not yet valid just past the leeway", h: authorization(signA(func(c map[string]any) { c["nbf"] = now + 31 })), want: ReasonNotYetValid},
		{name: "nbf within leeway", h: authorization(signA(func(c map[string]any) { c["nbf"] = now + 30 })), want: ReasonOK},
		{name: "issued in the future", h: authorization(signA(func(c map[string]any) { c["iat"] = now + 3600 })), want: ReasonIssuedInFuture},
		{name: "issued just past the leeway", h: authorization(signA(func(c map[string]any) { c["iat"] = now + 31 })), want: ReasonIssuedInFuture},
		{name: "iat within leeway", h: authorization(signA(func(c map[string]any) { c["iat"] = now + 30 })), want: ReasonOK},

		// Lifetime, bounded by MaxTokenLifetime from iat (or nbf without iat).
		{name: "lifetime of exactly the maximum", h: authorization(signA(func(c map[string]any) { c["iat"], c["exp"] = now-60, now-60+day })), want: ReasonOK},
		{name: "lifetime one second too long", h: authorization(signA(func(c map[string]any) { c["iat"], c["exp"] = now-60, now-60+day+1 })), want: ReasonLifetimeTooLong},
		{name: "nbf without iat, lifetime too long", h: authorization(signA(func(c map[string]any) { delete(c, "iat"); c["nbf"], c["exp"] = now-60, now-60+day+1 })), want: ReasonLifetimeTooLong},
		{name: "nbf without iat, lifetime of the maximum", h: authorization(signA(func(c map[string]any) { delete(c, "iat"); c["nbf"], c["exp"] = now-60, now-60+day })), want: ReasonOK},
		{name: "iat wins over an nbf closer to exp", h: authorization(signA(func(c map[string]any) { c["iat"], c["nbf"], c["exp"] = now-3600, now, now+day-60 })), want: ReasonLifetimeTooLong},
		{name: "neither iat nor nbf", h: authorization(signA(func(c map[string]any) { delete(c, "iat") })), want: ReasonLifetimeTooLong},

		// Issuers and audiences.
		{name: "unknown issuer", h: authorization(signA(func(c map[string]any) { c["iss"] = "https://evil.test" })), want: ReasonWrongIssuer},
		{name: "no issuer", h: authorization(signA(func(c map[string]any) { delete(c, "iss") })), want: ReasonWrongIssuer},
		{name: "wrong audience", h: authorization(signA(func(c map[string]any) { c["aud"] = "api-other" })), want: ReasonWrongAudience},
		{name: "no audience", h: authorization(signA(func(c map[string]any) { delete(c, "aud") })), want: ReasonWrongAudience},
		{name: "audience array", h: authorization(signA(func(c map[string]any) { c["aud"] = []string{"x", audA} })), want: ReasonOK},
		{name: "audience array without an accepted one", h: authorization(signA(func(c map[string]any) { c["aud"] = []string{"x", "api-b1"} })), want: ReasonWrongAudience},
		{name: "issuer B, key from URL, second audience", h: authorization(signClaims(t, w.b, w.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, []string{"api-b2"} }))), want: ReasonOK, kid: "b-1"},
		{name: "issuer B, first audience as a string", h: authorization(signClaims(t, w.b, w.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, "api-b1" }))), want: ReasonOK, kid: "b-1"},
		{name: "issuer B token on issuer A's audience", h: authorization(signClaims(t, w.b, w.claims(func(c map[string]any) { c["iss"] = issB }))), want: ReasonWrongAudience},
		{name: "issuer A's key claiming issuer B", h: authorization(signA(func(c map[string]any) { c["iss"], c["aud"] = issB, "api-b1" })), want: ReasonUnknownKey},
		{name: "issuer H, HS256 from the secret file", h: authorization(signClaims(t, w.h, w.claims(func(c map[string]any) { c["iss"] = issH }))), want: ReasonOK},
	}
	for _, alg := range AsymmetricAlgorithms {
		tests = append(tests, decisionCase{name: "algorithm " + alg, h: authorization(signClaims(t, w.byAlg[alg], w.claims(nil))), want: ReasonOK, kid: "a-" + alg})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := w.check(t, tc.h)
			if d.Reason != tc.want {
				t.Fatalf("reason %s (%v), want %s", d.Reason, d.Err, tc.want)
			}
			if tc.want == ReasonExpired {
				// Signed by its issuer, only late: the detectors want to know who.
				if d.Claims.Subject != "alice" || d.Claims.TokenID == "" || d.RevokedBy != "" {
					t.Errorf("expired with claims %+v, revoked by %q", d.Claims, d.RevokedBy)
				}
				return
			}
			if tc.want != ReasonOK {
				if d.Claims != (Claims{}) || d.RevokedBy != "" {
					t.Errorf("a deny before verification reports claims %+v, revoked by %q", d.Claims, d.RevokedBy)
				}
				return
			}
			c := d.Claims
			if c.Subject != "alice" || c.TokenID == "" || c.JTI != c.TokenID || c.Expiry == 0 || c.IssuedAt == 0 {
				t.Errorf("allowed with claims %+v", c)
			}
			// The claim headers' values: sub, iss, then email.
			if c.Extra[0] != c.Subject || c.Extra[1] != c.Issuer || c.Extra[2] != "alice@example.test" {
				t.Errorf("claim header values %q", c.Extra)
			}
			if tc.kid != "" && c.KeyID != tc.kid {
				t.Errorf("kid %q, want %q", c.KeyID, tc.kid)
			}
		})
	}
}

// TestCheckNotReady: nothing is decided from state not loaded yet. While
// revocation state is not loaded every request is not_ready; while one
// issuer's key set has never loaded, that issuer's tokens are not_ready
// (not unknown_key) and the others' are decided; once it loads, its tokens
// are decided too.
func TestCheckNotReady(t *testing.T) {
	w := newTestWorld(t, true)
	tokA := signClaims(t, w.byAlg["ES256"], w.claims(nil))
	tokB := signClaims(t, w.b, w.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, "api-b1" }))
	otherB := signClaims(t, w.other, w.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, "api-b1" }))
	loadB := func(t *testing.T) {
		w.jwksB.set(t, w.b)
		if err := w.checker.LoadKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		change func(t *testing.T) // before the checks, in order
		tok    string
		want   Reason
	}{
		{"issuer B's key set not loaded: its token", nil, tokB, ReasonNotReady},
		{"issuer B's key set not loaded: a token of an unknown kid", nil, otherB, ReasonNotReady},
		{"issuer B's key set not loaded: issuer A's token", nil, tokA, ReasonOK},
		{"revocation state not loaded: a cached token", func(*testing.T) { w.rev.SetReady(false) }, tokA, ReasonNotReady},
		{"revocation state not loaded: a missing token is still missing", nil, "", ReasonMissingToken},
		{"revocation state loaded again", func(*testing.T) { w.rev.SetReady(true) }, tokA, ReasonOK},
		{"issuer B's key set loaded: its token", loadB, tokB, ReasonOK},
		{"issuer B's key set loaded: a token of an unknown kid", nil, otherB, ReasonUnknownKey},
	}
	if w.checker.Ready() {
		t.Fatal("ready with issuer B's key set not loaded")
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change != nil {
				tc.change(t)
			}
			h := http.Header{}
			if tc.tok != "" {
				h = authorization(tc.tok)
			}
			if d := w.checker.Check(context.Background(), h); d.Reason != tc.want {
				t.Fatalf("reason %s (%v), want %s", d.Reason, d.Err, tc.want)
			}
		})
	}
	if !w.checker.Ready() {
		t.Error("not ready with every key set and the revocation state loaded")
	}
}

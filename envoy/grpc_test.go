package envoy_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
)

// outcome is what a client of Envoy would see from one check.
type outcome struct {
	allowed   bool
	reason    string            // from the deny body
	httpCode  int               // of the denied response
	challenge string            // WWW-Authenticate
	upstream  map[string]string // headers set for the upstream on allow
	removed   []string          // headers removed on allow
	metadata  map[string]string
}

func outcomeOf(t testing.TB, resp *authv3.CheckResponse) outcome {
	t.Helper()
	var o outcome
	o.metadata = map[string]string{}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		o.metadata[k] = v.GetStringValue()
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		o.allowed = true
		o.upstream = map[string]string{}
		for _, h := range resp.GetOkResponse().GetHeaders() {
			o.upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		o.removed = resp.GetOkResponse().GetHeadersToRemove()
		return o
	}
	den := resp.GetDeniedResponse()
	if den == nil {
		t.Fatalf("status %d without a denied response", resp.GetStatus().GetCode())
	}
	o.httpCode = int(den.GetStatus().GetCode())
	for _, h := range den.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" {
			o.challenge = h.GetHeader().GetValue()
		}
	}
	var body struct{ Error, Reason string }
	if err := json.Unmarshal([]byte(den.GetBody()), &body); err != nil {
		t.Fatalf("deny body %q: %v", den.GetBody(), err)
	}
	o.reason = body.Reason
	if o.metadata["reason"] != body.Reason {
		t.Errorf("metadata reason %q, body reason %q", o.metadata["reason"], body.Reason)
	}
	return o
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestCheckDecisions(t *testing.T) {
	e := newEnv(t)
	w := keys(t)
	es := w.byAlg["ES256"]
	hdr := func(alg, kid string) string { return `{"alg":"` + alg + `","typ":"JWT","kid":"` + kid + `"}` }
	good := func() string { return mustJSON(t, e.claims(nil)) }
	with := func(mod func(map[string]any)) string { return mustJSON(t, e.claims(mod)) }
	valid := sign(t, es, e.claims(nil))
	parts := strings.Split(valid, ".")

	tests := []struct {
		name    string
		headers map[string]string
		want    authz.Reason
	}{
		{"no authorization header", map[string]string{}, authz.ReasonMissingToken},
		{"basic credentials", map[string]string{"authorization": "Basic YWxpY2U6c2VjcmV0"}, authz.ReasonMissingToken},
		{"bearer without token", map[string]string{"authorization": "Bearer "}, authz.ReasonMissingToken},
		{"scheme is case-insensitive", map[string]string{"authorization": "bEaReR " + valid}, authz.ReasonOK},
		{"not a JWT", bearer("abc"), authz.ReasonMalformed},
		{"two parts", bearer(parts[0] + "." + parts[1]), authz.ReasonMalformed},
		{"anything after the signature", bearer(valid + ".x"), authz.ReasonMalformed},
		{"trailing garbage", bearer(valid + "x"), authz.ReasonMalformed},
		{"padding", bearer(parts[0] + "=." + parts[1] + "." + parts[2]), authz.ReasonMalformed},
		{"stray character", bearer(parts[0] + "." + parts[1][:4] + "*" + parts[1][5:] + "." + parts[2]), authz.ReasonMalformed},
		{"non-zero trailing bits", bearer(parts[0] + "." + parts[1] + "." + flipTrailingBits(parts[2])), authz.ReasonMalformed},
		{"oversized", bearer(strings.Repeat("a", 9000)), authz.ReasonTooLarge},
		{"duplicate claim", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), strings.Replace(good(), `"sub":"alice"`, `"sub":"alice","sub":"admin"`, 1))), authz.ReasonMalformed},
		{"duplicate header member", bearer(signRaw(t, es, `{"alg":"ES256","alg":"ES256","kid":"a-ES256"}`, good())), authz.ReasonMalformed},
		{"invalid UTF-8", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), strings.Replace(good(), `"alice"`, "\"al\xffce\"", 1))), authz.ReasonMalformed},
		{"exp as string", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["exp"] = "2030-01-01" }))), authz.ReasonMalformed},
		{"exp zero", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["exp"] = 0 }))), authz.ReasonMalformed},
		{"exp missing", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { delete(c, "exp") }))), authz.ReasonMalformed},
		{"iat as string", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["iat"] = "now" }))), authz.ReasonMalformed},
		{"sub as number", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["sub"] = 42 }))), authz.ReasonMalformed},
		{"aud array with a number", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), with(func(c map[string]any) { c["aud"] = []any{audA, 1} }))), authz.ReasonMalformed},
		{"payload not an object", bearer(signRaw(t, es, hdr("ES256", "a-ES256"), `["x"]`)), authz.ReasonMalformed},
		{"alg none", bearer(b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(good()) + "."), authz.ReasonMalformed},
		{"alg none with a signature", bearer(b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(good()) + "." + parts[2]), authz.ReasonBadAlgorithm},
		{"header without alg", bearer(signRaw(t, es, `{"typ":"JWT","kid":"a-ES256"}`, good())), authz.ReasonBadAlgorithm},
		{"alg in other case", bearer(signRaw(t, es, hdr("es256", "a-ES256"), good())), authz.ReasonBadAlgorithm},
		{"alg not allowed for issuer", bearer(sign(t, w.h, e.claims(nil))), authz.ReasonBadAlgorithm},
		{"alg confusion: HS256 keyed with the public key", bearer(hmacWithPublicKey(t, es, good())), authz.ReasonBadAlgorithm},
		{"unknown crit header", bearer(signRaw(t, es, `{"alg":"ES256","kid":"a-ES256","crit":["exp"],"exp":1}`, good())), authz.ReasonUnsupported},
		{"JWE", bearer(b64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".a.b.c.d"), authz.ReasonUnsupported},
		{"typ not accepted", bearer(signRaw(t, es, `{"alg":"ES256","kid":"a-ES256","typ":"dpop+jwt"}`, good())), authz.ReasonUnsupported},
		{"typ at+jwt", bearer(signRaw(t, es, `{"alg":"ES256","kid":"a-ES256","typ":"at+jwt"}`, good())), authz.ReasonOK},
		{"tampered payload", bearer(parts[0] + "." + b64(strings.Replace(good(), "alice", "admin", 1)) + "." + parts[2]), authz.ReasonBadSignature},
		{"attacker key with a known kid", bearer(sign(t, w.other, e.claims(nil))), authz.ReasonBadSignature},
		{"jwk header naming the attacker's key", bearer(withEmbeddedKey(t, w, "jwk", good())), authz.ReasonBadSignature},
		{"jku header to the attacker's key set", bearer(withEmbeddedKey(t, w, "jku", good())), authz.ReasonBadSignature},
		{"x5u header", bearer(withEmbeddedKey(t, w, "x5u", good())), authz.ReasonBadSignature},
		{"unknown kid", bearer(signRaw(t, es, hdr("ES256", "nope"), good())), authz.ReasonUnknownKey},
		{"expired", bearer(sign(t, es, e.claims(func(c map[string]any) { c["exp"] = e.now.Add(-time.Minute).Unix() }))), authz.ReasonExpired},
		{"expired within leeway", bearer(sign(t, es, e.claims(func(c map[string]any) { c["exp"] = e.now.Add(-10 * time.Second).Unix() }))), authz.ReasonOK},
		{"not yet valid", bearer(sign(t, es, e.claims(func(c map[string]any) { c["nbf"] = e.now.Add(time.Hour).Unix() }))), authz.ReasonNotYetValid},
		{"nbf within leeway", bearer(sign(t, es, e.claims(func(c map[string]any) { c["nbf"] = e.now.Add(10 * time.Second).Unix() }))), authz.ReasonOK},
		{"issued in the future", bearer(sign(t, es, e.claims(func(c map[string]any) { c["iat"] = e.now.Add(time.Hour).Unix() }))), authz.ReasonIssuedInFuture},
		{"unknown issuer", bearer(sign(t, es, e.claims(func(c map[string]any) { c["iss"] = "https://evil.test" }))), authz.ReasonWrongIssuer},
		{"no issuer", bearer(sign(t, es, e.claims(func(c map[string]any) { delete(c, "iss") }))), authz.ReasonWrongIssuer},
		{"wrong audience", bearer(sign(t, es, e.claims(func(c map[string]any) { c["aud"] = "api-other" }))), authz.ReasonWrongAudience},
		{"no audience", bearer(sign(t, es, e.claims(func(c map[string]any) { delete(c, "aud") }))), authz.ReasonWrongAudience},
		{"audience array", bearer(sign(t, es, e.claims(func(c map[string]any) { c["aud"] = []string{"x", audA} }))), authz.ReasonOK},
		{"issuer B, key from URL, second audience", bearer(sign(t, w.b, e.claims(func(c map[string]any) { c["iss"], c["aud"] = issB, []string{"api-b2"} }))), authz.ReasonOK},
		{"issuer B token on issuer A's audience", bearer(sign(t, w.b, e.claims(func(c map[string]any) { c["iss"] = issB }))), authz.ReasonWrongAudience},
		{"issuer H, HS256 from the secret file", bearer(sign(t, w.h, e.claims(func(c map[string]any) { c["iss"] = issH }))), authz.ReasonOK},
	}
	for _, alg := range authz.AsymmetricAlgorithms {
		tests = append(tests, struct {
			name    string
			headers map[string]string
			want    authz.Reason
		}{"algorithm " + alg, bearer(sign(t, w.byAlg[alg], e.claims(nil))), authz.ReasonOK})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := outcomeOf(t, e.check(t, tc.headers))
			if tc.want == authz.ReasonOK {
				if !o.allowed {
					t.Fatalf("denied with %q, want allowed", o.reason)
				}
				return
			}
			if o.allowed {
				t.Fatalf("allowed, want %s", tc.want)
			}
			if o.reason != string(tc.want) {
				t.Fatalf("reason %q, want %q", o.reason, tc.want)
			}
			if o.httpCode != 401 {
				t.Errorf("HTTP status %d, want 401", o.httpCode)
			}
			wantChallenge := `Bearer error="invalid_token", error_description="` + string(tc.want) + `"`
			if tc.want == authz.ReasonMissingToken {
				wantChallenge = "Bearer"
			}
			if o.challenge != wantChallenge {
				t.Errorf("WWW-Authenticate %q, want %q", o.challenge, wantChallenge)
			}
		})
	}
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

// flipTrailingBits changes the unused low bits of the last base64url
// character, giving a non-canonical encoding of the same bytes.
func flipTrailingBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last^1])
}

func TestAllowedResponse(t *testing.T) {
	e := newEnv(t)
	tok := sign(t, keys(t).byAlg["ES256"], e.claims(func(c map[string]any) { delete(c, "email"); c["sid"] = "s-1" }))
	// A client's own x-jwt-* headers must never reach the upstream.
	o := outcomeOf(t, e.check(t, map[string]string{"authorization": "Bearer " + tok, "x-jwt-sub": "admin", "x-jwt-email": "root@evil.test"}))
	if !o.allowed {
		t.Fatalf("denied: %s", o.reason)
	}
	if o.upstream["x-jwt-sub"] != "alice" || o.upstream["x-jwt-iss"] != issA {
		t.Errorf("upstream headers %v", o.upstream)
	}
	if !contains(o.removed, "x-jwt-email") {
		t.Errorf("x-jwt-email (no such claim) must be removed, removed=%v", o.removed)
	}
	for k, want := range map[string]string{"sub": "alice", "iss": issA, "sid": "s-1", "kid": "a-ES256"} {
		if o.metadata[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, o.metadata[k], want)
		}
	}
	// The cached path answers the same.
	o2 := outcomeOf(t, e.checkToken(t, tok))
	if !o2.allowed || o2.upstream["x-jwt-sub"] != "alice" || o2.metadata["kid"] != "a-ES256" {
		t.Errorf("cached answer differs: %+v", o2)
	}
}

func TestTokenFromHeaderAndCookie(t *testing.T) {
	e := newEnv(t, func(c *authz.Config) { c.TokenHeader, c.TokenCookie = "X-Access-Token", "session" })
	tok := sign(t, keys(t).byAlg["ES256"], e.claims(nil))
	for name, h := range map[string]map[string]string{
		"header":             {"x-access-token": tok},
		"header with bearer": {"x-access-token": "Bearer " + tok},
		"cookie":             {"cookie": "theme=dark; session=" + tok + "; lang=en"},
		"authorization":      {"authorization": "Bearer " + tok},
	} {
		t.Run(name, func(t *testing.T) {
			if o := outcomeOf(t, e.check(t, h)); !o.allowed {
				t.Fatalf("denied: %s", o.reason)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

package authz

import (
	"net/http"
	"testing"
)

// TestExtractOneCredential: a request is decided on its one credential; a
// second one anywhere (another header, the cookie, a repeated header, a
// comma-joined value as Envoy merges repeats) makes it ambiguous.
func TestExtractOneCredential(t *testing.T) {
	const tok, other = "eyJa.eyJb.c1", "eyJx.eyJy.z2"
	c := &Checker{header: "x-access-token", cfg: Config{TokenCookie: "session"}}
	plain := &Checker{}
	tests := []struct {
		name   string
		c      *Checker
		h      http.Header // sent both as http.Header and, joined as Envoy does, as MapHeaders
		want   Reason
		wantOK string
	}{
		{"authorization", c, http.Header{"Authorization": {"Bearer " + tok}}, ReasonOK, tok},
		{"lower-case scheme", c, http.Header{"Authorization": {"bearer " + tok}}, ReasonOK, tok},
		{"token header", c, http.Header{"X-Access-Token": {tok}}, ReasonOK, tok},
		{"token header with bearer", c, http.Header{"X-Access-Token": {"Bearer " + tok}}, ReasonOK, tok},
		{"cookie", c, http.Header{"Cookie": {"a=1; session=" + tok + "; b=2"}}, ReasonOK, tok},
		{"nothing", c, http.Header{}, ReasonMissingToken, ""},
		{"basic only", c, http.Header{"Authorization": {"Basic dTpw"}}, ReasonMissingToken, ""},
		{"empty cookie value", c, http.Header{"Cookie": {"session="}}, ReasonMissingToken, ""},
		{"cookie not configured is ignored", plain, http.Header{"Cookie": {"session=" + other}, "Authorization": {"Bearer " + tok}}, ReasonOK, tok},
		{"header not configured is ignored", plain, http.Header{"X-Access-Token": {other}, "Authorization": {"Bearer " + tok}}, ReasonOK, tok},

		{"two authorization headers", c, http.Header{"Authorization": {"Bearer " + tok, "Bearer " + other}}, ReasonMultipleTokens, ""},
		{"the same token twice", c, http.Header{"Authorization": {"Bearer " + tok, "Bearer " + tok}}, ReasonMultipleTokens, ""},
		{"bearer and basic", c, http.Header{"Authorization": {"Bearer " + tok, "Basic dTpw"}}, ReasonMultipleTokens, ""},
		{"comma-joined by a proxy", c, http.Header{"Authorization": {"Bearer " + tok + ",Bearer " + other}}, ReasonMultipleTokens, ""},
		{"comma inside the token", c, http.Header{"Authorization": {"Bearer " + tok + "," + other}}, ReasonMultipleTokens, ""},
		{"cookie and authorization", c, http.Header{"Cookie": {"session=" + tok}, "Authorization": {"Bearer " + other}}, ReasonMultipleTokens, ""},
		{"cookie and basic authorization", c, http.Header{"Cookie": {"session=" + tok}, "Authorization": {"Basic dTpw"}}, ReasonMultipleTokens, ""},
		{"header and authorization", c, http.Header{"X-Access-Token": {tok}, "Authorization": {"Bearer " + other}}, ReasonMultipleTokens, ""},
		{"header and cookie", c, http.Header{"X-Access-Token": {tok}, "Cookie": {"session=" + other}}, ReasonMultipleTokens, ""},
		{"header twice", c, http.Header{"X-Access-Token": {tok, other}}, ReasonMultipleTokens, ""},
		{"cookie twice in one header", c, http.Header{"Cookie": {"session=" + tok + "; session=" + other}}, ReasonMultipleTokens, ""},
		{"cookie in two headers", c, http.Header{"Cookie": {"session=" + tok, "session=" + other}}, ReasonMultipleTokens, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mh := MapHeaders{}
			for k, vs := range tc.h {
				sep := ","
				if k == "Cookie" {
					sep = "; "
				}
				for i, v := range vs {
					if i > 0 {
						mh[lower(k)] += sep
					}
					mh[lower(k)] += v
				}
			}
			for name, h := range map[string]Headers{"http.Header": tc.h, "MapHeaders": mh} {
				got, reason := tc.c.extract(h)
				if reason != tc.want || got != tc.wantOK {
					t.Errorf("%s: extract = %q, %s; want %q, %s", name, got, reason, tc.wantOK, tc.want)
				}
			}
		})
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

package authz

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTokenRecordMatchesChecker pins the one truth about a token's
// identity: the record TokenRecord makes (as `jwtguard revoke --token`
// does) names the token exactly as the checker does, so revoking it denies
// it, whatever odd but valid JSON the payload holds; and a token the
// checker cannot read is refused instead of being named by a guess.
func TestTokenRecordMatchesChecker(t *testing.T) {
	c, ks := benchChecker(t, nil, "ES256")
	k := ks["ES256"]
	now := time.Now().Unix()
	claims := func(extra string) string {
		return `{"iss":"` + benchIssuer + `","aud":"api","sub":"alice","iat":` + itoa(now) + `,"exp":` + itoa(now+600) + extra + `}`
	}
	sign := func(t *testing.T, header, payload string) string {
		t.Helper()
		tok, err := k.SignRaw([]byte(header), []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	header := `{"alg":"ES256","kid":"k-ES256","typ":"JWT"}`
	tests := []struct {
		name    string
		token   func(t *testing.T) string
		wantErr string // "" when TokenRecord must succeed
	}{
		{"jti", func(t *testing.T) string { return sign(t, header, claims(`,"jti":"real"`)) }, ""},
		{"jti and JTI: names are case-sensitive", func(t *testing.T) string { return sign(t, header, claims(`,"jti":"real2","JTI":"fake"`)) }, ""},
		{"JTI only: no jti, named by hash", func(t *testing.T) string { return sign(t, header, claims(`,"JTI":"fake"`)) }, ""},
		{"no jti", func(t *testing.T) string { return sign(t, header, claims(``)) }, ""},
		{"escaped member name", func(t *testing.T) string { return sign(t, header, claims(`,"j\u0074i":"esc"`)) }, ""},
		{"after Bearer", func(t *testing.T) string { return "Bearer " + sign(t, header, claims(`,"jti":"b"`)) }, ""},
		{"after lower-case bearer and spaces", func(t *testing.T) string { return "  bearer  " + sign(t, header, claims(`,"jti":"b2"`)) + "\n" }, ""},
		{"duplicate jti", func(t *testing.T) string { return sign(t, header, claims(`,"jti":"a","jti":"b"`)) }, "duplicate"},
		{"number jti", func(t *testing.T) string { return sign(t, header, claims(`,"jti":7`)) }, "jti"},
		{"padded payload", func(t *testing.T) string {
			tok := sign(t, header, claims(`,"jti":"p"`))
			parts := strings.Split(tok, ".")
			return parts[0] + "." + base64.URLEncoding.EncodeToString(mustDecode(t, parts[1])) + "." + parts[2]
		}, "malformed"},
		{"no exp", func(t *testing.T) string {
			return sign(t, header, `{"iss":"`+benchIssuer+`","jti":"x"}`)
		}, "exp"},
		{"no iss", func(t *testing.T) string {
			return sign(t, header, `{"jti":"x","exp":`+itoa(now+60)+`}`)
		}, "no iss"},
		{"two parts: opaque, names no issuer", func(t *testing.T) string { return "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJpIn0" }, "opaque"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t)
			rec, err := TokenRecord(tok)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := rec.Validate(); err != nil {
				t.Fatal(err)
			}
			bare, ok := bearer(tok)
			if !ok {
				bare = tok
			}
			h := MapHeaders{"authorization": "Bearer " + bare}
			d := c.Check(context.Background(), h)
			if !d.Allowed() {
				t.Fatalf("before revocation: %s (%v)", d.Reason, d.Err)
			}
			if rec.Value != d.Claims.TokenID || rec.Issuer != d.Claims.Issuer {
				t.Fatalf("record names %s/%s, the checker %s/%s", rec.Issuer, rec.Value, d.Claims.Issuer, d.Claims.TokenID)
			}
			if !rec.ExpiresAt.Equal(time.Unix(d.Claims.Expiry, 0)) {
				t.Errorf("record expires %s, token exp %d", rec.ExpiresAt, d.Claims.Expiry)
			}
			c.Revocations().Apply(rec)
			if d := c.Check(context.Background(), h); d.Reason != ReasonRevoked {
				t.Fatalf("after revoking its record: %s, want revoked", d.Reason)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

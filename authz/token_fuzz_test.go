package authz

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseToken checks that parseToken never panics, that every rejection
// carries a reason and an error, and that everything it accepts is a
// canonical compact JWS whose header and claims encoding/json reads the same
// way. The seed corpus is in testdata/fuzz/FuzzParseToken.
func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		fuzzCheckParse(t, raw)
	})
}

// FuzzParseTokenJSON fuzzes the decoded header and payload, which mutations
// of base64url text rarely reach, and also checks that the parser rejects
// as JSON syntax only what encoding/json rejects too.
func FuzzParseTokenJSON(f *testing.F) {
	f.Add(`{"alg":"ES256","typ":"JWT"}`, `{"exp":2000000000,"aud":["a"],"scope":"x"}`)
	f.Add(`{"alg":"ES256","kid":"k\u0031"}`, `{"exp":2e9,"cnf":{ "jkt" : [1, "\" ]"] },"roles":[],"n":-0.5E+2}`)
	f.Add(`{"alg":"none"}`, `{"exp":1,"exp":2}`)
	f.Add(`{"alg":"ES256"}`, `{"exp":1.5,"iat":0,"nbf":1e2,"iss":"\ud83d\ude00","sub":"\u00e9"}`)
	f.Fuzz(func(t *testing.T, header, payload string) {
		raw := parseTestB64(header) + "." + parseTestB64(payload) + ".c2ln"
		_, reason, err := fuzzCheckParse(t, raw)
		if reason != ReasonMalformed || !strings.Contains(err.Error(), "JSON offset") {
			return
		}
		for _, strict := range []string{"duplicate", "surrogate", "nesting"} {
			if strings.Contains(err.Error(), strict) {
				return
			}
		}
		if fuzzIsJSONObject(header) && fuzzIsJSONObject(payload) {
			t.Fatalf("parseToken() rejects JSON that encoding/json accepts: %v", err)
		}
	})
}

func fuzzIsJSONObject(s string) bool {
	return json.Valid([]byte(s)) && strings.TrimLeft(s, " \t\r\n")[0] == '{'
}

// fuzzCheckParse parses raw and checks the properties that hold for every
// input.
func fuzzCheckParse(t *testing.T, raw string) (parsedToken, Reason, error) {
	t.Helper()
	opts := &parseOptions{Extra: []string{"scope", "cnf", "roles", "n", "iss"}}
	tok, reason, err := parseToken(raw, opts)
	if err != nil {
		if reason == ReasonOK || !slices.Contains(Reasons, reason) {
			t.Fatalf("parseToken() error %v with reason %q", err, reason)
		}
		if !reflect.DeepEqual(tok, parsedToken{}) {
			t.Fatalf("parseToken() returned %+v with error %v", tok, err)
		}
		if reason == ReasonTooLarge && len(raw) <= defaultTokenMaxBytes {
			t.Fatalf("%d bytes rejected as too large", len(raw))
		}
		return tok, reason, err
	}
	if reason != ReasonOK {
		t.Fatalf("parseToken() reason %q without an error", reason)
	}
	fuzzCheckAccepted(t, raw, tok, opts)
	return tok, reason, err
}

// fuzzCheckAccepted checks what holds for every token parseToken accepts.
func fuzzCheckAccepted(t *testing.T, raw string, tok parsedToken, opts *parseOptions) {
	t.Helper()
	// The form: three canonical base64url parts, the signing input and
	// the signature taken from them.
	if !strings.HasPrefix(raw, tok.SigningInput) || tok.SigningInput != raw[:strings.LastIndexByte(raw, '.')] {
		t.Fatalf("SigningInput %q is not raw up to its last dot", tok.SigningInput)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("accepted %d parts", len(parts))
	}
	var decoded [3][]byte
	for i, part := range parts {
		var err error
		if decoded[i], err = base64.RawURLEncoding.Strict().DecodeString(part); err != nil {
			t.Fatalf("accepted part %d that encoding/base64 rejects: %v", i, err)
		}
		if again := base64.RawURLEncoding.EncodeToString(decoded[i]); again != part {
			t.Fatalf("accepted part %d %q, not canonical (%q)", i, part, again)
		}
	}
	if !bytes.Equal(tok.Signature, decoded[2]) || len(tok.Signature) == 0 {
		t.Fatalf("Signature = %x, want %x", tok.Signature, decoded[2])
	}

	// The header.
	if tok.Header.Alg == "" || strings.EqualFold(tok.Header.Alg, "none") {
		t.Fatalf("accepted alg %q", tok.Header.Alg)
	}
	header := fuzzJSONObject(t, "header", decoded[0])
	for _, name := range []string{"enc", "crit", "b64"} {
		if _, ok := header[name]; ok {
			t.Fatalf("accepted a header with %q", name)
		}
	}
	fuzzStringMember(t, header, "alg", tok.Header.Alg)
	fuzzStringMember(t, header, "kid", tok.Header.Kid)
	fuzzStringMember(t, header, "typ", tok.Header.Typ)

	// The claims.
	c := tok.Claims
	claims := fuzzJSONObject(t, "payload", decoded[1])
	if c.Exp <= 0 {
		t.Fatalf("accepted exp %d", c.Exp)
	}
	for name, got := range map[string]int64{"exp": c.Exp, "nbf": c.Nbf, "iat": c.Iat} {
		fuzzSecondsMember(t, claims, name, got)
	}
	if _, ok := claims["nbf"]; ok != c.HasNbf {
		t.Fatalf("HasNbf = %v, claims have nbf: %v", c.HasNbf, ok)
	}
	if _, ok := claims["iat"]; ok != c.HasIat {
		t.Fatalf("HasIat = %v, claims have iat: %v", c.HasIat, ok)
	}
	for name, got := range map[string]string{"iss": c.Iss, "sub": c.Sub, "jti": c.Jti, "sid": c.Sid} {
		fuzzStringMember(t, claims, name, got)
	}
	switch aud := claims["aud"].(type) {
	case nil:
		if c.Aud != nil {
			t.Fatalf("Aud = %q without an aud claim", c.Aud)
		}
	case string:
		if !slices.Equal(c.Aud, []string{aud}) {
			t.Fatalf("Aud = %q, want [%q]", c.Aud, aud)
		}
	case []any:
		if len(aud) == 0 || len(aud) != len(c.Aud) {
			t.Fatalf("Aud = %q, want %v", c.Aud, aud)
		}
		for i, a := range aud {
			if a != c.Aud[i] {
				t.Fatalf("Aud = %q, want %v", c.Aud, aud)
			}
		}
	default:
		t.Fatalf("accepted aud %v", aud)
	}
	if len(c.Extra) != len(opts.Extra) {
		t.Fatalf("Extra = %q for %q", c.Extra, opts.Extra)
	}
	for i, name := range opts.Extra {
		fuzzExtraMember(t, claims, name, c.Extra[i])
	}
}

// fuzzJSONObject decodes data as encoding/json does, failing when it
// disagrees with the parser that accepted it.
func fuzzJSONObject(t *testing.T, part string, data []byte) map[string]any {
	t.Helper()
	if !utf8.Valid(data) {
		t.Fatalf("accepted a %s that is not UTF-8: %q", part, data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		t.Fatalf("accepted a %s encoding/json rejects (%v): %q", part, err, data)
	}
	if _, err := dec.Token(); err == nil {
		t.Fatalf("accepted a %s with data after its object: %q", part, data)
	}
	return m
}

func fuzzStringMember(t *testing.T, m map[string]any, name, got string) {
	t.Helper()
	want, ok := m[name]
	if !ok {
		want = ""
	}
	if got != want {
		t.Fatalf("%s = %q, encoding/json reads %#v", name, got, want)
	}
}

func fuzzSecondsMember(t *testing.T, m map[string]any, name string, got int64) {
	t.Helper()
	v, ok := m[name]
	if !ok {
		if got != 0 {
			t.Fatalf("%s = %d without the claim", name, got)
		}
		return
	}
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("accepted %s %#v", name, v)
	}
	if i, err := n.Int64(); err == nil && i != got {
		t.Fatalf("%s = %d, encoding/json reads %s", name, got, n)
	}
	if f, err := n.Float64(); err != nil || f < float64(got) || f >= float64(got)+1 && float64(got)+1 != float64(got) {
		t.Fatalf("%s = %d is not the floor of %s", name, got, n)
	}
}

func fuzzExtraMember(t *testing.T, m map[string]any, name, got string) {
	t.Helper()
	v, ok := m[name]
	switch v := v.(type) {
	case nil:
		want := "null"
		if !ok {
			want = ""
		}
		if got != want {
			t.Fatalf("Extra %s = %q, want %q", name, got, want)
		}
	case string:
		if got != v {
			t.Fatalf("Extra %s = %q, want %q", name, got, v)
		}
	case json.Number, bool:
		var back any
		dec := json.NewDecoder(strings.NewReader(got))
		dec.UseNumber()
		if err := dec.Decode(&back); err != nil || back != v {
			t.Fatalf("Extra %s = %q, want the JSON text of %#v", name, got, v)
		}
	default:
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(got)); err != nil || compact.String() != got {
			t.Fatalf("Extra %s = %q is not compact JSON (%v)", name, got, err)
		}
		var back any
		dec := json.NewDecoder(strings.NewReader(got))
		dec.UseNumber()
		if err := dec.Decode(&back); err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("Extra %s = %q, want the JSON of %#v", name, got, v)
		}
	}
}

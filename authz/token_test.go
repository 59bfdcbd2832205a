package authz

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/jwtguard/jwtguard/authz/internal/strictjson"
)

// parseTestSig is the signature of the tokens built by parseTestToken: 64
// bytes like an ES256 signature, whose base64url form has unused trailing
// bits.
var parseTestSig = bytes.Repeat([]byte{0xa5}, 64)

func parseTestB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// parseTestToken builds a compact JWS from a JSON header and payload.
func parseTestToken(header, payload string) string {
	return parseTestB64(header) + "." + parseTestB64(payload) + "." + base64.RawURLEncoding.EncodeToString(parseTestSig)
}

// parseTestBumpLast adds one to the value of the last base64url character of
// s, which sets an unused trailing bit when s's length is not a multiple of 4.
func parseTestBumpLast(t *testing.T, s string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	if i < 0 || i == len(alphabet)-1 || len(s)%4 == 0 {
		t.Fatalf("cannot bump the last character of %q", s)
	}
	return s[:len(s)-1] + alphabet[i+1:i+2]
}

const (
	parseTestHeader = `{"alg":"ES256"}`
	parseTestExp    = `{"exp":2000000000}`
)

func TestParseToken(t *testing.T) {
	valid := parseTestToken(parseTestHeader, parseTestExp)
	validParts := strings.Split(valid, ".")
	justExp := tokenClaims{Exp: 2000000000}
	withHeader := func(h string) string { return parseTestToken(h, parseTestExp) }
	withClaims := func(c string) string { return parseTestToken(parseTestHeader, c) }
	es256 := tokenHeader{Alg: "ES256"}

	tests := []struct {
		name       string
		raw        string
		opts       *parseOptions
		wantReason Reason
		wantErr    string // a part of the error message
		wantHeader tokenHeader
		wantClaims tokenClaims
	}{
		// Size and shape.
		{name: "valid minimal", raw: valid, wantHeader: es256, wantClaims: justExp},
		{name: "empty", raw: "", wantReason: ReasonMalformed, wantErr: "empty"},
		{name: "longer than MaxBytes", raw: valid, opts: &parseOptions{MaxBytes: len(valid) - 1}, wantReason: ReasonTooLarge, wantErr: "limit"},
		{name: "exactly MaxBytes", raw: valid, opts: &parseOptions{MaxBytes: len(valid)}, wantHeader: es256, wantClaims: justExp},
		{name: "longer than the default limit", raw: withClaims(`{"exp":2000000000,"x":"` + strings.Repeat("a", defaultTokenMaxBytes) + `"}`), wantReason: ReasonTooLarge, wantErr: "8192"},
		{name: "one part", raw: validParts[0], wantReason: ReasonMalformed, wantErr: "1 parts"},
		{name: "two parts", raw: validParts[0] + "." + validParts[1], wantReason: ReasonMalformed, wantErr: "2 parts"},
		{name: "four parts", raw: valid + ".AAAA", wantReason: ReasonMalformed, wantErr: "4 parts"},
		{name: "five parts is JWE", raw: "eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIn0..AAAA.AAAA.AAAA", wantReason: ReasonUnsupported, wantErr: "JWE"},
		{name: "six parts", raw: valid + ".AA.AA.AA", wantReason: ReasonMalformed, wantErr: "6 parts"},
		{name: "trailing dot", raw: valid + ".", wantReason: ReasonMalformed, wantErr: "4 parts"},
		{name: "trailing space", raw: valid + " ", wantReason: ReasonMalformed, wantErr: "not base64url"},
		{name: "trailing newline", raw: valid + "\n", wantReason: ReasonMalformed, wantErr: "not base64url"},
		{name: "leading space", raw: " " + valid, wantReason: ReasonMalformed, wantErr: "byte 0"},
		{name: "CRLF inside payload", raw: validParts[0] + "." + validParts[1][:4] + "\r\n" + validParts[1][4:] + "." + validParts[2], wantReason: ReasonMalformed, wantErr: "not base64url"},
		{name: "tab inside signature", raw: validParts[0] + "." + validParts[1] + "." + validParts[2][:4] + "\t" + validParts[2][4:], wantReason: ReasonMalformed, wantErr: "not base64url"},
		{name: "empty header", raw: "." + validParts[1] + "." + validParts[2], wantReason: ReasonMalformed, wantErr: "header is empty"},
		{name: "empty payload", raw: validParts[0] + ".." + validParts[2], wantReason: ReasonMalformed, wantErr: "payload is empty"},
		{name: "empty signature", raw: validParts[0] + "." + validParts[1] + ".", wantReason: ReasonMalformed, wantErr: "signature is empty"},

		// Canonical base64url.
		{name: "padding", raw: validParts[0] + "." + validParts[1] + "." + validParts[2] + "==", wantReason: ReasonMalformed, wantErr: "'='"},
		{name: "standard alphabet plus", raw: validParts[0] + "." + validParts[1] + "." + "+" + validParts[2][1:], wantReason: ReasonMalformed, wantErr: "'+'"},
		{name: "standard alphabet slash", raw: validParts[0] + "." + validParts[1] + "." + "/" + validParts[2][1:], wantReason: ReasonMalformed, wantErr: "'/'"},
		{name: "length 1 mod 4", raw: validParts[0] + "." + validParts[1] + "." + validParts[2] + "AAA", wantReason: ReasonMalformed, wantErr: "length"},
		{name: "trailing bits in signature", raw: validParts[0] + "." + validParts[1] + "." + parseTestBumpLast(t, validParts[2]), wantReason: ReasonMalformed, wantErr: "signature: base64url has non-zero trailing bits"},
		{name: "trailing bits in payload", raw: validParts[0] + "." + parseTestBumpLast(t, parseTestB64(`{"exp":2000000000 }`)) + "." + validParts[2], wantReason: ReasonMalformed, wantErr: "payload: base64url has non-zero trailing bits"},

		// UTF-8 and JSON form.
		{name: "invalid UTF-8 in header", raw: withHeader(`{"alg":"ES256","x":"` + "\xff" + `"}`), wantReason: ReasonMalformed, wantErr: "header is not valid UTF-8"},
		{name: "invalid UTF-8 in payload", raw: withClaims(`{"exp":2000000000,"sub":"` + "\xc3\x28" + `"}`), wantReason: ReasonMalformed, wantErr: "payload is not valid UTF-8"},
		{name: "header not JSON", raw: withHeader(`alg=ES256`), wantReason: ReasonMalformed, wantErr: "want a JSON object"},
		{name: "header is an array", raw: withHeader(`["ES256"]`), wantReason: ReasonMalformed, wantErr: "want a JSON object"},
		{name: "payload is a string", raw: withClaims(`"exp"`), wantReason: ReasonMalformed, wantErr: "want a JSON object"},
		{name: "payload only whitespace", raw: withClaims(" \n"), wantReason: ReasonMalformed, wantErr: "no JSON object"},
		{name: "two objects in payload", raw: withClaims(parseTestExp + `{}`), wantReason: ReasonMalformed, wantErr: "data after the JSON object"},
		{name: "garbage after header object", raw: withHeader(parseTestHeader + ` x`), wantReason: ReasonMalformed, wantErr: "data after the JSON object"},
		{name: "unterminated payload", raw: withClaims(`{"exp":2000000000`), wantReason: ReasonMalformed, wantErr: "unexpected end"},
		{name: "trailing comma", raw: withClaims(`{"exp":2000000000,}`), wantReason: ReasonMalformed, wantErr: "want a member name"},
		{name: "single quotes", raw: withClaims(`{'exp':2000000000}`), wantReason: ReasonMalformed, wantErr: "want a member name"},
		{name: "leading zero", raw: withClaims(`{"exp":02000000000}`), wantReason: ReasonMalformed, wantErr: "want ',' or '}'"},
		{name: "bare word", raw: withClaims(`{"exp":2000000000,"x":nul}`), wantReason: ReasonMalformed, wantErr: "want null"},
		{name: "control character in string", raw: withClaims(`{"exp":2000000000,"sub":"a` + "\n" + `"}`), wantReason: ReasonMalformed, wantErr: "control character"},
		{name: "invalid escape", raw: withClaims(`{"exp":2000000000,"sub":"\x41"}`), wantReason: ReasonMalformed, wantErr: "invalid escape"},
		{name: "lone high surrogate", raw: withClaims(`{"exp":2000000000,"sub":"\ud800"}`), wantReason: ReasonMalformed, wantErr: "surrogate"},
		{name: "lone low surrogate", raw: withClaims(`{"exp":2000000000,"sub":"\udc00x"}`), wantReason: ReasonMalformed, wantErr: "surrogate"},
		{name: "high surrogate then non-surrogate", raw: withClaims(`{"exp":2000000000,"sub":"\ud800\u0041"}`), wantReason: ReasonMalformed, wantErr: "surrogate"},
		{name: "too deep", raw: withClaims(`{"exp":2000000000,"x":` + strings.Repeat("[", strictjson.MaxDepth) + strings.Repeat("]", strictjson.MaxDepth) + `}`), wantReason: ReasonMalformed, wantErr: "nesting deeper than 64"},
		{name: "deepest allowed", raw: withClaims(`{"exp":2000000000,"x":` + strings.Repeat("[", strictjson.MaxDepth-1) + strings.Repeat("]", strictjson.MaxDepth-1) + `}`), wantHeader: es256, wantClaims: justExp},
		{name: "whitespace and line breaks in JSON", raw: parseTestToken("{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}", "{\r\n\t\"exp\" : 2000000000 \r\n}\n"), wantHeader: tokenHeader{Alg: "HS256", Typ: "JWT"}, wantClaims: justExp},

		// Duplicate member names.
		{name: "duplicate in header", raw: withHeader(`{"alg":"ES256","alg":"none"}`), wantReason: ReasonMalformed, wantErr: `duplicate member name "alg"`},
		{name: "duplicate in payload", raw: withClaims(`{"exp":2000000000,"sub":"a","sub":"b"}`), wantReason: ReasonMalformed, wantErr: `duplicate member name "sub"`},
		{name: "duplicate written with an escape", raw: withClaims(`{"exp":2000000000,"sub":"a","s\u0075b":"b"}`), wantReason: ReasonMalformed, wantErr: `duplicate member name "sub"`},
		{name: "duplicate in a nested object", raw: withClaims(`{"exp":2000000000,"cnf":{"jkt":"a","x":{"k":1,"k":2}}}`), wantReason: ReasonMalformed, wantErr: `duplicate member name "k"`},
		{name: "duplicate in an object inside an array", raw: withClaims(`{"exp":2000000000,"x":[{"k":1},{"k":1,"k":1}]}`), wantReason: ReasonMalformed, wantErr: `duplicate member name "k"`},
		{name: "duplicate among many members", raw: withClaims(parseTestManyMembers(40, "m7")), wantReason: ReasonMalformed, wantErr: `duplicate member name "m7"`},
		{name: "many distinct members", raw: withClaims(parseTestManyMembers(40, "")), wantHeader: es256, wantClaims: justExp},
		{name: "same name at different levels", raw: withClaims(`{"exp":2000000000,"x":{"exp":1,"x":{"exp":2}},"y":{"exp":3}}`), wantHeader: es256, wantClaims: justExp},

		// Header.
		{name: "alg missing", raw: withHeader(`{"typ":"JWT"}`), wantReason: ReasonBadAlgorithm, wantErr: `"alg" is missing`},
		{name: "alg a number", raw: withHeader(`{"alg":256}`), wantReason: ReasonBadAlgorithm, wantErr: `"alg" is a number`},
		{name: "alg null", raw: withHeader(`{"alg":null}`), wantReason: ReasonBadAlgorithm, wantErr: `"alg" is null`},
		{name: "alg empty", raw: withHeader(`{"alg":""}`), wantReason: ReasonBadAlgorithm, wantErr: `"alg" is empty`},
		{name: "alg none", raw: withHeader(`{"alg":"none"}`), wantReason: ReasonBadAlgorithm, wantErr: "unsigned"},
		{name: "alg NONE", raw: withHeader(`{"alg":"NONE"}`), wantReason: ReasonBadAlgorithm, wantErr: "unsigned"},
		{name: "alg nOnE escaped", raw: withHeader(`{"alg":"n\u004fnE"}`), wantReason: ReasonBadAlgorithm, wantErr: "unsigned"},
		{name: "alg kept as written", raw: withHeader(`{"alg":"es256"}`), wantHeader: tokenHeader{Alg: "es256"}, wantClaims: justExp},
		{name: "enc is JWE", raw: withHeader(`{"alg":"dir","enc":"A128GCM"}`), wantReason: ReasonUnsupported, wantErr: `"enc"`},
		{name: "enc wins over alg none", raw: withHeader(`{"alg":"none","enc":"A128GCM"}`), wantReason: ReasonUnsupported, wantErr: `"enc"`},
		{name: "crit", raw: withHeader(`{"alg":"ES256","crit":["exp"],"exp":1}`), wantReason: ReasonUnsupported, wantErr: `"crit"`},
		{name: "crit empty", raw: withHeader(`{"alg":"ES256","crit":[]}`), wantReason: ReasonUnsupported, wantErr: `"crit"`},
		{name: "b64", raw: withHeader(`{"alg":"ES256","b64":false}`), wantReason: ReasonUnsupported, wantErr: `"b64"`},
		{name: "b64 true", raw: withHeader(`{"alg":"ES256","b64":true}`), wantReason: ReasonUnsupported, wantErr: `"b64"`},
		{name: "syntax error wins over unsupported", raw: withHeader(`{"enc":"A128GCM","alg":}`), wantReason: ReasonMalformed, wantErr: "want a value"},
		{name: "typ JWT", raw: withHeader(`{"alg":"ES256","typ":"JWT"}`), wantHeader: tokenHeader{Alg: "ES256", Typ: "JWT"}, wantClaims: justExp},
		{name: "typ jwt lower case", raw: withHeader(`{"alg":"ES256","typ":"jwt"}`), wantHeader: tokenHeader{Alg: "ES256", Typ: "jwt"}, wantClaims: justExp},
		{name: "typ at+jwt", raw: withHeader(`{"alg":"ES256","typ":"at+jwt"}`), wantHeader: tokenHeader{Alg: "ES256", Typ: "at+jwt"}, wantClaims: justExp},
		{name: "typ application/at+JWT", raw: withHeader(`{"alg":"ES256","typ":"Application/at+JWT"}`), wantHeader: tokenHeader{Alg: "ES256", Typ: "Application/at+JWT"}, wantClaims: justExp},
		{name: "typ not accepted", raw: withHeader(`{"alg":"ES256","typ":"dpop+jwt"}`), wantReason: ReasonUnsupported, wantErr: `"typ" "dpop+jwt" is not accepted`},
		{name: "typ bare prefix", raw: withHeader(`{"alg":"ES256","typ":"application/"}`), wantReason: ReasonUnsupported, wantErr: "not accepted"},
		{name: "typ a number", raw: withHeader(`{"alg":"ES256","typ":1}`), wantReason: ReasonUnsupported, wantErr: `"typ" is a number`},
		{name: "typ from options", raw: withHeader(`{"alg":"ES256","typ":"application/secevent+jwt"}`), opts: &parseOptions{Types: []string{"secevent+jwt"}}, wantHeader: tokenHeader{Alg: "ES256", Typ: "application/secevent+jwt"}, wantClaims: justExp},
		{name: "options replace the default types", raw: withHeader(`{"alg":"ES256","typ":"JWT"}`), opts: &parseOptions{Types: []string{"application/at+jwt"}}, wantReason: ReasonUnsupported, wantErr: "not accepted"},
		{name: "long typ is shortened in the error", raw: withHeader(`{"alg":"ES256","typ":"` + strings.Repeat("t", 100) + `"}`), wantReason: ReasonUnsupported, wantErr: strings.Repeat("t", strictjson.MaxSnippet) + `..."`},
		{name: "kid", raw: withHeader(`{"alg":"ES256","kid":"key-1"}`), wantHeader: tokenHeader{Alg: "ES256", Kid: "key-1"}, wantClaims: justExp},
		{name: "kid a number", raw: withHeader(`{"alg":"ES256","kid":1}`), wantReason: ReasonMalformed, wantErr: `"kid" is a number`},
		{name: "key location parameters ignored", raw: withHeader(`{"alg":"RS256","jku":"https://attacker.example/jwks","x5u":"https://attacker.example/x5u","jwk":{"kty":"oct","k":"AA"},"x5c":["AA"]}`), wantHeader: tokenHeader{Alg: "RS256"}, wantClaims: justExp},

		// Registered claims.
		{name: "all claims", raw: withClaims(`{"iss":"https://issuer.example","sub":"user-1","aud":["api","web"],"exp":2000000000,"nbf":1700000000,"iat":1700000001,"jti":"id-1","sid":"s-1","scope":"read"}`), wantHeader: es256,
			wantClaims: tokenClaims{Iss: "https://issuer.example", Sub: "user-1", Aud: []string{"api", "web"}, Exp: 2000000000, Nbf: 1700000000, HasNbf: true, Iat: 1700000001, HasIat: true, Jti: "id-1", Sid: "s-1"}},
		{name: "escaped strings", raw: withClaims(`{"exp":2000000000,"sub":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","iss":"é"}`), wantHeader: es256,
			wantClaims: tokenClaims{Exp: 2000000000, Sub: "café 😀 \"q\" \\ / \b\f\n\r\t", Iss: "é"}},
		{name: "aud a string", raw: withClaims(`{"exp":2000000000,"aud":"api"}`), wantHeader: es256, wantClaims: tokenClaims{Exp: 2000000000, Aud: []string{"api"}}},
		{name: "aud many strings", raw: withClaims(`{"exp":2000000000,"aud":["a","b","c","d","e","f","g","h","i","j"]}`), wantHeader: es256, wantClaims: tokenClaims{Exp: 2000000000, Aud: strings.Split("a,b,c,d,e,f,g,h,i,j", ",")}},
		{name: "aud empty array", raw: withClaims(`{"exp":2000000000,"aud":[]}`), wantReason: ReasonMalformed, wantErr: `"aud" is an empty array`},
		{name: "aud array with a number", raw: withClaims(`{"exp":2000000000,"aud":["api",1]}`), wantReason: ReasonMalformed, wantErr: `"aud" has element 1 that is not a string`},
		{name: "aud nested array", raw: withClaims(`{"exp":2000000000,"aud":[["api"]]}`), wantReason: ReasonMalformed, wantErr: `"aud" has element 0`},
		{name: "aud a number", raw: withClaims(`{"exp":2000000000,"aud":1}`), wantReason: ReasonMalformed, wantErr: `"aud" is a number`},
		{name: "aud null", raw: withClaims(`{"exp":2000000000,"aud":null}`), wantReason: ReasonMalformed, wantErr: `"aud" is null`},
		{name: "exp missing", raw: withClaims(`{"sub":"a"}`), wantReason: ReasonMalformed, wantErr: `"exp" is missing`},
		{name: "exp a date string", raw: withClaims(`{"exp":"2030-01-01"}`), wantReason: ReasonMalformed, wantErr: `"exp" is a string`},
		{name: "exp a numeric string", raw: withClaims(`{"exp":"2000000000"}`), wantReason: ReasonMalformed, wantErr: `"exp" is a string`},
		{name: "exp zero", raw: withClaims(`{"exp":0}`), wantReason: ReasonMalformed, wantErr: `"exp" is 0, want at least 1`},
		{name: "exp below one second", raw: withClaims(`{"exp":0.5}`), wantReason: ReasonMalformed, wantErr: `"exp" is 0`},
		{name: "exp negative", raw: withClaims(`{"exp":-1}`), wantReason: ReasonMalformed, wantErr: `"exp" is -1`},
		{name: "exp null", raw: withClaims(`{"exp":null}`), wantReason: ReasonMalformed, wantErr: `"exp" is null`},
		{name: "exp true", raw: withClaims(`{"exp":true}`), wantReason: ReasonMalformed, wantErr: `"exp" is a boolean`},
		{name: "exp fraction floors", raw: withClaims(`{"exp":2000000000.999}`), wantHeader: es256, wantClaims: justExp},
		{name: "exp exponent", raw: withClaims(`{"exp":2E9}`), wantHeader: es256, wantClaims: justExp},
		{name: "exp max int64", raw: withClaims(`{"exp":9223372036854775807}`), wantHeader: es256, wantClaims: tokenClaims{Exp: 1<<63 - 1}},
		{name: "exp overflows int64", raw: withClaims(`{"exp":9223372036854775808}`), wantReason: ReasonMalformed, wantErr: `"exp" is out of range`},
		{name: "exp 2^63 as a float", raw: withClaims(`{"exp":9.223372036854775808e18}`), wantReason: ReasonMalformed, wantErr: `"exp" is out of range`},
		{name: "exp overflows float64", raw: withClaims(`{"exp":1e400}`), wantReason: ReasonMalformed, wantErr: `"exp" is out of range`},
		{name: "exp underflows float64", raw: withClaims(`{"exp":1e-400}`), wantReason: ReasonMalformed, wantErr: `"exp" is 0`},
		{name: "iat zero", raw: withClaims(`{"exp":2000000000,"iat":0}`), wantHeader: es256, wantClaims: tokenClaims{Exp: 2000000000, HasIat: true}},
		{name: "iat negative", raw: withClaims(`{"exp":2000000000,"iat":-1}`), wantReason: ReasonMalformed, wantErr: `"iat" is -1, want at least 0`},
		{name: "iat negative fraction", raw: withClaims(`{"exp":2000000000,"iat":-0.5}`), wantReason: ReasonMalformed, wantErr: `"iat" is -1`},
		{name: "iat a string", raw: withClaims(`{"exp":2000000000,"iat":"1700000000"}`), wantReason: ReasonMalformed, wantErr: `"iat" is a string`},
		{name: "iat overflows", raw: withClaims(`{"exp":2000000000,"iat":-99999999999999999999}`), wantReason: ReasonMalformed, wantErr: `"iat" is out of range`},
		{name: "nbf fraction", raw: withClaims(`{"exp":2000000000,"nbf":1700000000.5}`), wantHeader: es256, wantClaims: tokenClaims{Exp: 2000000000, Nbf: 1700000000, HasNbf: true}},
		{name: "nbf null", raw: withClaims(`{"exp":2000000000,"nbf":null}`), wantReason: ReasonMalformed, wantErr: `"nbf" is null`},
		{name: "iss a number", raw: withClaims(`{"exp":2000000000,"iss":1}`), wantReason: ReasonMalformed, wantErr: `"iss" is a number`},
		{name: "sub null", raw: withClaims(`{"exp":2000000000,"sub":null}`), wantReason: ReasonMalformed, wantErr: `"sub" is null`},
		{name: "jti an array", raw: withClaims(`{"exp":2000000000,"jti":["a"]}`), wantReason: ReasonMalformed, wantErr: `"jti" is an array`},
		{name: "sid an object", raw: withClaims(`{"exp":2000000000,"sid":{}}`), wantReason: ReasonMalformed, wantErr: `"sid" is an object`},
		{name: "other claims any JSON", raw: withClaims(`{"exp":2000000000,"a":null,"b":[1,"x",{"c":[true,false]}],"d":-1.5e-3,"e":{}}`), wantHeader: es256, wantClaims: justExp},

		// Extra claims.
		{name: "extra claims rendered", raw: withClaims(`{"exp":2000000000,"scope":"read write","n":1.50,"b":false,"z":null,"roles":[ "a" , "b b" ],"cnf":{ "jkt" : "x y" , "n": [1, 2] },"esc":"\u0041\n"}`),
			opts:       &parseOptions{Extra: []string{"scope", "n", "b", "z", "roles", "cnf", "esc", "absent", "exp", "scope"}},
			wantHeader: es256,
			wantClaims: tokenClaims{Exp: 2000000000, Extra: []string{"read write", "1.50", "false", "null", `["a","b b"]`, `{"jkt":"x y","n":[1,2]}`, "A\n", "", "2000000000", "read write"}}},
		{name: "extra compacts escapes as written", raw: withClaims(`{"exp":2000000000,"x":[ "\" ]", "\\" ]}`), opts: &parseOptions{Extra: []string{"x"}}, wantHeader: es256,
			wantClaims: tokenClaims{Exp: 2000000000, Extra: []string{`["\" ]","\\"]`}}},
		{name: "extra all absent", raw: valid, opts: &parseOptions{Extra: []string{"a", "b"}}, wantHeader: es256, wantClaims: tokenClaims{Exp: 2000000000, Extra: []string{"", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantReason == "" {
				tt.wantReason = ReasonOK
			}
			got, reason, err := parseToken(tt.raw, tt.opts)
			if reason != tt.wantReason {
				t.Fatalf("parseToken() reason = %q (err %v), want %q", reason, err, tt.wantReason)
			}
			if tt.wantReason != ReasonOK {
				if err == nil {
					t.Fatal("parseToken() error = nil with a deny reason")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseToken() error = %q, want it to mention %q", err, tt.wantErr)
				}
				if len(tt.raw) > 20 && strings.Contains(err.Error(), tt.raw) {
					t.Errorf("parseToken() error quotes the token: %q", err)
				}
				if !reflect.DeepEqual(got, parsedToken{}) {
					t.Errorf("parseToken() returned %+v with an error, want the zero value", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseToken() error = %v with reason ok", err)
			}
			if got.Header != tt.wantHeader {
				t.Errorf("Header = %+v, want %+v", got.Header, tt.wantHeader)
			}
			if !reflect.DeepEqual(got.Claims, tt.wantClaims) {
				t.Errorf("Claims = %+v, want %+v", got.Claims, tt.wantClaims)
			}
			if want := tt.raw[:strings.LastIndexByte(tt.raw, '.')]; got.SigningInput != want {
				t.Errorf("SigningInput = %q, want %q", got.SigningInput, want)
			}
			if !bytes.Equal(got.Signature, parseTestSig) {
				t.Errorf("Signature = %x, want %x", got.Signature, parseTestSig)
			}
		})
	}
}

// parseTestManyMembers returns claims with exp and n more members m0..m(n-1),
// then a repeat of dup when it is not empty.
func parseTestManyMembers(n int, dup string) string {
	var b strings.Builder
	b.WriteString(`{"exp":2000000000`)
	for i := range n {
		b.WriteString(`,"m` + strconv.Itoa(i) + `":1`)
	}
	if dup != "" {
		b.WriteString(`,"` + dup + `":2`)
	}
	b.WriteString("}")
	return b.String()
}

func TestParseTokenNilOptions(t *testing.T) {
	raw := parseTestToken(`{"alg":"ES256","typ":"at+jwt"}`, parseTestExp)
	if _, reason, err := parseToken(raw, nil); reason != ReasonOK || err != nil {
		t.Fatalf("parseToken(nil options) = %q, %v; want the defaults to accept at+jwt", reason, err)
	}
	long := parseTestToken(parseTestHeader, `{"exp":2000000000,"x":"`+strings.Repeat("a", defaultTokenMaxBytes)+`"}`)
	if _, reason, _ := parseToken(long, nil); reason != ReasonTooLarge {
		t.Fatalf("parseToken(nil options, %d bytes) reason = %q, want %q", len(long), reason, ReasonTooLarge)
	}
}

// parseTestKeys are real signing keys of the algorithms jwtguard expects most.
type parseTestKey struct {
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
}

func parseTestKeys(tb testing.TB) []parseTestKey {
	tb.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return []parseTestKey{{jwa.ES256, ec}, {jwa.RS256, rs}, {jwa.EdDSA, ed}}
}

// parseTestAccessToken signs a typical access token with jwx.
func parseTestAccessToken(tb testing.TB, k parseTestKey) string {
	tb.Helper()
	tok, err := jwt.NewBuilder().
		Issuer("https://login.example.com/realms/main").
		Subject("9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d").
		Audience([]string{"orders-api"}).
		Expiration(time.Unix(2000000000, 0)).
		IssuedAt(time.Unix(1700000000, 0)).
		NotBefore(time.Unix(1700000000, 0)).
		JwtID("1f0e2c9a-7c3b-4c5e-9a51-1b8f0b9d2e77").
		Claim("sid", "a3f1c2d4-5e6f").
		Claim("scope", "orders:read orders:write").
		Claim("client_id", "web-frontend").
		Build()
	if err != nil {
		tb.Fatal(err)
	}
	hdr := jws.NewHeaders()
	for name, v := range map[string]any{jws.KeyIDKey: "key-2024-01", jws.TypeKey: "at+jwt"} {
		if err := hdr.Set(name, v); err != nil {
			tb.Fatal(err)
		}
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(signed)
}

// TestParseTokenVerifiesWithJWX checks that what parseToken extracts from a
// token jwx signed is what jwx verifies, for each common algorithm.
func TestParseTokenVerifiesWithJWX(t *testing.T) {
	for _, k := range parseTestKeys(t) {
		t.Run(k.alg.String(), func(t *testing.T) {
			raw := parseTestAccessToken(t, k)
			tok, reason, err := parseToken(raw, &parseOptions{Extra: []string{"scope", "client_id"}})
			if err != nil {
				t.Fatalf("parseToken(%s token) = %q, %v", k.alg, reason, err)
			}
			wantHeader := tokenHeader{Alg: k.alg.String(), Kid: "key-2024-01", Typ: "at+jwt"}
			if tok.Header != wantHeader {
				t.Errorf("Header = %+v, want %+v", tok.Header, wantHeader)
			}
			wantClaims := tokenClaims{
				Iss: "https://login.example.com/realms/main", Sub: "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
				Jti: "1f0e2c9a-7c3b-4c5e-9a51-1b8f0b9d2e77", Sid: "a3f1c2d4-5e6f", Aud: []string{"orders-api"},
				Exp: 2000000000, Nbf: 1700000000, HasNbf: true, Iat: 1700000000, HasIat: true,
				Extra: []string{"orders:read orders:write", "web-frontend"},
			}
			if !reflect.DeepEqual(tok.Claims, wantClaims) {
				t.Errorf("Claims = %+v, want %+v", tok.Claims, wantClaims)
			}
			verifier, err := jws.NewVerifier(k.alg)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifier.Verify([]byte(tok.SigningInput), tok.Signature, k.priv.Public()); err != nil {
				t.Errorf("jwx rejects the parsed signing input and signature: %v", err)
			}
			tampered := bytes.Clone(tok.Signature)
			tampered[len(tampered)/2] ^= 1
			if err := verifier.Verify([]byte(tok.SigningInput), tampered, k.priv.Public()); err == nil {
				t.Error("jwx accepts a tampered signature: the verification above proves nothing")
			}
		})
	}
}

func TestParseTokenAllocs(t *testing.T) {
	k := parseTestKeys(t)[0]
	raw := parseTestAccessToken(t, k)
	// The decoded text, the signature and aud; Extra adds one slice.
	const want = 3
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := parseToken(raw, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > want {
		t.Errorf("parseToken of a typical access token: %.0f allocations, want at most %d", allocs, want)
	}
}

// BenchmarkParseToken parses a typical ES256 access token (about 550 bytes).
func BenchmarkParseToken(b *testing.B) {
	raw := parseTestAccessToken(b, parseTestKeys(b)[0])
	opts := &parseOptions{}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := parseToken(raw, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAndVerify compares jwx's signature verification alone with
// parsing plus verification, per algorithm: the parser's share of the work
// on a token that misses the verified-token cache.
func BenchmarkParseAndVerify(b *testing.B) {
	for _, k := range parseTestKeys(b) {
		raw := parseTestAccessToken(b, k)
		verifier, err := jws.NewVerifier(k.alg)
		if err != nil {
			b.Fatal(err)
		}
		pub := k.priv.Public()
		tok, _, err := parseToken(raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(k.alg.String()+"/verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := verifier.Verify([]byte(tok.SigningInput), tok.Signature, pub); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(k.alg.String()+"/parse+verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tok, _, err := parseToken(raw, nil)
				if err != nil {
					b.Fatal(err)
				}
				if err := verifier.Verify([]byte(tok.SigningInput), tok.Signature, pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseTokenWorstCase parses tokens of the largest accepted size
// built to make the parser work hardest; their cost bounds what an
// unauthenticated client can make a node spend per request.
func BenchmarkParseTokenWorstCase(b *testing.B) {
	// fill repeats member (with %d replaced by a counter) to just under
	// the default size limit.
	fill := func(member string) string {
		var p strings.Builder
		p.WriteString(`{"exp":2000000000`)
		for i := 0; ; i++ {
			m := "," + strings.ReplaceAll(member, "%d", strconv.Itoa(i))
			if len(parseTestToken(parseTestHeader, p.String()+m+"}")) > defaultTokenMaxBytes {
				break
			}
			p.WriteString(m)
		}
		p.WriteString("}")
		return parseTestToken(parseTestHeader, p.String())
	}
	cases := []struct{ name, raw string }{
		{"many members", fill(`"%d":0`)},
		{"many escaped names", fill(`"\u0061%d":0`)},
		{"many escaped strings", fill(`"s%d":"\n"`)},
		{"deep nesting", fill(`"d%d":` + strings.Repeat("[", strictjson.MaxDepth-1) + strings.Repeat("]", strictjson.MaxDepth-1))},
		{"many nested objects", fill(`"o%d":{"a":{"b":1}}`)},
	}
	for _, c := range cases {
		if _, reason, err := parseToken(c.raw, nil); err != nil {
			b.Fatalf("%s: parseToken() = %q, %v", c.name, reason, err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := parseToken(c.raw, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

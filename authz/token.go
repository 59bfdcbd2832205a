package authz

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jwtguard/jwtguard/authz/internal/strictjson"
)

// This file holds the strict parser of a JWS in compact serialization
// (RFC 7515 section 7.1). It is stricter than jwx's own parsing on purpose:
// every token that reaches signature verification has exactly one canonical
// encoding, one JSON object per part with no duplicate member names, no
// header the verifier would have to understand (crit, b64, JWE), and the
// registered claims in the types RFC 7519 gives them. Signatures are checked
// by the caller with jwx over parsedToken.SigningInput. The parts are
// decoded by base64url.go and scanned by package strictjson.

// defaultTokenMaxBytes is the token length limit used when
// parseOptions.MaxBytes is not set.
const defaultTokenMaxBytes = 8192

// defaultTokenTypes are the accepted "typ" header values when
// parseOptions.Types is empty: a plain JWT and an OAuth 2.0 access token
// (RFC 9068).
var defaultTokenTypes = []string{"JWT", "at+jwt"}

// parseOptions tunes parseToken. The zero value applies the defaults.
type parseOptions struct {
	// MaxBytes is the longest token accepted; 0 means defaultTokenMaxBytes.
	MaxBytes int
	// Types are the accepted "typ" header values when the header has one,
	// compared case-insensitively, with or without the "application/"
	// prefix (RFC 7515 section 4.1.9). Empty means defaultTokenTypes.
	Types []string
	// AnyType accepts every string "typ": for TokenRecord, which names a
	// token whatever the server's accepted types.
	AnyType bool
	// Extra names claims whose values parseToken renders into
	// tokenClaims.Extra, in this order.
	Extra []string
	// ExpOptional accepts a claims set without "exp": for Security Event
	// Tokens (RFC 8417), which need none (see event.go).
	ExpOptional bool
	// Visit, when set, is called with every claim, after the registered
	// ones are checked: for event.go, which reads claims of its own.
	Visit func(name string, v strictjson.Value) error
}

// tokenHeader is the part of a JOSE header the checker uses.
type tokenHeader struct {
	Alg, Kid, Typ string
}

// tokenClaims are the claims the checker uses. Its strings may share memory
// with the decoded header and payload: clone what is kept for long.
type tokenClaims struct {
	Iss, Sub, Jti, Sid string
	// Aud is the "aud" claim: one element for a string, the elements of an
	// array of strings.
	Aud []string
	// Exp, Nbf and Iat are in seconds since the epoch, the floor of the
	// claim's JSON number. Exp is always set; HasNbf and HasIat say whether
	// the token carries the other two.
	Exp, Nbf, Iat  int64
	HasNbf, HasIat bool
	// Extra holds the values of the claims named in parseOptions.Extra, in
	// that order: a string as is, a number, boolean or null as its JSON
	// text, an array or object as compact JSON, and "" when absent.
	Extra []string
}

// parsedToken is a syntactically valid JWS whose signature is not verified
// yet.
type parsedToken struct {
	Header tokenHeader
	Claims tokenClaims
	// SigningInput is "header.payload" as it appears in the token (a
	// substring of it): the input the signature covers, and what a token
	// without a jti is revoked by.
	SigningInput string
	// Signature is the decoded signature.
	Signature []byte
}

// parseToken parses raw, a JWS in compact serialization, and checks its form,
// header and registered claims (not their values against time or
// configuration, and not the signature). On failure it returns the reason to
// deny with and an error saying what is wrong and where, which never quotes
// the token. It never panics. opts may be nil.
func parseToken(raw string, opts *parseOptions) (parsedToken, Reason, error) {
	if opts == nil {
		opts = &parseOptions{}
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = defaultTokenMaxBytes
	}
	switch {
	case raw == "":
		return parsedToken{}, ReasonMalformed, errors.New("token is empty")
	case len(raw) > maxBytes:
		return parsedToken{}, ReasonTooLarge, fmt.Errorf("token is %d bytes, more than the limit of %d", len(raw), maxBytes)
	}

	dots := strings.Count(raw, ".")
	if dots != 2 {
		// Anything outside the base64url alphabet makes a malformed token,
		// whatever its number of parts.
		if err := checkBase64URLAlphabet(raw); err != nil {
			return parsedToken{}, ReasonMalformed, err
		}
		if dots == 4 {
			return parsedToken{}, ReasonUnsupported, errors.New("token has 5 parts: JWE is not supported")
		}
		return parsedToken{}, ReasonMalformed, fmt.Errorf("token has %d parts, want 3 (header.payload.signature)", dots+1)
	}
	dot1 := strings.IndexByte(raw, '.')
	dot2 := dot1 + 1 + strings.IndexByte(raw[dot1+1:], '.')
	header, payload, sig := raw[:dot1], raw[dot1+1:dot2], raw[dot2+1:]
	for _, part := range [...]struct{ name, text string }{{"header", header}, {"payload", payload}, {"signature", sig}} {
		if part.text == "" {
			return parsedToken{}, ReasonMalformed, fmt.Errorf("token %s is empty", part.name)
		}
	}

	// Header and payload are decoded into one buffer (on the stack for
	// typical tokens) and copied into one string that the parsed values
	// share.
	var stack [1024]byte
	buf := stack[:0]
	if n := decodedLen(header) + decodedLen(payload); n > len(stack) {
		buf = make([]byte, 0, n)
	}
	buf, err := appendBase64URL(buf, header)
	if err != nil {
		return parsedToken{}, ReasonMalformed, base64URLError(raw, "header", err)
	}
	headerLen := len(buf)
	buf, err = appendBase64URL(buf, payload)
	if err != nil {
		return parsedToken{}, ReasonMalformed, base64URLError(raw, "payload", err)
	}
	signature, err := appendBase64URL(make([]byte, 0, decodedLen(sig)), sig)
	if err != nil {
		return parsedToken{}, ReasonMalformed, base64URLError(raw, "signature", err)
	}
	// encoding/json would replace invalid UTF-8 silently; check it first.
	if !utf8.Valid(buf[:headerLen]) {
		return parsedToken{}, ReasonMalformed, errors.New("token header is not valid UTF-8")
	}
	if !utf8.Valid(buf[headerLen:]) {
		return parsedToken{}, ReasonMalformed, errors.New("token payload is not valid UTF-8")
	}
	text := string(buf)

	tok := parsedToken{SigningInput: raw[:dot2], Signature: signature}
	var reason Reason
	if tok.Header, reason, err = parseTokenHeader(text[:headerLen], opts); err != nil {
		return parsedToken{}, reason, fmt.Errorf("token header: %w", err)
	}
	if tok.Claims, err = parseTokenClaims(text[headerLen:], opts); err != nil {
		return parsedToken{}, ReasonMalformed, fmt.Errorf("token payload: %w", err)
	}
	return tok, ReasonOK, nil
}

// parseTokenHeader checks a decoded JOSE header. Syntax errors win over
// unsupported parameters, which win over the algorithm, then "typ", then
// "kid": the reason does not depend on member order.
func parseTokenHeader(text string, opts *parseOptions) (tokenHeader, Reason, error) {
	var (
		alg, typ, kid          strictjson.Value
		hasAlg, hasTyp, hasKid bool
		unsupported            string
	)
	err := strictjson.ScanObject(text, func(name string, v strictjson.Value) error {
		switch name {
		case "alg":
			alg, hasAlg = v, true
		case "typ":
			typ, hasTyp = v, true
		case "kid":
			kid, hasKid = v, true
		case "enc", "crit", "b64":
			if unsupported == "" {
				unsupported = name
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return tokenHeader{}, ReasonMalformed, err
	case unsupported == "enc":
		return tokenHeader{}, ReasonUnsupported, errors.New(`"enc" is present: JWE is not supported`)
	case unsupported != "":
		return tokenHeader{}, ReasonUnsupported, fmt.Errorf("%q is present: no header extension is supported", unsupported)
	case !hasAlg:
		return tokenHeader{}, ReasonBadAlgorithm, errors.New(`"alg" is missing`)
	case alg.Kind != strictjson.String:
		return tokenHeader{}, ReasonBadAlgorithm, fmt.Errorf(`"alg" is %s, want a string`, alg.Kind)
	case alg.Str == "":
		return tokenHeader{}, ReasonBadAlgorithm, errors.New(`"alg" is empty`)
	case strings.EqualFold(alg.Str, "none"):
		return tokenHeader{}, ReasonBadAlgorithm, fmt.Errorf(`"alg" is %q: unsigned tokens are not accepted`, alg.Str)
	case hasTyp && typ.Kind != strictjson.String:
		return tokenHeader{}, ReasonUnsupported, fmt.Errorf(`"typ" is %s, want a string`, typ.Kind)
	case hasTyp && !opts.AnyType && !typeAccepted(typ.Str, opts.Types):
		return tokenHeader{}, ReasonUnsupported, fmt.Errorf(`"typ" %q is not accepted`, strictjson.Snippet(typ.Str))
	case hasKid && kid.Kind != strictjson.String:
		return tokenHeader{}, ReasonMalformed, fmt.Errorf(`"kid" is %s, want a string`, kid.Kind)
	}
	return tokenHeader{Alg: alg.Str, Kid: kid.Str, Typ: typ.Str}, ReasonOK, nil
}

// typeAccepted reports whether typ is one of types (defaultTokenTypes when
// empty), ignoring case and an "application/" prefix on either side.
func typeAccepted(typ string, types []string) bool {
	if len(types) == 0 {
		types = defaultTokenTypes
	}
	typ = trimMediaTypePrefix(typ)
	for _, t := range types {
		if strings.EqualFold(typ, trimMediaTypePrefix(t)) {
			return true
		}
	}
	return false
}

func trimMediaTypePrefix(typ string) string {
	const prefix = "application/"
	if len(typ) > len(prefix) && strings.EqualFold(typ[:len(prefix)], prefix) {
		return typ[len(prefix):]
	}
	return typ
}

// parseTokenClaims checks a decoded JWT claims set and extracts the claims the
// checker uses.
func parseTokenClaims(text string, opts *parseOptions) (tokenClaims, error) {
	var c tokenClaims
	if len(opts.Extra) > 0 {
		c.Extra = make([]string, len(opts.Extra))
	}
	hasExp := false
	err := strictjson.ScanObject(text, func(name string, v strictjson.Value) error {
		var err error
		switch name {
		case "exp":
			c.Exp, err = secondsClaim(v, 1)
			hasExp = true
		case "nbf":
			c.Nbf, err = secondsClaim(v, 0)
			c.HasNbf = true
		case "iat":
			c.Iat, err = secondsClaim(v, 0)
			c.HasIat = true
		case "iss":
			c.Iss, err = stringClaim(v)
		case "sub":
			c.Sub, err = stringClaim(v)
		case "jti":
			c.Jti, err = stringClaim(v)
		case "sid":
			c.Sid, err = stringClaim(v)
		case "aud":
			c.Aud, err = audienceClaim(v)
		}
		if err != nil {
			return fmt.Errorf("%q %w", name, err)
		}
		for i, extra := range opts.Extra {
			if extra == name {
				c.Extra[i] = v.Render()
			}
		}
		if opts.Visit != nil {
			return opts.Visit(name, v)
		}
		return nil
	})
	if err != nil {
		return tokenClaims{}, err
	}
	if !hasExp && !opts.ExpOptional {
		return tokenClaims{}, errors.New(`"exp" is missing`)
	}
	return c, nil
}

// secondsClaim converts a NumericDate (RFC 7519 section 2) to whole seconds,
// rounding down; the result must be at least min.
func secondsClaim(v strictjson.Value, min int64) (int64, error) {
	if v.Kind != strictjson.Number {
		return 0, fmt.Errorf("is %s, want a number", v.Kind)
	}
	var n int64
	if strings.ContainsAny(v.Raw, ".eE") {
		f, err := strconv.ParseFloat(v.Raw, 64)
		f = math.Floor(f)
		// float64(math.MaxInt64) rounds up to 2^63, which does not fit.
		if err != nil || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, errors.New("is out of range")
		}
		n = int64(f)
	} else {
		var err error
		if n, err = strconv.ParseInt(v.Raw, 10, 64); err != nil {
			return 0, errors.New("is out of range")
		}
	}
	if n < min {
		return 0, fmt.Errorf("is %d, want at least %d", n, min)
	}
	return n, nil
}

func stringClaim(v strictjson.Value) (string, error) {
	if v.Kind != strictjson.String {
		return "", fmt.Errorf("is %s, want a string", v.Kind)
	}
	return v.Str, nil
}

// audienceClaim accepts a string or a non-empty array of strings.
func audienceClaim(v strictjson.Value) ([]string, error) {
	switch v.Kind {
	case strictjson.String:
		return []string{v.Str}, nil
	case strictjson.Array:
		aud, err := strictjson.StringArray(v.Raw)
		if err != nil {
			return nil, err
		}
		if len(aud) == 0 {
			return nil, errors.New("is an empty array")
		}
		return aud, nil
	}
	return nil, fmt.Errorf("is %s, want a string or an array of strings", v.Kind)
}

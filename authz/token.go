package authz

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the strict parser of a JWS in compact serialization
// (RFC 7515 section 7.1). It is stricter than jwx's own parsing on purpose:
// every token that reaches signature verification has exactly one canonical
// encoding, one JSON object per part with no duplicate member names, no
// header the verifier would have to understand (crit, b64, JWE), and the
// registered claims in the types RFC 7519 gives them. Signatures are checked
// by the caller with jwx over parsedToken.SigningInput.

// defaultTokenMaxBytes is the token length limit used when
// parseOptions.MaxBytes is not set.
const defaultTokenMaxBytes = 8192

// defaultTokenTypes are the accepted "typ" header values when
// parseOptions.Types is empty: a plain JWT and an OAuth 2.0 access token
// (RFC 9068).
var defaultTokenTypes = []string{"JWT", "at+jwt"}

// maxJSONDepth bounds the nesting of arrays and objects in a header or
// payload; real tokens nest two or three levels.
const maxJSONDepth = 64

// maxErrorSnippet bounds how much of a token-controlled value an error quotes.
const maxErrorSnippet = 32

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
		alg, typ, kid          jsonValue
		hasAlg, hasTyp, hasKid bool
		unsupported            string
	)
	err := scanJSONObject(text, func(name string, v jsonValue) error {
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
	case alg.kind != jsonString:
		return tokenHeader{}, ReasonBadAlgorithm, fmt.Errorf(`"alg" is %s, want a string`, alg.kind)
	case alg.str == "":
		return tokenHeader{}, ReasonBadAlgorithm, errors.New(`"alg" is empty`)
	case strings.EqualFold(alg.str, "none"):
		return tokenHeader{}, ReasonBadAlgorithm, fmt.Errorf(`"alg" is %q: unsigned tokens are not accepted`, alg.str)
	case hasTyp && typ.kind != jsonString:
		return tokenHeader{}, ReasonUnsupported, fmt.Errorf(`"typ" is %s, want a string`, typ.kind)
	case hasTyp && !opts.AnyType && !typeAccepted(typ.str, opts.Types):
		return tokenHeader{}, ReasonUnsupported, fmt.Errorf(`"typ" %q is not accepted`, snippet(typ.str))
	case hasKid && kid.kind != jsonString:
		return tokenHeader{}, ReasonMalformed, fmt.Errorf(`"kid" is %s, want a string`, kid.kind)
	}
	return tokenHeader{Alg: alg.str, Kid: kid.str, Typ: typ.str}, ReasonOK, nil
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
	err := scanJSONObject(text, func(name string, v jsonValue) error {
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
				c.Extra[i] = v.render()
			}
		}
		return nil
	})
	if err != nil {
		return tokenClaims{}, err
	}
	if !hasExp {
		return tokenClaims{}, errors.New(`"exp" is missing`)
	}
	return c, nil
}

// secondsClaim converts a NumericDate (RFC 7519 section 2) to whole seconds,
// rounding down; the result must be at least min.
func secondsClaim(v jsonValue, min int64) (int64, error) {
	if v.kind != jsonNumber {
		return 0, fmt.Errorf("is %s, want a number", v.kind)
	}
	var n int64
	if strings.ContainsAny(v.raw, ".eE") {
		f, err := strconv.ParseFloat(v.raw, 64)
		f = math.Floor(f)
		// float64(math.MaxInt64) rounds up to 2^63, which does not fit.
		if err != nil || f < math.MinInt64 || f >= math.MaxInt64 {
			return 0, errors.New("is out of range")
		}
		n = int64(f)
	} else {
		var err error
		if n, err = strconv.ParseInt(v.raw, 10, 64); err != nil {
			return 0, errors.New("is out of range")
		}
	}
	if n < min {
		return 0, fmt.Errorf("is %d, want at least %d", n, min)
	}
	return n, nil
}

func stringClaim(v jsonValue) (string, error) {
	if v.kind != jsonString {
		return "", fmt.Errorf("is %s, want a string", v.kind)
	}
	return v.str, nil
}

// audienceClaim accepts a string or a non-empty array of strings.
func audienceClaim(v jsonValue) ([]string, error) {
	switch v.kind {
	case jsonString:
		return []string{v.str}, nil
	case jsonArray:
		aud, err := stringArray(v.raw)
		if err != nil {
			return nil, err
		}
		if len(aud) == 0 {
			return nil, errors.New("is an empty array")
		}
		return aud, nil
	}
	return nil, fmt.Errorf("is %s, want a string or an array of strings", v.kind)
}

// snippet shortens a token-controlled string for an error message.
func snippet(s string) string {
	if len(s) <= maxErrorSnippet {
		return s
	}
	s = s[:maxErrorSnippet]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

// Base64url (RFC 4648 section 5) without padding, canonical only.

const invalidBase64 = 0xff

var base64URLValue = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range t {
		t[i] = invalidBase64
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// checkBase64URLAlphabet reports the first byte of a token that is neither
// in the base64url alphabet nor a dot: padding, whitespace, line breaks
// (which Go's base64 decoder would skip) or the standard alphabet's '+' and
// '/'.
func checkBase64URLAlphabet(raw string) error {
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c != '.' && base64URLValue[c] == invalidBase64 {
			return fmt.Errorf("token: byte %d is %q, not base64url", i, c)
		}
	}
	return nil
}

// base64URLError explains why a part of raw did not decode, naming the
// first byte outside the alphabet if there is one.
func base64URLError(raw, part string, err error) error {
	if err := checkBase64URLAlphabet(raw); err != nil {
		return err
	}
	return fmt.Errorf("token %s: %w", part, err)
}

// decodedLen is the decoded length of a valid unpadded base64url string.
func decodedLen(s string) int { return len(s) * 6 / 8 }

// appendBase64URL appends the decoding of s to dst. It rejects characters
// outside the URL alphabet, padding, a length that leaves 6 dangling bits
// and non-zero unused trailing bits, so that every byte string has exactly
// one accepted encoding.
func appendBase64URL(dst []byte, s string) ([]byte, error) {
	if len(s)%4 == 1 {
		return dst, fmt.Errorf("base64url length %d is impossible", len(s))
	}
	var acc byte // OR of all values: invalidBase64 has bits no valid value has
	for len(s) >= 4 {
		a, b, c, d := base64URLValue[s[0]], base64URLValue[s[1]], base64URLValue[s[2]], base64URLValue[s[3]]
		acc |= a | b | c | d
		dst = append(dst, a<<2|b>>4, b<<4|c>>2, c<<6|d)
		s = s[4:]
	}
	switch len(s) {
	case 2:
		a, b := base64URLValue[s[0]], base64URLValue[s[1]]
		acc |= a | b
		if b&0x0f != 0 && acc&0xc0 == 0 {
			return dst, errors.New("base64url has non-zero trailing bits")
		}
		dst = append(dst, a<<2|b>>4)
	case 3:
		a, b, c := base64URLValue[s[0]], base64URLValue[s[1]], base64URLValue[s[2]]
		acc |= a | b | c
		if c&0x03 != 0 && acc&0xc0 == 0 {
			return dst, errors.New("base64url has non-zero trailing bits")
		}
		dst = append(dst, a<<2|b>>4, b<<4|c>>2)
	}
	if acc&0xc0 != 0 {
		return dst, errors.New("invalid base64url character")
	}
	return dst, nil
}

// A strict, allocation-light JSON scanner for headers and payloads: RFC 8259
// syntax, no duplicate member names at any depth (compared after unescaping),
// no lone UTF-16 surrogates in escapes, nesting bounded by maxJSONDepth. The
// caller has checked that the text is valid UTF-8.

// jsonKind is the type of a JSON value, named after its first byte.
type jsonKind byte

const (
	jsonString jsonKind = '"'
	jsonNumber jsonKind = '0'
	jsonTrue   jsonKind = 't'
	jsonFalse  jsonKind = 'f'
	jsonNull   jsonKind = 'n'
	jsonArray  jsonKind = '['
	jsonObject jsonKind = '{'
)

func (k jsonKind) String() string {
	switch k {
	case jsonString:
		return "a string"
	case jsonNumber:
		return "a number"
	case jsonTrue, jsonFalse:
		return "a boolean"
	case jsonNull:
		return "null"
	case jsonArray:
		return "an array"
	case jsonObject:
		return "an object"
	}
	return "invalid"
}

// jsonValue is one scanned value.
type jsonValue struct {
	kind jsonKind
	raw  string // its JSON text, a substring of the document
	str  string // for a string, its unescaped value
}

// render returns v as tokenClaims.Extra holds it.
func (v jsonValue) render() string {
	switch v.kind {
	case jsonString:
		return v.str
	case jsonArray, jsonObject:
		return compactJSON(v.raw)
	}
	return v.raw
}

// jsonScanner reads one JSON document.
type jsonScanner struct {
	s string
	i int
}

// maxLinearNames is how many names an object compares one by one before it
// indexes them in a map, so a payload of many members costs linear time.
const maxLinearNames = 16

// scanJSONObject checks that text is exactly one JSON object, optionally
// surrounded by whitespace, and calls visit for each of its top-level members
// in order. It stops at the first error, syntax or visit's.
func scanJSONObject(text string, visit func(name string, v jsonValue) error) error {
	sc := jsonScanner{s: text}
	sc.skipSpace()
	if sc.peek() != '{' {
		if sc.i == len(sc.s) {
			return errors.New("no JSON object")
		}
		return sc.errorf("want a JSON object")
	}
	if err := sc.object(1, visit); err != nil {
		return err
	}
	sc.skipSpace()
	if sc.i != len(sc.s) {
		return sc.errorf("data after the JSON object")
	}
	return nil
}

func (sc *jsonScanner) peek() byte {
	if sc.i < len(sc.s) {
		return sc.s[sc.i]
	}
	return 0
}

func (sc *jsonScanner) skipSpace() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// errorf reports a syntax error at the current offset, naming the byte found.
func (sc *jsonScanner) errorf(want string) error {
	if sc.i >= len(sc.s) {
		return fmt.Errorf("JSON offset %d: unexpected end: %s", sc.i, want)
	}
	return fmt.Errorf("JSON offset %d: unexpected %q: %s", sc.i, sc.s[sc.i], want)
}

// object scans the object at sc.i, at nesting level depth.
func (sc *jsonScanner) object(depth int, visit func(string, jsonValue) error) error {
	if depth > maxJSONDepth {
		return sc.errorf(fmt.Sprintf("nesting deeper than %d", maxJSONDepth))
	}
	sc.i++ // '{'
	var (
		names [maxLinearNames]string // the first member names, compared one by one
		count int
		index map[string]struct{} // all names, once there are more
	)
	sc.skipSpace()
	if sc.peek() == '}' {
		sc.i++
		return nil
	}
	for {
		sc.skipSpace()
		if sc.peek() != '"' {
			return sc.errorf("want a member name")
		}
		at := sc.i
		name, err := sc.string()
		if err != nil {
			return err
		}
		dup := false
		switch {
		case count < maxLinearNames:
			for _, seen := range names[:count] {
				dup = dup || seen == name
			}
			names[count] = name
		case index == nil:
			index = make(map[string]struct{}, 2*maxLinearNames)
			for _, seen := range names {
				index[seen] = struct{}{}
			}
			fallthrough
		default:
			_, dup = index[name]
			index[name] = struct{}{}
		}
		if dup {
			return fmt.Errorf("JSON offset %d: duplicate member name %q", at, snippet(name))
		}
		count++
		sc.skipSpace()
		if sc.peek() != ':' {
			return sc.errorf("want ':' after a member name")
		}
		sc.i++
		sc.skipSpace()
		v, err := sc.value(depth)
		if err != nil {
			return err
		}
		// The separator is checked before visit sees the value, so that
		// "exp":0x1 is reported as the syntax error it is.
		sc.skipSpace()
		end := sc.peek()
		if end != ',' && end != '}' {
			return sc.errorf("want ',' or '}' after an object member")
		}
		if visit != nil {
			if err := visit(name, v); err != nil {
				return err
			}
		}
		sc.i++
		if end == '}' {
			return nil
		}
	}
}

// array scans the array at sc.i, at nesting level depth.
func (sc *jsonScanner) array(depth int) error {
	if depth > maxJSONDepth {
		return sc.errorf(fmt.Sprintf("nesting deeper than %d", maxJSONDepth))
	}
	sc.i++ // '['
	sc.skipSpace()
	if sc.peek() == ']' {
		sc.i++
		return nil
	}
	for {
		sc.skipSpace()
		if _, err := sc.value(depth); err != nil {
			return err
		}
		sc.skipSpace()
		switch sc.peek() {
		case ',':
			sc.i++
		case ']':
			sc.i++
			return nil
		default:
			return sc.errorf("want ',' or ']' after an array element")
		}
	}
}

// value scans the value at sc.i, inside a container at nesting level depth.
func (sc *jsonScanner) value(depth int) (jsonValue, error) {
	start := sc.i
	var v jsonValue
	switch c := sc.peek(); {
	case c == '"':
		str, err := sc.string()
		if err != nil {
			return v, err
		}
		v.kind, v.str = jsonString, str
	case c == '{':
		if err := sc.object(depth+1, nil); err != nil {
			return v, err
		}
		v.kind = jsonObject
	case c == '[':
		if err := sc.array(depth + 1); err != nil {
			return v, err
		}
		v.kind = jsonArray
	case c == '-' || '0' <= c && c <= '9':
		if err := sc.number(); err != nil {
			return v, err
		}
		v.kind = jsonNumber
	case c == 't':
		if err := sc.literal("true"); err != nil {
			return v, err
		}
		v.kind = jsonTrue
	case c == 'f':
		if err := sc.literal("false"); err != nil {
			return v, err
		}
		v.kind = jsonFalse
	case c == 'n':
		if err := sc.literal("null"); err != nil {
			return v, err
		}
		v.kind = jsonNull
	default:
		return v, sc.errorf("want a value")
	}
	v.raw = sc.s[start:sc.i]
	return v, nil
}

func (sc *jsonScanner) literal(word string) error {
	if !strings.HasPrefix(sc.s[sc.i:], word) {
		return sc.errorf("want " + word)
	}
	sc.i += len(word)
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (sc *jsonScanner) number() error {
	if sc.peek() == '-' {
		sc.i++
	}
	switch c := sc.peek(); {
	case c == '0':
		sc.i++
	case '1' <= c && c <= '9':
		sc.digits()
	default:
		return sc.errorf("want a digit")
	}
	if sc.peek() == '.' {
		sc.i++
		if !sc.digits() {
			return sc.errorf("want a digit after '.'")
		}
	}
	if c := sc.peek(); c == 'e' || c == 'E' {
		sc.i++
		if c := sc.peek(); c == '+' || c == '-' {
			sc.i++
		}
		if !sc.digits() {
			return sc.errorf("want a digit in the exponent")
		}
	}
	return nil
}

// digits skips [0-9]* and reports whether there was one.
func (sc *jsonScanner) digits() bool {
	start := sc.i
	for sc.i < len(sc.s) && '0' <= sc.s[sc.i] && sc.s[sc.i] <= '9' {
		sc.i++
	}
	return sc.i > start
}

// string scans the string at sc.i and returns its unescaped value, a
// substring of the document when it has no escapes.
func (sc *jsonScanner) string() (string, error) {
	sc.i++ // '"'
	start := sc.i
	for sc.i < len(sc.s) {
		switch c := sc.s[sc.i]; {
		case c == '"':
			sc.i++
			return sc.s[start : sc.i-1], nil
		case c == '\\':
			return sc.escapedString(start)
		case c < 0x20:
			return "", sc.errorf("control character in a string")
		}
		sc.i++
	}
	return "", sc.errorf("unterminated string")
}

// escapedString finishes a string that started at start and has an escape
// at sc.i.
func (sc *jsonScanner) escapedString(start int) (string, error) {
	buf := make([]byte, 0, 2*(sc.i-start)+16)
	buf = append(buf, sc.s[start:sc.i]...)
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '"':
			sc.i++
			return string(buf), nil
		case c < 0x20:
			return "", sc.errorf("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			sc.i++
			continue
		}
		sc.i++ // '\\'
		var r rune
		switch sc.peek() {
		case '"', '\\', '/':
			r = rune(sc.s[sc.i])
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			var ok bool
			if r, ok = sc.hex4(); !ok {
				return "", sc.errorf("want 4 hex digits after \\u")
			}
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || !strings.HasPrefix(sc.s[sc.i+1:], `\u`) {
					return "", sc.errorf("lone UTF-16 surrogate")
				}
				sc.i += 2
				low, ok := sc.hex4()
				if !ok || low < 0xdc00 || low > 0xdfff {
					return "", sc.errorf("lone UTF-16 surrogate")
				}
				r = utf16.DecodeRune(r, low)
			}
		default:
			return "", sc.errorf("invalid escape")
		}
		sc.i++
		buf = utf8.AppendRune(buf, r)
	}
	return "", sc.errorf("unterminated string")
}

// hex4 reads the 4 hex digits after the 'u' at sc.i, leaving sc.i on the
// last one.
func (sc *jsonScanner) hex4() (rune, bool) {
	if len(sc.s)-sc.i < 5 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(sc.s[sc.i+1 : sc.i+5]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	sc.i += 4
	return r, true
}

// stringArray returns the elements of raw, a valid JSON array, when all are
// strings.
func stringArray(raw string) ([]string, error) {
	var tmp [8]string
	elems := tmp[:0]
	sc := jsonScanner{s: raw, i: 1}
	sc.skipSpace()
	if sc.peek() == ']' {
		return nil, nil
	}
	for {
		sc.skipSpace()
		if sc.peek() != '"' {
			return nil, fmt.Errorf("has element %d that is not a string", len(elems))
		}
		str, err := sc.string()
		if err != nil {
			return nil, err
		}
		elems = append(elems, str)
		sc.skipSpace()
		if sc.peek() != ',' {
			break
		}
		sc.i++
	}
	return append([]string(nil), elems...), nil
}

// compactJSON returns raw, valid JSON, without whitespace outside strings.
func compactJSON(raw string) string {
	if !strings.ContainsAny(raw, " \t\n\r") {
		return raw
	}
	buf := make([]byte, 0, len(raw))
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inString && c == '\\':
			buf = append(buf, c, raw[i+1])
			i++
			continue
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			continue
		}
		buf = append(buf, c)
	}
	return string(buf)
}

// Package strictjson scans JSON strictly, for the header and payload of a
// token: RFC 8259 syntax, no duplicate member names at any depth (compared
// after unescaping), no lone UTF-16 surrogates in escapes, nesting bounded by
// MaxDepth. It allocates only for strings with escapes and for objects of
// many members, and never panics. The caller checks that the text is valid
// UTF-8.
package strictjson

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of arrays and objects in a document; real
// tokens nest two or three levels.
const MaxDepth = 64

// MaxSnippet bounds how much of a document-controlled string an error quotes.
const MaxSnippet = 32

// Kind is the type of a JSON value, named after its first byte.
type Kind byte

// The kinds of value.
const (
	String Kind = '"'
	Number Kind = '0'
	True   Kind = 't'
	False  Kind = 'f'
	Null   Kind = 'n'
	Array  Kind = '['
	Object Kind = '{'
)

// String names k for an error message: "a string", "an array" and so on.
func (k Kind) String() string {
	switch k {
	case String:
		return "a string"
	case Number:
		return "a number"
	case True, False:
		return "a boolean"
	case Null:
		return "null"
	case Array:
		return "an array"
	case Object:
		return "an object"
	}
	return "invalid"
}

// Value is one scanned value.
type Value struct {
	Kind Kind
	Raw  string // its JSON text, a substring of the document
	Str  string // for a String, its unescaped value
}

// Render returns a string as its unescaped value, an array or object as
// compact JSON (no whitespace outside strings), and a number, boolean or
// null as its JSON text.
func (v Value) Render() string {
	switch v.Kind {
	case String:
		return v.Str
	case Array, Object:
		return compact(v.Raw)
	}
	return v.Raw
}

// scanner reads one JSON document.
type scanner struct {
	s string
	i int
}

// maxLinearNames is how many names an object compares one by one before it
// indexes them in a map, so a payload of many members costs linear time.
const maxLinearNames = 16

// ScanObject checks that text is exactly one JSON object, optionally
// surrounded by whitespace, and calls visit for each of its top-level members
// in order. It stops at the first error, syntax or visit's.
func ScanObject(text string, visit func(name string, v Value) error) error {
	sc := scanner{s: text}
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

func (sc *scanner) peek() byte {
	if sc.i < len(sc.s) {
		return sc.s[sc.i]
	}
	return 0
}

func (sc *scanner) skipSpace() {
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
func (sc *scanner) errorf(want string) error {
	if sc.i >= len(sc.s) {
		return fmt.Errorf("JSON offset %d: unexpected end: %s", sc.i, want)
	}
	return fmt.Errorf("JSON offset %d: unexpected %q: %s", sc.i, sc.s[sc.i], want)
}

// object scans the object at sc.i, at nesting level depth.
func (sc *scanner) object(depth int, visit func(string, Value) error) error {
	if depth > MaxDepth {
		return sc.errorf(fmt.Sprintf("nesting deeper than %d", MaxDepth))
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
			return fmt.Errorf("JSON offset %d: duplicate member name %q", at, Snippet(name))
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
func (sc *scanner) array(depth int) error {
	if depth > MaxDepth {
		return sc.errorf(fmt.Sprintf("nesting deeper than %d", MaxDepth))
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
func (sc *scanner) value(depth int) (Value, error) {
	start := sc.i
	var v Value
	switch c := sc.peek(); {
	case c == '"':
		str, err := sc.string()
		if err != nil {
			return v, err
		}
		v.Kind, v.Str = String, str
	case c == '{':
		if err := sc.object(depth+1, nil); err != nil {
			return v, err
		}
		v.Kind = Object
	case c == '[':
		if err := sc.array(depth + 1); err != nil {
			return v, err
		}
		v.Kind = Array
	case c == '-' || '0' <= c && c <= '9':
		if err := sc.number(); err != nil {
			return v, err
		}
		v.Kind = Number
	case c == 't':
		if err := sc.literal("true"); err != nil {
			return v, err
		}
		v.Kind = True
	case c == 'f':
		if err := sc.literal("false"); err != nil {
			return v, err
		}
		v.Kind = False
	case c == 'n':
		if err := sc.literal("null"); err != nil {
			return v, err
		}
		v.Kind = Null
	default:
		return v, sc.errorf("want a value")
	}
	v.Raw = sc.s[start:sc.i]
	return v, nil
}

func (sc *scanner) literal(word string) error {
	if !strings.HasPrefix(sc.s[sc.i:], word) {
		return sc.errorf("want " + word)
	}
	sc.i += len(word)
	return nil
}

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func (sc *scanner) number() error {
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
func (sc *scanner) digits() bool {
	start := sc.i
	for sc.i < len(sc.s) && '0' <= sc.s[sc.i] && sc.s[sc.i] <= '9' {
		sc.i++
	}
	return sc.i > start
}

// string scans the string at sc.i and returns its unescaped value, a
// substring of the document when it has no escapes.
func (sc *scanner) string() (string, error) {
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
func (sc *scanner) escapedString(start int) (string, error) {
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
func (sc *scanner) hex4() (rune, bool) {
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

// StringArray returns the elements of raw, the Raw of an Array that
// ScanObject accepted, when all are strings.
func StringArray(raw string) ([]string, error) {
	var tmp [8]string
	elems := tmp[:0]
	sc := scanner{s: raw, i: 1}
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

// compact returns raw, valid JSON, without whitespace outside strings.
func compact(raw string) string {
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

// Snippet shortens s, a string taken from a document, for an error message:
// at most MaxSnippet bytes, cut at a rune boundary, then "...".
func Snippet(s string) string {
	if len(s) <= MaxSnippet {
		return s
	}
	s = s[:MaxSnippet]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}

package admin

import (
	"github.com/jwtguard/jwtguard/authz"
)

// plainFields are the JSON names, as written in the field tags, of the
// string fields of authz.Record that decodePlainLine fills (see setPlain).
var plainFields = [...]string{"kind", "issuer", "value", "reason", "actor", "id", "lifts"}

// setPlain sets the field of r named plainFields[f] to v.
func setPlain(r *authz.Record, f int, v string) {
	switch plainFields[f] {
	case "kind":
		r.Kind = authz.Kind(v)
	case "issuer":
		r.Issuer = v
	case "value":
		r.Value = v
	case "reason":
		r.Reason = v
	case "actor":
		r.Actor = v
	case "id":
		r.ID = v
	case "lifts":
		r.Lifts = v
	}
}

// maxPlainMembers bounds the members decodePlainLine takes; a line with
// more goes the general way.
const maxPlainMembers = 8

// decodePlainLine decodes line, valid UTF-8 (see CheckJSONText), when it
// has the plain form a bulk file has: one object whose members are all
// strings, each named exactly as in plainFields, without escapes or control
// characters, with JSON whitespace between tokens and nothing after the
// object. That is the record encoding/json gives for it, at a fraction of
// the cost (json.Unmarshal was a tenth of a bulk import's CPU), with one
// allocation. ok is false for any other line: DecodeRecordLine then takes
// the general way, whose answer it is (FuzzDecodeImportLine holds the two
// equal).
func decodePlainLine(line []byte) (rec authz.Record, ok bool) {
	type member struct{ field, lo, hi int }
	var (
		members [maxPlainMembers]member
		n       int
	)
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return rec, false
	}
	i = skipSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		i++
	} else {
		for {
			if n == maxPlainMembers {
				return rec, false
			}
			lo, hi, next, ok := plainString(line, i)
			if !ok {
				return rec, false
			}
			field := plainField(line[lo:hi])
			if field < 0 {
				return rec, false
			}
			i = skipSpace(line, next)
			if i >= len(line) || line[i] != ':' {
				return rec, false
			}
			if lo, hi, next, ok = plainString(line, skipSpace(line, i+1)); !ok {
				return rec, false
			}
			members[n] = member{field, lo, hi}
			n++
			i = skipSpace(line, next)
			if i >= len(line) {
				return rec, false
			}
			if line[i] == '}' {
				i++
				break
			}
			if line[i] != ',' {
				return rec, false
			}
			i = skipSpace(line, i+1)
		}
	}
	if skipSpace(line, i) != len(line) {
		return rec, false
	}
	s := string(line) // one allocation: the values are slices of it
	for _, m := range members[:n] {
		setPlain(&rec, m.field, s[m.lo:m.hi])
	}
	return rec, true
}

// plainString returns the bounds of the contents of the JSON string
// starting at line[i] and the index after it, when it holds no escape and
// no control character.
func plainString(line []byte, i int) (lo, hi, next int, ok bool) {
	if i >= len(line) || line[i] != '"' {
		return 0, 0, 0, false
	}
	for j := i + 1; j < len(line); j++ {
		switch c := line[j]; {
		case c == '"':
			return i + 1, j, j + 1, true
		case c == '\\' || c < 0x20:
			return 0, 0, 0, false
		}
	}
	return 0, 0, 0, false
}

// plainField is the index in plainFields of name, or -1.
func plainField(name []byte) int {
	for f := range plainFields {
		if string(name) == plainFields[f] {
			return f
		}
	}
	return -1
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(line []byte, i int) int {
	for i < len(line) {
		switch line[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

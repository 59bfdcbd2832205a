package redis

import (
	"strconv"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// parseBatch decodes a batch entry payload written as encodeBatch writes
// it (json.Marshal of a batchEntry without outliers: keys in field order,
// no spaces, strings without escapes or bytes outside printable ASCII),
// without reflection: a follower decodes one entry per revocation, and
// encoding/json spent most of that decoding on finding its way. ok is false
// for any other text, which the caller decodes with encoding/json (or
// refuses): parseBatch never accepts what encoding/json would read
// differently (FuzzParseBatch).
func parseBatch(data string) (e batchEntry, ok bool) {
	p := parser{s: data}
	ok = p.lit(`{"v":`) && p.int(&e.V) &&
		p.lit(`,"c":`) && p.record(&e.C) &&
		p.lit(`,"i":`) && p.strings(&e.I) &&
		p.lit(`,"k":`) && p.strings(&e.K) &&
		(!p.lit(`,"u":`) || p.int64(&e.U)) &&
		p.lit(`,"x":`) && p.int64s(&e.X) &&
		p.lit(`}`) && p.i == len(p.s)
	return e, ok
}

// parser reads the JSON subset parseBatch takes, from s at i.
type parser struct {
	s string
	i int
}

// lit consumes l when s continues with it.
func (p *parser) lit(l string) bool {
	if len(p.s)-p.i < len(l) || p.s[p.i:p.i+len(l)] != l {
		return false
	}
	p.i += len(l)
	return true
}

// str reads a string without escapes, control characters or bytes above
// ASCII (whose decoding has rules of its own: those take encoding/json).
func (p *parser) str() (string, bool) {
	if !p.lit(`"`) {
		return "", false
	}
	for j := p.i; j < len(p.s); j++ {
		switch c := p.s[j]; {
		case c == '"':
			v := p.s[p.i:j]
			p.i = j + 1
			return v, true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

// number returns the text of an integer: an optional minus, then digits
// without a leading zero; a fraction or exponent is not taken.
func (p *parser) number() (string, bool) {
	j := p.i
	if j < len(p.s) && p.s[j] == '-' {
		j++
	}
	d := j
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		j++
	}
	if j == d || p.s[d] == '0' && j-d > 1 {
		return "", false
	}
	if j < len(p.s) && (p.s[j] == '.' || p.s[j] == 'e' || p.s[j] == 'E') {
		return "", false
	}
	n := p.s[p.i:j]
	p.i = j
	return n, true
}

func (p *parser) int64(v *int64) bool {
	n, ok := p.number()
	if !ok {
		return false
	}
	x, err := strconv.ParseInt(n, 10, 64)
	*v = x
	return err == nil
}

func (p *parser) int(v *int) bool {
	var x int64
	ok := p.int64(&x) && x == int64(int(x))
	*v = int(x)
	return ok
}

func (p *parser) uint64(v *uint64) bool {
	n, ok := p.number()
	if !ok {
		return false
	}
	x, err := strconv.ParseUint(n, 10, 64)
	*v = x
	return err == nil
}

// list reads a JSON array, calling item for each element.
func (p *parser) list(item func() bool) bool {
	if !p.lit("[") {
		return false
	}
	if p.lit("]") {
		return true
	}
	for {
		if !item() {
			return false
		}
		if p.lit("]") {
			return true
		}
		if !p.lit(",") {
			return false
		}
	}
}

func (p *parser) strings(v *[]string) bool {
	*v = []string{}
	return p.list(func() bool {
		s, ok := p.str()
		*v = append(*v, s)
		return ok
	})
}

func (p *parser) int64s(v *[]int64) bool {
	*v = []int64{}
	return p.list(func() bool {
		var x int64
		ok := p.int64(&x)
		*v = append(*v, x)
		return ok
	})
}

// time reads a time as encoding/json does (time.Time's UnmarshalJSON).
func (p *parser) time(t *time.Time) bool {
	start := p.i
	if _, ok := p.str(); !ok {
		return false
	}
	return t.UnmarshalJSON([]byte(p.s[start:p.i])) == nil
}

// recordFields are authz.Record's JSON keys in field order, as
// json.Marshal writes them.
var recordFields = []string{`"id":`, `"kind":`, `"issuer":`, `"value":`, `"before":`, `"max_age_seconds":`,
	`"reason":`, `"actor":`, `"created_at":`, `"expires_at":`, `"position":`, `"lifts":`}

// record reads an authz.Record object whose keys come in field order, each
// at most once.
func (p *parser) record(r *authz.Record) bool {
	if !p.lit("{") {
		return false
	}
	if p.lit("}") {
		return true
	}
	next := 0 // the first field the next key may name
	for {
		f := next
		for f < len(recordFields) && !p.lit(recordFields[f]) {
			f++
		}
		if f == len(recordFields) {
			return false
		}
		next = f + 1
		var ok bool
		switch f {
		case 0:
			r.ID, ok = p.str()
		case 1:
			var k string
			k, ok = p.str()
			r.Kind = authz.Kind(k)
		case 2:
			r.Issuer, ok = p.str()
		case 3:
			r.Value, ok = p.str()
		case 4:
			ok = p.time(&r.Before)
		case 5:
			ok = p.int64(&r.MaxAgeSeconds)
		case 6:
			r.Reason, ok = p.str()
		case 7:
			r.Actor, ok = p.str()
		case 8:
			ok = p.time(&r.CreatedAt)
		case 9:
			ok = p.time(&r.ExpiresAt)
		case 10:
			ok = p.uint64(&r.Position)
		case 11:
			r.Lifts, ok = p.str()
		}
		if !ok {
			return false
		}
		if p.lit("}") {
			return true
		}
		if !p.lit(",") {
			return false
		}
	}
}

package embedded

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// idLen is the length of a record ID: 128 random bits in hex.
const idLen = 32

// entryLen is the length of one index entry: a record ID and its expiry.
const entryLen = idLen + 8

// Bucket names and meta keys.
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	bucketFeed    = []byte("feedpacks")
	bucketIndex   = []byte("index")
	bucketExpiry  = []byte("expirypacks")
	bucketLifts   = []byte("lifts")

	// The buckets of schema 2 that schema 3 packs (see upgradeV2).
	bucketFeedV2   = []byte("feed")
	bucketExpiryV2 = []byte("expiry")

	keyVersion = []byte("version")
	// countPrefix prefixes the meta key holding the record count of a kind.
	countPrefix = "count/"
)

// schemaVersion is the layout of the buckets above; Open refuses others,
// except schemaV2 (one feed and one expiry entry a record) and schemaV1
// (schema 2 before lifts), which it upgrades, and schemaUpgrading.
const (
	schemaVersion = "3"
	schemaV2      = "2"
	schemaV1      = "1"
	// schemaUpgrading is the version of a schema 2 file while its upgrade
	// (see upgradeV2) is under way, so that a schema 2 release, which
	// opens "1" and "2" only, refuses it: it would serve a feed and an
	// expiry index missing what was moved into packs, and take positions
	// that the moved packs hold.
	schemaUpgrading = "2-to-3"
)

var (
	minUnixNano = time.Unix(0, math.MinInt64)
	maxUnixNano = time.Unix(0, math.MaxInt64)
)

// timeKey encodes t as 8 bytes whose byte order is time order. Times outside
// what int64 nanoseconds hold (years 1678 to 2262) are clamped, which keeps
// the order: a record expiring after 2262 never expires in practice.
func timeKey(t time.Time) uint64 {
	var n int64
	switch {
	case t.Before(minUnixNano):
		n = math.MinInt64
	case t.After(maxUnixNano):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return uint64(n) ^ (1 << 63)
}

func putUint64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// posKey is the feed key of a position.
func posKey(pos uint64) []byte { return putUint64(pos) }

// appendEntry appends an entry to dst: a record ID and a number, its
// expiry (index and expiry entries) or its position (feed entries).
func appendEntry[S string | []byte](dst []byte, id S, n uint64) []byte {
	dst = append(dst, id...)
	return binary.BigEndian.AppendUint64(dst, n)
}

// entries iterates over the entries of an index value or of a pack (see
// pack.go) until fn returns false.
func entries(v []byte, fn func(id []byte, n uint64) bool) error {
	if len(v)%entryLen != 0 {
		return fmt.Errorf("%w: entries of %d bytes, not a multiple of %d", ErrCorrupt, len(v), entryLen)
	}
	for i := 0; i < len(v); i += entryLen {
		if !fn(v[i:i+idLen], binary.BigEndian.Uint64(v[i+idLen:i+entryLen])) {
			break
		}
	}
	return nil
}

// removeEntry returns v without the entry of id; v is not modified.
func removeEntry(v []byte, id string) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i+entryLen <= len(v); i += entryLen {
		if string(v[i:i+idLen]) != id {
			out = append(out, v[i:i+entryLen]...)
		}
	}
	return out
}

// cursorPrefix marks List cursors of this package, so that a cursor of
// another source (or of nothing) is refused rather than misread.
const cursorPrefix = "emb1."

// encodeCursor returns the List cursor resuming after position pos.
func encodeCursor(pos uint64) string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(putUint64(pos))
}

// decodeCursor returns the position a List cursor resumes after.
func decodeCursor(c string) (uint64, error) {
	if len(c) <= len(cursorPrefix) || c[:len(cursorPrefix)] != cursorPrefix {
		return 0, fmt.Errorf("%w: %q", ErrInvalidCursor, c)
	}
	b, err := base64.RawURLEncoding.DecodeString(c[len(cursorPrefix):])
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("%w: %q", ErrInvalidCursor, c)
	}
	return binary.BigEndian.Uint64(b), nil
}

// encodeRecord is json.Marshal(r), byte for byte, without reflection for a
// record whose strings are plain (see plainJSON), as every record of a
// bulk import is: encoding was a tenth of an import's CPU. Any other goes
// to json.Marshal.
func encodeRecord(r *authz.Record) ([]byte, error) {
	return encodeRecordWith(r, nil, nil)
}

// timeTexts keeps the JSON text of the times encodeRecordWith wrote last:
// the records of one batch mostly share their created_at and expires_at.
type timeTexts struct {
	times [2]time.Time
	texts [2][]byte
	next  int
}

// text returns the JSON text of t (between quotes), from the cache when
// t is identical (same instant, clock reading and location: the same
// text) to one of the times kept.
func (c *timeTexts) text(t time.Time) ([]byte, error) {
	for i := range c.times {
		if c.texts[i] != nil && c.times[i] == t {
			return c.texts[i], nil
		}
	}
	b, err := t.AppendText([]byte{'"'})
	if err != nil {
		return nil, err
	}
	b = append(b, '"')
	c.times[c.next], c.texts[c.next] = t, b
	c.next = (c.next + 1) % len(c.times)
	return b, nil
}

// encodeRecordWith is encodeRecord, taking the text of times from cache
// and its bytes from mem (nil: none).
func encodeRecordWith(r *authz.Record, cache *timeTexts, mem *arena) ([]byte, error) {
	if !plainJSON(r.ID) || !plainJSON(string(r.Kind)) || !plainJSON(r.Issuer) || !plainJSON(r.Value) ||
		!plainJSON(r.Reason) || !plainJSON(r.Actor) || !plainJSON(r.Lifts) {
		return json.Marshal(r)
	}
	// Room for the position too, which a store adds (see withPosition).
	size := 192 + len(r.ID) + len(r.Issuer) + len(r.Value) + len(r.Reason) + len(r.Actor) + len(r.Lifts)
	var b []byte
	if mem != nil {
		b = mem.alloc(size)[:0]
	} else {
		b = make([]byte, 0, size)
	}
	name := func(n string) {
		if len(b) > 0 {
			b = append(b, ',')
		} else {
			b = append(b, '{')
		}
		b = append(b, '"')
		b = append(b, n...)
		b = append(b, '"', ':')
	}
	str := func(n, v string) {
		name(n)
		b = append(b, '"')
		b = append(b, v...)
		b = append(b, '"')
	}
	opt := func(n, v string) {
		if v != "" {
			str(n, v)
		}
	}
	tm := func(n string, t time.Time) bool {
		if t.IsZero() {
			return true
		}
		if cache != nil {
			text, err := cache.text(t)
			if err != nil {
				return false
			}
			name(n)
			b = append(b, text...)
			return true
		}
		name(n)
		b = append(b, '"')
		var err error
		if b, err = t.AppendText(b); err != nil { // MarshalJSON's text, without its allocation
			return false
		}
		b = append(b, '"')
		return true
	}
	opt("id", r.ID)
	str("kind", string(r.Kind))
	opt("issuer", r.Issuer)
	opt("value", r.Value)
	if !tm("before", r.Before) {
		return json.Marshal(r) // its error
	}
	if r.MaxAgeSeconds != 0 {
		name("max_age_seconds")
		b = strconv.AppendInt(b, r.MaxAgeSeconds, 10)
	}
	opt("reason", r.Reason)
	opt("actor", r.Actor)
	if !tm("created_at", r.CreatedAt) || !tm("expires_at", r.ExpiresAt) {
		return json.Marshal(r)
	}
	if r.Position != 0 {
		name("position")
		b = strconv.AppendUint(b, r.Position, 10)
	}
	opt("lifts", r.Lifts)
	return append(b, '}'), nil
}

// plainJSON reports whether json.Marshal writes s between quotes as it is:
// printable ASCII, none of the bytes it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

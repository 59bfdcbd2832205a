package embedded

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// idLen is the length of a record ID: 128 random bits in hex.
const idLen = 32

// entryLen is the length of one index entry: a record ID and its expiry.
const entryLen = idLen + 8

// Bucket names and meta keys.
var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	bucketFeed    = []byte("feed")
	bucketIndex   = []byte("index")
	bucketExpiry  = []byte("expiry")
	bucketLifts   = []byte("lifts")

	keyVersion = []byte("version")
	// countPrefix prefixes the meta key holding the record count of a kind.
	countPrefix = "count/"
)

// schemaVersion is the layout of the buckets above; Open refuses others,
// except schemaV1 (before lifts), which it upgrades.
const (
	schemaVersion = "2"
	schemaV1      = "1"
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

// expiryKey is the expiry bucket key of a record.
func expiryKey(expires uint64, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, expires)
	return append(k, id...)
}

// appendEntry appends the index entry of a record to dst.
func appendEntry(dst []byte, id string, expires uint64) []byte {
	dst = append(dst, id...)
	return binary.BigEndian.AppendUint64(dst, expires)
}

// entries iterates over the entries of an index value.
func entries(v []byte, fn func(id []byte, expires uint64) bool) error {
	if len(v)%entryLen != 0 {
		return fmt.Errorf("%w: index value of %d bytes is not a multiple of %d", ErrCorrupt, len(v), entryLen)
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

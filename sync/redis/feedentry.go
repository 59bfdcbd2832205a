package redis

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
)

// feedChunk is the most records one feed entry of a Put holds: a Put of
// MaxBatch writes MaxBatch/feedChunk entries, and a Feed of
// DefaultFeedLimit reads two.
const feedChunk = 500

// batchVersion is the format of a batch feed entry (field b).
const batchVersion = 1

// batchEntry is the payload of a feed entry holding a chunk of a Put (field
// b, beside its first position in f and the epoch in e; the stream ID is
// its last position). The records are stored column by column, with what
// they share written once: record i is C with ID I[i], Value K[i] and
// ExpiresAt X[i]×U nanoseconds after the Unix epoch, at position f+i,
// unless O holds it whole (a record that differs from C in another field).
// A chunk of token records of one revocation costs about 60 bytes a record
// plus its value, against some 300 for a record's JSON.
type batchEntry struct {
	V int            `json:"v"`
	C authz.Record   `json:"c"`
	I []string       `json:"i"`
	K []string       `json:"k"`
	U int64          `json:"u,omitempty"`
	X []int64        `json:"x"`
	O []batchOutlier `json:"o,omitempty"`
}

// batchOutlier is a record of a batch entry stored whole, at index N.
type batchOutlier struct {
	N int          `json:"n"`
	R authz.Record `json:"r"`
}

// Expiry units of a batch entry, coarsest first: the coarsest that every
// expiry of the chunk is a whole multiple of.
var batchUnits = []int64{int64(time.Second), int64(time.Millisecond), int64(time.Microsecond), 1}

// encodeBatch returns the batch entry payload of recs (IDs set, positions
// not).
func encodeBatch(recs []authz.Record) ([]byte, error) {
	e := batchEntry{
		V: batchVersion,
		C: shared(recs[0]),
		I: make([]string, len(recs)),
		K: make([]string, len(recs)),
		X: make([]int64, len(recs)),
	}
	u := 0 // index of the unit in batchUnits
	for i, r := range recs {
		e.I[i], e.K[i] = r.ID, r.Value
		if shared(r) != e.C || !inNanoRange(r.ExpiresAt) {
			e.O = append(e.O, batchOutlier{N: i, R: r})
			continue
		}
		n := r.ExpiresAt.UnixNano()
		for n%batchUnits[u] != 0 {
			u++
		}
		e.X[i] = n
	}
	unit := batchUnits[u]
	for i := range e.X {
		e.X[i] /= unit
	}
	if unit != 1 {
		e.U = unit
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode feed entry: %w", err)
	}
	return data, nil
}

// shared is r without the fields a batch entry stores per record.
func shared(r authz.Record) authz.Record {
	r.ID, r.Value, r.ExpiresAt, r.Position = "", "", time.Time{}, 0
	// Times compare by instant in the entry (JSON keeps no location or
	// monotonic reading).
	r.Before, r.CreatedAt = r.Before.UTC().Round(0), r.CreatedAt.UTC().Round(0)
	return r
}

// inNanoRange reports whether t fits Unix nanoseconds in an int64.
func inNanoRange(t time.Time) bool {
	return t.After(time.Unix(0, math.MinInt64)) && t.Before(time.Unix(0, math.MaxInt64))
}

// decodeBatch returns the records of a batch entry payload whose first
// record is at position first, checked against last (its stream ID).
func decodeBatch(data string, first, last uint64) ([]authz.Record, error) {
	e, ok := parseBatch(data)
	if !ok {
		e = batchEntry{} // nothing of what parseBatch read
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return nil, fmt.Errorf("batch does not decode: %w", err)
		}
	}
	n := len(e.I)
	switch {
	case e.V != batchVersion:
		return nil, fmt.Errorf("batch of version %d, this node reads %d", e.V, batchVersion)
	case n == 0 || len(e.K) != n || len(e.X) != n:
		return nil, fmt.Errorf("batch of %d ids, %d values, %d expiries", n, len(e.K), len(e.X))
	case first == 0 || last < first || last-first != uint64(n-1):
		return nil, fmt.Errorf("batch of %d records at positions %d to %d", n, first, last)
	case e.U < 0:
		return nil, fmt.Errorf("batch of expiry unit %d", e.U)
	}
	unit := max(e.U, 1)
	out := make([]authz.Record, n)
	for i := range out {
		if x := e.X[i]; x > math.MaxInt64/unit || x < math.MinInt64/unit {
			return nil, fmt.Errorf("batch expiry %d×%d out of range", x, unit)
		}
		r := e.C
		r.ID, r.Value = e.I[i], e.K[i]
		r.ExpiresAt = time.Unix(0, e.X[i]*unit).UTC()
		r.Position = first + uint64(i)
		out[i] = r
	}
	for _, o := range e.O {
		if o.N < 0 || o.N >= n || o.R.ID != e.I[o.N] {
			return nil, fmt.Errorf("batch outlier %d does not fit", o.N)
		}
		o.R.Position = first + uint64(o.N)
		out[o.N] = o.R
	}
	return out, nil
}

// entryFirst returns the first position a feed entry holds: field f of a
// batch entry, the stream ID of a single record's.
func entryFirst(m goredis.XMessage) (uint64, bool) {
	if f, ok := m.Values["f"].(string); ok {
		pos, err := strconv.ParseUint(f, 10, 64)
		return pos, err == nil
	}
	return parseStreamID(m.ID)
}

// entryRecords decodes one feed entry and returns its records after after:
// a batch entry (field b) holds a chunk of a Put, any other entry one
// record (field r: a Lift's, or one written by an earlier version).
func entryRecords(m goredis.XMessage, after uint64) ([]authz.Record, error) {
	last, ok := parseStreamID(m.ID)
	if !ok {
		return nil, fmt.Errorf("feed entry %s: not a feed position", m.ID)
	}
	b, isBatch := m.Values["b"].(string)
	if !isBatch {
		r, err := decodeEntry(m)
		if err != nil || r.Position <= after {
			return nil, err
		}
		return []authz.Record{r}, nil
	}
	first, ok := entryFirst(m)
	if !ok {
		return nil, fmt.Errorf("feed entry %s: no first position", m.ID)
	}
	recs, err := decodeBatch(b, first, last)
	if err != nil {
		return nil, fmt.Errorf("feed entry %s: %w", m.ID, err)
	}
	if after >= first {
		recs = recs[min(after-first+1, uint64(len(recs))):]
	}
	return recs, nil
}

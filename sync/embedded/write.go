package embedded

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Put validates recs and stores them all in one transaction, synced to disk
// before it returns; on error none is stored. Concurrent Puts share a
// transaction (see commit). Every record needs an
// ExpiresAt after its CreatedAt and after now. It sets ID, Position and (when
// zero) CreatedAt of each record, and wakes waiting Feed calls.
func (s *Store) Put(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	return s.PutRecorded(ctx, recs, nil)
}

// PutRecorded is Put, also appending to the audit trail (see Audit), in
// the same transaction, the entries that entries returns for the records
// as stored: the revocations and their entries are stored together or not
// at all. entries may be nil. The entries are sealed after the trail's
// head; prepare them as audit.Log.Prepare does.
func (s *Store) PutRecorded(ctx context.Context, recs []authz.Record, entries func(stored []authz.Record) []audit.Entry) ([]authz.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	req, err := prepareAll(recs, s.now(), min(runtime.GOMAXPROCS(0), 8))
	if err != nil {
		return nil, err
	}
	req.entries = entries
	if err := s.commit(req); err != nil {
		return nil, fmt.Errorf("put revocations: %w", err)
	}
	return req.recs, nil
}

// ErrPutTwice is the error of a second call of the function PreparePut
// returns.
var ErrPutTwice = errors.New("prepared put called twice")

// PreparePut does the work of PutRecorded that comes before its
// transaction: it validates recs (the error is PutRecorded's), names and
// encodes them. It returns put, which stores them, with the audit entries
// that entries makes of them, as PutRecorded does; at most once. A bulk
// import prepares its next chunk while one commits, so that this work is
// not on the path of the commits. Batches prepared in one order and put in
// another are stored alike (only their record IDs no longer grow with
// their positions).
func (s *Store) PreparePut(ctx context.Context, recs []authz.Record) (put func(entries func(stored []authz.Record) []audit.Entry) ([]authz.Record, error), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var req *putRequest
	if len(recs) > 0 {
		// On one goroutine beside a running commit, so as not to take its
		// processor; on all when the store is idle (an import's first chunk).
		s.mu.Lock()
		parts := 1
		if !s.leading {
			parts = min(runtime.GOMAXPROCS(0), 8)
		}
		s.mu.Unlock()
		if req, err = prepareAll(recs, s.now(), parts); err != nil {
			return nil, err
		}
	}
	var once atomic.Bool
	return func(entries func(stored []authz.Record) []audit.Entry) ([]authz.Record, error) {
		if !once.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("put revocations: %w", ErrPutTwice)
		}
		if req == nil {
			return nil, nil
		}
		req.entries = entries
		if err := s.commit(req); err != nil {
			return nil, fmt.Errorf("put revocations: %w", err)
		}
		return req.recs, nil
	}, nil
}

// prepareParallel is the batch size from which prepareAll spreads its work
// over the processors: validating, naming and encoding a record costs a
// few microseconds, which a mass revocation would otherwise spend on one
// core before its transaction.
const prepareParallel = 8192

// prepareAll prepares recs (see prepare) into a request for commit, on up
// to parts goroutines for a large batch, with its index and expiry keys sorted:
// everything but what only the transaction knows (positions, the values
// already stored under the index keys). The error is that of the first
// record at fault.
func prepareAll(recs []authz.Record, now time.Time, parts int) (*putRequest, error) {
	req := &putRequest{
		recs:   make([]authz.Record, len(recs)),
		enc:    make([][]byte, len(recs)),
		index:  make([]indexEntry, len(recs)),
		expiry: make([]expiryEntry, len(recs)),
		counts: map[authz.Kind]int64{},
		done:   make(chan error, 1),
	}
	if len(recs) < prepareParallel {
		parts = 1
	}
	// IDs first, in order: IDs made later sort later, so that the
	// records bucket is appended to (see newID); made on several cores
	// they would interleave, and each insertion would land mid-page.
	for i := range req.recs {
		id, err := newID()
		if err != nil {
			return nil, err
		}
		req.recs[i].ID = id
	}
	errs := make([]error, parts)
	counts := make([]map[authz.Kind]int64, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := len(recs)*p/parts, len(recs)*(p+1)/parts
		wg.Go(func() {
			var (
				mem   arena // keys and encodings
				times timeTexts
			)
			counts[p] = map[authz.Kind]int64{}
			for i := lo; i < hi; i++ {
				if err := prepare(recs[i], &req.recs[i], &req.enc[i], now, &times, &mem); err != nil {
					errs[p] = fmt.Errorf("record %d: %w", i, err)
					return
				}
				r := &req.recs[i]
				req.index[i] = indexEntry{mem.add(r.LookupKey().AppendString), i}
				req.expiry[i] = expiryEntry{timeKey(r.ExpiresAt), i}
				counts[p][r.Kind]++
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for _, c := range counts {
		for kind, n := range c {
			req.counts[kind] += n
		}
	}
	// Entries of one key keep the records' order (a stable sort, by the
	// record as the second key: pdqsort, far quicker on a mass revocation).
	sortKeys := func() {
		slices.SortFunc(req.index, func(a, b indexEntry) int {
			if c := bytes.Compare(a.key, b.key); c != 0 {
				return c
			}
			return a.rec - b.rec
		})
	}
	if parts > 1 {
		wg.Go(sortKeys)
	} else {
		sortKeys()
	}
	slices.SortFunc(req.expiry, func(a, b expiryEntry) int {
		if a.exp != b.exp {
			return cmp.Compare(a.exp, b.exp)
		}
		return a.rec - b.rec
	})
	wg.Wait()
	return req, nil
}

// indexEntry is the index key of the record at rec in its request.
type indexEntry struct {
	key []byte
	rec int
}

// expiryEntry is the expiry (see timeKey) of the record at rec in its
// request.
type expiryEntry struct {
	exp uint64
	rec int
}

// arenaBlock is the size of the blocks an arena carves slices from.
const arenaBlock = 64 << 10

// arena hands out byte slices carved from large blocks: one allocation for
// many small keys and values that live as long as one request.
type arena struct{ buf []byte }

// alloc returns a slice of n bytes, which appending to cannot overrun.
func (a *arena) alloc(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(n, arenaBlock))
	}
	a.buf = a.buf[:len(a.buf)+n]
	return a.buf[len(a.buf)-n : len(a.buf) : len(a.buf)]
}

// add returns what appendTo appends to an empty slice, in the arena when
// it fits in the block's room.
func (a *arena) add(appendTo func([]byte) []byte) []byte {
	if cap(a.buf)-len(a.buf) < arenaBlock/64 {
		a.buf = make([]byte, 0, arenaBlock)
	}
	start := len(a.buf)
	out := appendTo(a.buf[start:start])
	if len(out) > cap(a.buf)-start {
		return out // it did not fit: appendTo allocated it
	}
	a.buf = a.buf[:start+len(out)]
	return out[:len(out):len(out)]
}

// copy returns a copy of s.
func (a *arena) copy(s string) []byte {
	b := a.alloc(len(s))
	copy(b, s)
	return b
}

// prepare validates r, gives it out's ID (and CreatedAt when zero) into out,
// and encodes it (with times and mem, see encodeRecordWith) without its
// position and its closing brace into enc:
// putRecords adds both, the position being one only the transaction knows
// (see withPosition).
func prepare(r authz.Record, out *authz.Record, enc *[]byte, now time.Time, times *timeTexts, mem *arena) error {
	if err := r.ValidateStored(); err != nil {
		return err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if !r.ExpiresAt.After(r.CreatedAt) {
		return fmt.Errorf("%w: expires_at %s is not after created_at %s",
			authz.ErrInvalidRecord, r.ExpiresAt.Format(time.RFC3339), r.CreatedAt.Format(time.RFC3339))
	}
	if !r.ExpiresAt.After(now) {
		return fmt.Errorf("%w: expires_at %s is not in the future",
			authz.ErrInvalidRecord, r.ExpiresAt.Format(time.RFC3339))
	}
	r.ID, r.Position = out.ID, 0
	data, err := encodeRecordWith(&r, times, mem)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	*out, *enc = r, data[:len(data)-1]
	return nil
}

// withPosition returns the JSON object whose members without the position
// and without the closing brace are open (see prepare), with the position
// field and the brace added. It appends to open in place when open has the
// room (encodeRecord leaves it), never changing open's own bytes, so that
// a request written again (see lead) gets the same value. The decoder
// takes fields in any order.
func withPosition(open []byte, pos uint64) []byte {
	out := append(open, `,"position":`...)
	out = strconv.AppendUint(out, pos, 10)
	return append(out, '}')
}

// appendFill is the FillPercent of buckets whose new keys come last.
const appendFill = 0.95

// cursorSteps bounds the keys cursorGet steps over to reach the next key
// asked for before it seeks from the root instead.
const cursorSteps = 8

// cursorGet gets values as Bucket.Get does, for keys asked for mostly in
// increasing order and close together (the index keys of a Put, sorted;
// the records of a feed page, whose IDs grow with their positions): it
// steps a cursor forward from the key asked for last, a few keys at most,
// instead of seeking from the root for each. A key before the last one is
// sought. The keys asked for must stay valid (and the bucket unwritten)
// while it is used.
type cursorGet struct {
	c    *bolt.Cursor
	last []byte // the key asked for last; nil before the first
	k, v []byte // where c is: the first key at or after last (nil: none)
}

// get returns the value of key, or nil.
func (g *cursorGet) get(key []byte) []byte {
	if g.last == nil || bytes.Compare(key, g.last) < 0 {
		g.k, g.v = g.c.Seek(key)
	} else {
		for n := 0; g.k != nil && bytes.Compare(g.k, key) < 0; n++ {
			if n == cursorSteps {
				g.k, g.v = g.c.Seek(key)
				break
			}
			g.k, g.v = g.c.Next()
		}
	}
	g.last = key
	if g.k != nil && bytes.Equal(g.k, key) {
		return g.v
	}
	return nil
}

// putRecords gives req's records their positions and writes them with
// their feed, index, expiry and count entries: a Put a record in the
// records bucket and one a key in the index, feed and expiry entries in
// packs (see pack.go). Each bucket is written in key order, which a B+tree
// takes much faster than scattered keys: positions and record IDs (see
// newID) grow, so the feed and records buckets are appended to (their
// pages filled, not split in half); index keys come sorted (see
// prepareAll). The values already under the index keys are read first,
// in one walk of a cursor (see cursorGet), before any index key is
// written.
func putRecords(tx *bolt.Tx, req *putRequest) error {
	recs := req.recs
	feed, records := tx.Bucket(bucketFeed), tx.Bucket(bucketRecords)
	feed.FillPercent, records.FillPercent = appendFill, appendFill
	first := feed.Sequence() + 1
	if err := feed.SetSequence(first - 1 + uint64(len(recs))); err != nil {
		return fmt.Errorf("next position: %w", err)
	}
	var mem arena
	for i := range recs {
		r := &recs[i]
		r.Position = first + uint64(i)
		if err := records.Put(mem.copy(r.ID), withPosition(req.enc[i], r.Position)); err != nil {
			return fmt.Errorf("record %d: %s: %w", i, bucketRecords, err)
		}
	}
	err := putPacks(feed, bucketFeed, len(recs), &mem, func(dst []byte, i int) []byte {
		return appendEntry(dst, recs[i].ID, recs[i].Position)
	}, func(first uint64) ([]byte, error) { return posKey(first), nil })
	if err != nil {
		return err
	}

	ib := tx.Bucket(bucketIndex)
	type put struct{ key, val []byte }
	puts := make([]put, 0, len(req.index))
	stored := cursorGet{c: ib.Cursor()}
	for i := 0; i < len(req.index); {
		key := req.index[i].key
		old := stored.get(key)
		j := i + 1
		for j < len(req.index) && bytes.Equal(req.index[j].key, key) {
			j++
		}
		val := append(mem.alloc(len(old) + (j-i)*entryLen)[:0], old...)
		for ; i < j; i++ {
			r := &recs[req.index[i].rec]
			val = appendEntry(val, r.ID, timeKey(r.ExpiresAt))
		}
		puts = append(puts, put{key, val})
	}
	for _, p := range puts {
		if err := ib.Put(p.key, p.val); err != nil {
			return fmt.Errorf("%s: %w", bucketIndex, err)
		}
	}
	err = putExpiry(tx, len(req.expiry), &mem, func(dst []byte, i int) []byte {
		e := req.expiry[i]
		return appendEntry(dst, recs[e.rec].ID, e.exp)
	})
	if err != nil {
		return err
	}
	for kind, n := range req.counts {
		if err := addCount(tx, kind, n); err != nil {
			return fmt.Errorf("count: %w", err)
		}
	}
	return nil
}

// addCount adds delta to the stored record count of kind.
func addCount(tx *bolt.Tx, kind authz.Kind, delta int64) error {
	meta := tx.Bucket(bucketMeta)
	key := []byte(countPrefix + string(kind))
	var n int64
	if v := meta.Get(key); len(v) == 8 {
		n = int64(binary.BigEndian.Uint64(v))
	}
	return meta.Put(key, putUint64(uint64(n+delta)))
}

// newID returns a record ID in hex: 64 bits of the clock (Unix
// nanoseconds), then 64 random bits. IDs made later sort later, so that a
// mass revocation appends to the records bucket rather than writing into
// pages all over it; the random half keeps IDs unique and unguessable
// enough for what they name (an ID grants nothing).
func newID() (string, error) {
	var b [idLen / 2]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		return "", fmt.Errorf("record id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// pruneBatch bounds the records one Prune transaction deletes, so that a
// large prune does not hold the write lock (or grow a transaction) unbounded.
// A variable so that tests can make it small.
var pruneBatch = 10_000

// Prune deletes the records whose ExpiresAt is at or before now, with their
// feed, index and expiry entries, and returns how many it deleted. Their
// positions are never reused; Feed skips them.
func (s *Store) Prune(now time.Time) (int, error) {
	total := 0
	for {
		n, visited, err := s.pruneOnce(now)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		if visited < pruneBatch {
			return total, nil
		}
	}
}

// pruneOnce deletes the expired records of the expiry packs it visits
// first, whole packs until it has about pruneBatch entries. It returns the
// records deleted and the expired entries visited (those whose record was
// lifted before have nothing left to delete).
func (s *Store) pruneOnce(now time.Time) (deleted, visited int, err error) {
	nowKey := timeKey(now)
	err = s.update(func(tx *bolt.Tx) error {
		eb := tx.Bucket(bucketExpiry)
		type repack struct{ key, rest []byte }
		var (
			packs   []repack
			expired [][]byte
		)
		c := eb.Cursor()
		for k, v := c.First(); k != nil && len(expired) < pruneBatch; k, v = c.Next() {
			if len(k) != 16 {
				return fmt.Errorf("%w: expiry pack key of %d bytes", ErrCorrupt, len(k))
			}
			if binary.BigEndian.Uint64(k) > nowKey {
				break
			}
			var rest []byte
			err := entries(v, func(id []byte, exp uint64) bool {
				if exp <= nowKey {
					expired = append(expired, bytes.Clone(id))
				} else {
					rest = appendEntry(rest, id, exp)
				}
				return true
			})
			if err != nil {
				return err
			}
			packs = append(packs, repack{bytes.Clone(k), rest})
		}
		for _, p := range packs {
			if err := eb.Delete(p.key); err != nil {
				return fmt.Errorf("%s: %w", bucketExpiry, err)
			}
			if len(p.rest) == 0 {
				continue
			}
			if err := eb.Put(expiryPackKey(earliest(p.rest), binary.BigEndian.Uint64(p.key[8:])), p.rest); err != nil {
				return fmt.Errorf("%s: %w", bucketExpiry, err)
			}
		}
		var del deletes
		for _, id := range expired {
			gone, err := del.record(tx, id)
			if err != nil {
				return err
			}
			if gone {
				deleted++
			}
		}
		visited = len(expired)
		return del.apply(tx)
	})
	if err != nil {
		return 0, 0, err
	}
	return deleted, visited, nil
}

// deletes gathers what deleting records leaves to do once in a
// transaction: their feed entries (see feedDeletes) and counts.
type deletes struct {
	feed   feedDeletes
	counts map[authz.Kind]int64
}

// record deletes record id (a revocation or a lift entry) from the records,
// index and lifts buckets and notes its feed entry and count, reporting
// whether it was there: an expiry entry outlives its record when it is
// lifted.
func (d *deletes) record(tx *bolt.Tx, id []byte) (bool, error) {
	records := tx.Bucket(bucketRecords)
	data := records.Get(id)
	if data == nil {
		return false, nil
	}
	r, err := decodeRecord(string(id), data)
	if err != nil {
		return false, err
	}
	if r.IsLift() {
		if err := tx.Bucket(bucketLifts).Delete([]byte(r.Lifts)); err != nil {
			return false, fmt.Errorf("%s: %w", bucketLifts, err)
		}
	} else {
		index := tx.Bucket(bucketIndex)
		key := []byte(r.LookupKey().String())
		if rest := removeEntry(index.Get(key), r.ID); len(rest) > 0 {
			err = index.Put(key, rest)
		} else {
			err = index.Delete(key)
		}
		if err != nil {
			return false, fmt.Errorf("%s: %w", bucketIndex, err)
		}
		if d.counts == nil {
			d.counts = map[authz.Kind]int64{}
		}
		d.counts[r.Kind]--
	}
	if err := records.Delete(id); err != nil {
		return false, fmt.Errorf("%s: %w", bucketRecords, err)
	}
	d.feed = append(d.feed, r.Position)
	return true, nil
}

// apply deletes the noted feed entries and updates the counts.
func (d *deletes) apply(tx *bolt.Tx) error {
	if err := d.feed.apply(tx); err != nil {
		return err
	}
	for kind, n := range d.counts {
		if err := addCount(tx, kind, n); err != nil {
			return fmt.Errorf("count: %w", err)
		}
	}
	return nil
}

// decodeRecord decodes the stored JSON of record id.
func decodeRecord(id string, data []byte) (authz.Record, error) {
	var r authz.Record
	if data == nil {
		return r, fmt.Errorf("%w: record %s is indexed but not stored", ErrCorrupt, id)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: record %s does not decode: %w", ErrCorrupt, id, err)
	}
	if r.ID != id {
		return r, fmt.Errorf("%w: record stored under %s has id %q", ErrCorrupt, id, r.ID)
	}
	return r, nil
}

// Lift lifts the unexpired record id in one transaction, synced before it
// returns: the record is deleted as Prune would (but for its expiry entry,
// which Prune passes over), and its
// lift entry is stored at the next position (see the package
// documentation), waking waiting Feed calls. It returns the lift entry.
func (s *Store) Lift(ctx context.Context, id, actor, reason string) (authz.Record, error) {
	if err := ctx.Err(); err != nil {
		return authz.Record{}, err
	}
	now := s.now()
	liftID, err := newID()
	if err != nil {
		return authz.Record{}, err
	}
	var out authz.Record
	err = s.update(func(tx *bolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		if prev := tx.Bucket(bucketLifts).Get([]byte(id)); prev != nil {
			lift, err := decodeRecord(string(prev), records.Get(prev))
			if err != nil {
				return err
			}
			if timeKey(lift.ExpiresAt) <= timeKey(now) {
				return source.ErrNotFound
			}
			out = lift
			return fmt.Errorf("%w by %s at %s (%s)", source.ErrLifted, lift.Actor, lift.CreatedAt.UTC().Format(time.RFC3339), lift.Reason)
		}
		data := records.Get([]byte(id))
		if data == nil {
			return source.ErrNotFound
		}
		rec, err := decodeRecord(id, data)
		if err != nil {
			return err
		}
		if rec.IsLift() || timeKey(rec.ExpiresAt) <= timeKey(now) {
			return source.ErrNotFound
		}
		lift, err := source.NewLift(rec, actor, reason, now)
		if err != nil {
			return err
		}
		var del deletes
		if _, err := del.record(tx, []byte(id)); err != nil {
			return err
		}
		if err := del.apply(tx); err != nil {
			return err
		}
		feed := tx.Bucket(bucketFeed)
		if lift.Position, err = feed.NextSequence(); err != nil {
			return fmt.Errorf("next position: %w", err)
		}
		lift.ID = liftID
		enc, err := json.Marshal(lift)
		if err != nil {
			return fmt.Errorf("encode lift: %w", err)
		}
		for _, put := range []struct{ bucket, key, val []byte }{
			{bucketRecords, []byte(liftID), enc},
			{bucketFeed, posKey(lift.Position), appendEntry(nil, liftID, lift.Position)},
			{bucketLifts, []byte(id), []byte(liftID)},
		} {
			if err := tx.Bucket(put.bucket).Put(put.key, put.val); err != nil {
				return fmt.Errorf("%s: %w", put.bucket, err)
			}
		}
		var mem arena
		err = putExpiry(tx, 1, &mem, func(dst []byte, _ int) []byte {
			return appendEntry(dst, liftID, timeKey(lift.ExpiresAt))
		})
		if err != nil {
			return err
		}
		out = lift
		return nil
	})
	if err != nil {
		if errors.Is(err, source.ErrLifted) {
			return out, fmt.Errorf("lift revocation %q: %w", id, err)
		}
		return authz.Record{}, fmt.Errorf("lift revocation %q: %w", id, err)
	}
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	return out, nil
}

package embedded

import (
	"bytes"
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
	now := s.now()
	out := make([]authz.Record, len(recs))
	enc := make([][]byte, len(recs))
	if err := prepareAll(recs, out, enc, now); err != nil {
		return nil, err
	}
	if err := s.commit(out, enc, entries); err != nil {
		return nil, fmt.Errorf("put revocations: %w", err)
	}
	return out, nil
}

// prepareParallel is the batch size from which prepareAll spreads its work
// over the processors: validating, naming and encoding a record costs a
// few microseconds, which a mass revocation would otherwise spend on one
// core before its transaction.
const prepareParallel = 8192

// prepareAll prepares recs into out and enc (see prepare), on several
// cores for a large batch; the error is that of the first record at fault.
func prepareAll(recs, out []authz.Record, enc [][]byte, now time.Time) error {
	parts := 1
	if len(recs) >= prepareParallel {
		parts = min(runtime.GOMAXPROCS(0), 8)
	}
	// IDs first, in order: IDs made later sort later, so that the
	// records bucket is appended to (see newID); made on several cores
	// they would interleave, and each insertion would land mid-page.
	for i := range out {
		id, err := newID()
		if err != nil {
			return err
		}
		out[i].ID = id
	}
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := len(recs)*p/parts, len(recs)*(p+1)/parts
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if err := prepare(recs[i], &out[i], &enc[i], now); err != nil {
					errs[p] = fmt.Errorf("record %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// prepare validates r, gives it out's ID (and CreatedAt when zero) into out,
// and encodes it without its position into enc: putRecords adds the
// position, which only the transaction knows (see withPosition).
func prepare(r authz.Record, out *authz.Record, enc *[]byte, now time.Time) error {
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
	data, err := encodeRecord(&r)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	*out, *enc = r, data
	return nil
}

// withPosition returns the JSON object data (a record encoded without its
// position, see prepare) with the position field added before its closing
// brace. The decoder takes fields in any order.
func withPosition(data []byte, pos uint64) []byte {
	out := make([]byte, 0, len(data)+32)
	out = append(out, data[:len(data)-1]...)
	out = append(out, `,"position":`...)
	out = strconv.AppendUint(out, pos, 10)
	return append(out, '}')
}

// appendFill is the FillPercent of buckets whose new keys come last.
const appendFill = 0.95

// putRecords gives recs their positions and writes them with their feed,
// index, expiry and count entries. Each bucket is written in key order,
// which a B+tree takes much faster than scattered keys: positions and
// record IDs (see newID) grow, so the feed and records buckets are
// appended to (their pages filled, not split in half); index and expiry
// keys are sorted first.
func putRecords(tx *bolt.Tx, recs []authz.Record, enc [][]byte) error {
	feed, records := tx.Bucket(bucketFeed), tx.Bucket(bucketRecords)
	feed.FillPercent, records.FillPercent = appendFill, appendFill
	type entry struct {
		key []byte
		rec int
	}
	index := make([]entry, len(recs))
	expiry := make([][]byte, len(recs))
	counts := map[authz.Kind]int64{}
	for i := range recs {
		pos, err := feed.NextSequence()
		if err != nil {
			return fmt.Errorf("next position: %w", err)
		}
		r := &recs[i]
		r.Position = pos
		if err := records.Put([]byte(r.ID), withPosition(enc[i], pos)); err != nil {
			return fmt.Errorf("record %d: %s: %w", i, bucketRecords, err)
		}
		if err := feed.Put(posKey(pos), []byte(r.ID)); err != nil {
			return fmt.Errorf("record %d: %s: %w", i, bucketFeed, err)
		}
		index[i] = entry{[]byte(r.LookupKey().String()), i}
		expiry[i] = expiryKey(timeKey(r.ExpiresAt), r.ID)
		counts[r.Kind]++
	}
	// Entries of one key keep the records' order (a stable sort, by the
	// record as the second key: pdqsort, far quicker on a mass revocation).
	slices.SortFunc(index, func(a, b entry) int {
		if c := bytes.Compare(a.key, b.key); c != 0 {
			return c
		}
		return a.rec - b.rec
	})
	ib := tx.Bucket(bucketIndex)
	for i := 0; i < len(index); {
		key := index[i].key
		old := ib.Get(key)
		val := append(make([]byte, 0, len(old)+entryLen), old...)
		for ; i < len(index) && bytes.Equal(index[i].key, key); i++ {
			r := &recs[index[i].rec]
			val = appendEntry(val, r.ID, timeKey(r.ExpiresAt))
		}
		if err := ib.Put(key, val); err != nil {
			return fmt.Errorf("%s: %w", bucketIndex, err)
		}
	}
	slices.SortFunc(expiry, bytes.Compare)
	eb := tx.Bucket(bucketExpiry)
	for _, k := range expiry {
		if err := eb.Put(k, nil); err != nil {
			return fmt.Errorf("%s: %w", bucketExpiry, err)
		}
	}
	for kind, n := range counts {
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
		n, err := s.pruneOnce(now)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

func (s *Store) pruneOnce(now time.Time) (int, error) {
	limit := putUint64(timeKey(now))
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		var expired [][]byte
		c := tx.Bucket(bucketExpiry).Cursor()
		for k, _ := c.First(); k != nil && len(expired) < pruneBatch; k, _ = c.Next() {
			if len(k) != 8+idLen {
				return fmt.Errorf("%w: expiry key of %d bytes", ErrCorrupt, len(k))
			}
			if bytes.Compare(k[:8], limit) > 0 {
				break
			}
			expired = append(expired, bytes.Clone(k))
		}
		for _, k := range expired {
			if err := deleteRecord(tx, k); err != nil {
				return err
			}
		}
		n = len(expired)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// deleteRecord deletes the record of expiry key k and its other entries.
func deleteRecord(tx *bolt.Tx, k []byte) error {
	id := string(k[8:])
	records := tx.Bucket(bucketRecords)
	r, err := decodeRecord(id, records.Get([]byte(id)))
	if err != nil {
		return err
	}
	if r.IsLift() {
		return deleteLift(tx, k, r)
	}
	index := tx.Bucket(bucketIndex)
	key := []byte(r.LookupKey().String())
	if rest := removeEntry(index.Get(key), id); len(rest) > 0 {
		err = index.Put(key, rest)
	} else {
		err = index.Delete(key)
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	for _, del := range []struct{ bucket, key []byte }{
		{bucketRecords, []byte(id)},
		{bucketFeed, posKey(r.Position)},
		{bucketExpiry, k},
	} {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return fmt.Errorf("%s: %w", del.bucket, err)
		}
	}
	return addCount(tx, r.Kind, -1)
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

// deleteLift deletes lift entry r, of expiry key k, and its other entries.
func deleteLift(tx *bolt.Tx, k []byte, r authz.Record) error {
	for _, del := range []struct{ bucket, key []byte }{
		{bucketRecords, []byte(r.ID)},
		{bucketFeed, posKey(r.Position)},
		{bucketExpiry, k},
		{bucketLifts, []byte(r.Lifts)},
	} {
		if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return fmt.Errorf("%s: %w", del.bucket, err)
		}
	}
	return nil
}

// Lift lifts the unexpired record id in one transaction, synced before it
// returns: the record is deleted from every bucket, as Prune would, and its
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
		if err := deleteRecord(tx, expiryKey(timeKey(rec.ExpiresAt), id)); err != nil {
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
			{bucketFeed, posKey(lift.Position), []byte(liftID)},
			{bucketExpiry, expiryKey(timeKey(lift.ExpiresAt), liftID), nil},
			{bucketLifts, []byte(id), []byte(liftID)},
		} {
			if err := tx.Bucket(put.bucket).Put(put.key, put.val); err != nil {
				return fmt.Errorf("%s: %w", put.bucket, err)
			}
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

package embedded

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
)

// Put validates recs and stores them all in one transaction, synced to disk
// before it returns; on error none is stored. Every record needs an
// ExpiresAt after its CreatedAt and after now. It sets ID, Position and (when
// zero) CreatedAt of each record, and wakes waiting Feed calls.
func (s *Store) Put(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	now := s.now()
	out := make([]authz.Record, len(recs))
	for i, r := range recs {
		if err := r.ValidateStored(); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if r.CreatedAt.IsZero() {
			r.CreatedAt = now
		}
		if !r.ExpiresAt.After(r.CreatedAt) {
			return nil, fmt.Errorf("record %d: %w: expires_at %s is not after created_at %s",
				i, authz.ErrInvalidRecord, r.ExpiresAt.Format(time.RFC3339), r.CreatedAt.Format(time.RFC3339))
		}
		if !r.ExpiresAt.After(now) {
			return nil, fmt.Errorf("record %d: %w: expires_at %s is not in the future",
				i, authz.ErrInvalidRecord, r.ExpiresAt.Format(time.RFC3339))
		}
		id, err := newID()
		if err != nil {
			return nil, err
		}
		r.ID = id
		out[i] = r
	}
	err := s.update(func(tx *bolt.Tx) error {
		feed := tx.Bucket(bucketFeed)
		for i := range out {
			pos, err := feed.NextSequence()
			if err != nil {
				return fmt.Errorf("next position: %w", err)
			}
			out[i].Position = pos
			if err := putRecord(tx, out[i]); err != nil {
				return fmt.Errorf("store record %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("put revocations: %w", err)
	}
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
	return out, nil
}

// putRecord writes r and its feed, index, expiry and count entries.
func putRecord(tx *bolt.Tx, r authz.Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	exp := timeKey(r.ExpiresAt)
	index := tx.Bucket(bucketIndex)
	key := []byte(r.LookupKey().String())
	old := index.Get(key)
	val := appendEntry(append(make([]byte, 0, len(old)+entryLen), old...), r.ID, exp)
	for _, put := range []struct {
		bucket, key, val []byte
	}{
		{bucketRecords, []byte(r.ID), data},
		{bucketFeed, posKey(r.Position), []byte(r.ID)},
		{bucketIndex, key, val},
		{bucketExpiry, expiryKey(exp, r.ID), nil},
	} {
		if err := tx.Bucket(put.bucket).Put(put.key, put.val); err != nil {
			return fmt.Errorf("%s: %w", put.bucket, err)
		}
	}
	return addCount(tx, r.Kind, 1)
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

// newID returns a random 128-bit record ID in hex.
func newID() (string, error) {
	var b [idLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
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

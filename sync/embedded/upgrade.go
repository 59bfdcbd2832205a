package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// upgradeStep bounds the schema 2 entries one upgrade transaction moves
// into packs, so that upgrading a large file keeps each transaction (and
// its memory) bounded. A variable so that tests can make it small.
var upgradeStep = 64 << 10

// startUpgradeV2 creates the pack buckets of a schema 2 file that has none
// yet (an upgrade stopped part way has them), the feed's taking the old
// feed's sequence, the store position, and marks the file as being
// upgraded (schemaUpgrading), which a schema 2 release refuses, all in
// the caller's transaction. On a resumed upgrade the store position is
// the greater of the two sequences, so that no position is given twice.
func startUpgradeV2(tx *bolt.Tx) error {
	old := tx.Bucket(bucketFeedV2)
	if old == nil || tx.Bucket(bucketExpiryV2) == nil {
		return fmt.Errorf("%w: schema %s file without its feed or expiry bucket", ErrCorrupt, schemaV2)
	}
	feed, err := tx.CreateBucketIfNotExists(bucketFeed)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketFeed, err)
	}
	if err := feed.SetSequence(max(feed.Sequence(), old.Sequence())); err != nil {
		return err
	}
	if _, err := tx.CreateBucketIfNotExists(bucketExpiry); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketExpiry, err)
	}
	return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaUpgrading))
}

// upgradeV2 moves a schema 2 file's feed and expiry entries (one a
// record) into packs (see pack.go), up to upgradeStep of each a
// transaction: each transaction moves its entries (writes the packs,
// deletes the old keys) all or nothing, so that an upgrade stopped at any
// point goes on at the next Open. The last one deletes the emptied
// buckets and sets the schema version. Nothing else reads the file
// meanwhile: Open returns once it is done.
func (s *Store) upgradeV2() error {
	for {
		done := false
		err := s.update(func(tx *bolt.Tx) error {
			oldFeed, oldExpiry := tx.Bucket(bucketFeedV2), tx.Bucket(bucketExpiryV2)
			var mem arena
			feedLeft, err := moveOld(oldFeed, bucketFeedV2, func(n int, entry func([]byte, int) []byte) error {
				feed := tx.Bucket(bucketFeed)
				return putPacks(feed, bucketFeed, n, &mem, entry, func(first uint64) ([]byte, error) { return posKey(first), nil })
			}, func(k, v []byte) ([]byte, uint64, bool) {
				if len(k) != 8 || len(v) != idLen {
					return nil, 0, false
				}
				return v, binary.BigEndian.Uint64(k), true
			})
			if err != nil {
				return err
			}
			expiryLeft, err := moveOld(oldExpiry, bucketExpiryV2, func(n int, entry func([]byte, int) []byte) error {
				return putExpiry(tx, n, &mem, entry)
			}, func(k, v []byte) ([]byte, uint64, bool) {
				if len(k) != 8+idLen || len(v) != 0 {
					return nil, 0, false
				}
				return k[8:], binary.BigEndian.Uint64(k), true
			})
			if err != nil {
				return err
			}
			if feedLeft || expiryLeft {
				return nil
			}
			for _, name := range [][]byte{bucketFeedV2, bucketExpiryV2} {
				if err := tx.DeleteBucket(name); err != nil {
					return fmt.Errorf("delete bucket %s: %w", name, err)
				}
			}
			done = true
			return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion))
		})
		if err != nil {
			return fmt.Errorf("upgrade %s to schema %s: %w", s.path, schemaVersion, err)
		}
		if done {
			return nil
		}
		if upgradeStepped != nil {
			if err := upgradeStepped(); err != nil {
				return err
			}
		}
	}
}

// upgradeStepped, when set (by tests), is called after each upgrade
// transaction but the last; an error ends the upgrade there, as a crash
// would.
var upgradeStepped func() error

// moveOld moves up to upgradeStep entries of b, in key order, into packs:
// entry gives each key and value's record ID and number (position or
// expiry), or false for one that is not a schema 2 entry (ErrCorrupt);
// put writes the packs. It deletes the moved keys and reports whether any
// are left.
func moveOld(b *bolt.Bucket, name []byte, put func(n int, entry func([]byte, int) []byte) error, entry func(k, v []byte) (id []byte, n uint64, ok bool)) (left bool, err error) {
	var (
		keys [][]byte
		ents []byte
	)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(keys) == upgradeStep {
			left = true
			break
		}
		id, n, ok := entry(k, v)
		if !ok {
			return false, fmt.Errorf("%w: %s entry %x of %d bytes", ErrCorrupt, name, k, len(v))
		}
		keys = append(keys, bytes.Clone(k))
		ents = appendEntry(ents, id, n)
	}
	err = put(len(keys), func(dst []byte, i int) []byte {
		return append(dst, ents[i*entryLen:(i+1)*entryLen]...)
	})
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
	}
	return left, nil
}

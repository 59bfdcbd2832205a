package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Packs. The feed and expiry buckets hold their entries (a record ID and a
// number, as the index does) in packs: one bbolt value of up to packMax
// entries, written by one Put. A Put of n records writes n/packMax feed
// and expiry values instead of 2n, which was half of a bulk load's bbolt
// work.
//
//	feedpacks    key: the first position of the pack; entries: record ID +
//	             position, in position order. Packs never overlap: a Put's
//	             positions are new and consecutive. Its sequence is the
//	             store position.
//	expirypacks  key: the earliest expiry of the pack (sortable, see
//	             timeKey) + a number unique to the pack (the bucket's
//	             sequence); entries: record ID + expiry. Every pack whose
//	             key is at or before a time holds a record expired then,
//	             and no other pack does.
//
// Deleting a record removes its feed entry, rewriting its pack (once per
// transaction, see feedDeletes). Its expiry entry goes only when Prune
// reaches it: an expiry entry whose record is gone (lifted) is skipped.
const packMax = 1024

// expiryPackKey is the key of an expiry pack.
func expiryPackKey(earliest, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(putUint64(earliest), seq)
}

// earliest returns the earliest expiry of the entries of a pack.
func earliest(v []byte) uint64 {
	first := ^uint64(0)
	_ = entries(v, func(_ []byte, exp uint64) bool {
		first = min(first, exp)
		return true
	})
	return first
}

// putPacks writes entries (ID + number, n of them in order, appended by
// appendEntry from entry(i)) to b as packs of up to packMax, each under
// the key that key makes of its first entry's number. name is b's.
func putPacks(b *bolt.Bucket, name []byte, n int, mem *arena, entry func(dst []byte, i int) []byte, key func(first uint64) ([]byte, error)) error {
	for lo := 0; lo < n; lo += packMax {
		hi := min(lo+packMax, n)
		v := mem.alloc((hi - lo) * entryLen)[:0]
		for i := lo; i < hi; i++ {
			v = entry(v, i)
		}
		k, err := key(binary.BigEndian.Uint64(v[idLen:entryLen]))
		if err != nil {
			return err
		}
		if err := b.Put(k, v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// putExpiry writes entries (ID + expiry, sorted by expiry) as expiry packs.
func putExpiry(tx *bolt.Tx, n int, mem *arena, entry func(dst []byte, i int) []byte) error {
	eb := tx.Bucket(bucketExpiry)
	return putPacks(eb, bucketExpiry, n, mem, entry, func(first uint64) ([]byte, error) {
		seq, err := eb.NextSequence()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", bucketExpiry, err)
		}
		return expiryPackKey(first, seq), nil
	})
}

// seekFeed moves c to the feed pack that may hold position pos (the last
// one starting at or before it) or, when none starts before it, the first
// one; it returns its key and value (nil when the feed is empty).
func seekFeed(c *bolt.Cursor, pos uint64) (k, v []byte) {
	key := posKey(pos)
	k, v = c.Seek(key)
	if k != nil && bytes.Equal(k, key) {
		return k, v
	}
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil {
		return c.First()
	}
	return k, v
}

// checkFeedPack returns ErrCorrupt unless k and v are a feed pack that
// comes after position prev (the last of the pack before it, 0 for none)
// in a store at position top: an 8-byte key after prev, and entries
// whose positions grow from the key to at most top. It returns the
// pack's last position.
func checkFeedPack(k, v []byte, prev, top uint64) (last uint64, err error) {
	if len(k) != 8 || len(v) == 0 || len(v)%entryLen != 0 {
		return 0, fmt.Errorf("%w: feed pack %x of %d bytes", ErrCorrupt, k, len(v))
	}
	first := binary.BigEndian.Uint64(k)
	if first <= prev {
		return 0, fmt.Errorf("%w: feed pack %x after one ending at position %d", ErrCorrupt, k, prev)
	}
	last = first - 1
	for i := 0; i < len(v); i += entryLen {
		pos := binary.BigEndian.Uint64(v[i+idLen : i+entryLen])
		if pos <= last || pos > top {
			return 0, fmt.Errorf("%w: feed pack %x holds position %d after %d (store at %d)", ErrCorrupt, k, pos, last, top)
		}
		last = pos
	}
	return last, nil
}

// eachFeed calls fn with every feed entry after position after, in
// position order, until fn returns false or an error (returned). A pack
// it reads, or the one before the first it reads, that is not one (see
// checkFeedPack) is ErrCorrupt: packs that overlap would otherwise pass
// over entries.
func eachFeed(tx *bolt.Tx, after uint64, fn func(pos uint64, id []byte) (bool, error)) error {
	if after == ^uint64(0) {
		return nil
	}
	feed := tx.Bucket(bucketFeed)
	top := feed.Sequence()
	c := feed.Cursor()
	k, v := seekFeed(c, after+1)
	var prev uint64
	if k != nil {
		if pk, pv := before(feed, k); pk != nil {
			var err error
			if prev, err = checkFeedPack(pk, pv, 0, top); err != nil {
				return err
			}
		}
	}
	for ; k != nil; k, v = c.Next() {
		last, err := checkFeedPack(k, v, prev, top)
		if err != nil {
			return err
		}
		prev = last
		if last <= after {
			continue
		}
		for i := 0; i < len(v); i += entryLen {
			pos := binary.BigEndian.Uint64(v[i+idLen : i+entryLen])
			if pos <= after {
				continue
			}
			if more, err := fn(pos, v[i:i+idLen]); err != nil || !more {
				return err
			}
		}
	}
	return nil
}

// before returns the key and value of b before key k, which b holds (nil
// when k is its first).
func before(b *bolt.Bucket, k []byte) (pk, pv []byte) {
	c := b.Cursor()
	c.Seek(k)
	return c.Prev()
}

// feedDeletes are the positions whose feed entries a transaction deletes;
// apply rewrites each pack holding some once.
type feedDeletes []uint64

// apply deletes the entries of d's positions from the feed packs,
// deleting a pack left empty. A position no pack holds is passed over; a
// pack that would hold one but is damaged (see checkFeedPack) is
// ErrCorrupt.
func (d feedDeletes) apply(tx *bolt.Tx) error {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	feed := tx.Bucket(bucketFeed)
	top := feed.Sequence()
	c := feed.Cursor()
	type edit struct{ key, rest []byte }
	var edits []edit
	for i := 0; i < len(d); {
		k, v := seekFeed(c, d[i])
		if k == nil {
			break // an empty feed
		}
		// A damaged pack is not rewritten: what it holds is unknown.
		last, err := checkFeedPack(k, v, 0, top)
		if err != nil {
			return err
		}
		j := i
		for j < len(d) && d[j] <= last {
			j++
		}
		if j == i { // the pack ends before d[i]: no pack holds it
			i++
			continue
		}
		gone := d[i:j]
		rest := make([]byte, 0, len(v))
		for e := 0; e < len(v); e += entryLen {
			if _, found := slices.BinarySearch(gone, binary.BigEndian.Uint64(v[e+idLen:e+entryLen])); !found {
				rest = append(rest, v[e:e+entryLen]...)
			}
		}
		if len(rest) != len(v) {
			edits = append(edits, edit{bytes.Clone(k), rest})
		}
		i = j
	}
	for _, e := range edits {
		var err error
		if len(e.rest) == 0 {
			err = feed.Delete(e.key)
		} else {
			err = feed.Put(e.key, e.rest)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", bucketFeed, err)
		}
	}
	return nil
}

package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// wantChecked is wantCorrupt for damage that the store's own checks must
// find: an error that is a panic recovered on the way out of the
// transaction (an index out of range on a short pack) fails too.
func wantChecked(t *testing.T, what string, err error, path string) {
	t.Helper()
	wantCorrupt(t, what, err, path)
	if err != nil && strings.Contains(err.Error(), "(bbolt: ") {
		t.Errorf("%s: error = %v; want the damage found by a check, not by a recovered panic", what, err)
	}
}

// editBolt runs fn on the bbolt file at path in one transaction.
func editBolt(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

// setPos sets the position of entry i of pack v, a copy.
func setPos(v []byte, i int, pos uint64) []byte {
	v = bytes.Clone(v)
	binary.BigEndian.PutUint64(v[i*entryLen+idLen:], pos)
	return v
}

// movePack puts bucket b's value under key from under key to instead.
func movePack(b *bolt.Bucket, from, to []byte) error {
	v := bytes.Clone(b.Get(from))
	if err := b.Delete(from); err != nil {
		return err
	}
	return b.Put(to, v)
}

// packsStore returns a closed store of three full packs (positions 1 to
// 3*packMax, expiring an hour after t0) and its file's path.
func packsStore(t *testing.T) (dir, path string) {
	dir, _ = storeWith(t, 3*packMax)
	return dir, filepath.Join(dir, FileName)
}

// A damaged feed pack yields ErrCorrupt naming the file from every read
// that reaches it (Feed from the start and from a position inside it,
// every page of List, Range) and from Prune, which would rewrite it;
// never a panic, a wait, or a feed that passes over its entries.
func TestDamagedFeedPack(t *testing.T) {
	const top = 3 * packMax
	second := posKey(packMax + 1) // the second pack, positions 1025 to 2048
	for _, tc := range []struct {
		name  string
		edit  func(b *bolt.Bucket) error
		prune bool // Prune reaches it (it deletes the entries of the pack)
	}{
		{"value not a multiple of 40 bytes", func(b *bolt.Bucket) error {
			v := b.Get(second)
			return b.Put(second, bytes.Clone(v[:len(v)-1]))
		}, true},
		{"value of an entry and a half", func(b *bolt.Bucket) error {
			return b.Put(second, bytes.Clone(b.Get(second)[:entryLen+entryLen/2]))
		}, true},
		{"empty value", func(b *bolt.Bucket) error {
			return b.Put(second, []byte{})
		}, true},
		{"positions not increasing", func(b *bolt.Bucket) error {
			v := b.Get(second)
			return b.Put(second, setPos(setPos(v, 10, packMax+12), 11, packMax+11))
		}, true},
		{"position repeated", func(b *bolt.Bucket) error {
			return b.Put(second, setPos(b.Get(second), 11, packMax+11))
		}, true},
		{"position before its pack's key", func(b *bolt.Bucket) error {
			return b.Put(second, setPos(b.Get(second), 0, packMax))
		}, true},
		{"position above the store position", func(b *bolt.Bucket) error {
			return b.Put(second, setPos(b.Get(second), packMax-1, top+1))
		}, true},
		{"position far above the store position", func(b *bolt.Bucket) error {
			last := posKey(2*packMax + 1)
			return b.Put(last, setPos(b.Get(last), packMax-1, 1<<62))
		}, true},
		{"packs overlap", func(b *bolt.Bucket) error {
			// The first pack also holds the second's entries: read from
			// inside the second, the first pack's tail would be passed over.
			both := append(bytes.Clone(b.Get(posKey(1))), b.Get(second)...)
			if err := b.Put(posKey(1), both); err != nil {
				return err
			}
			return b.Put(second, bytes.Clone(b.Get(second)[:10*entryLen]))
		}, false},
		{"pack key of 9 bytes", func(b *bolt.Bucket) error {
			return movePack(b, second, append(bytes.Clone(second), 0))
		}, true},
		{"pack key of 7 bytes", func(b *bolt.Bucket) error {
			return movePack(b, second, bytes.Clone(second[:7]))
		}, true},
		{"pack key 0", func(b *bolt.Bucket) error {
			return movePack(b, posKey(1), posKey(0))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := packsStore(t)
			editBolt(t, path, func(tx *bolt.Tx) error { return tc.edit(tx.Bucket(bucketFeed)) })
			c := &clock{t: t0}
			s := openAt(t, dir, c)
			// A bound, not a wait: Feed of a feed that looks empty would
			// wait for a Put.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			_, err := s.Feed(ctx, 0, 10*packMax)
			wantChecked(t, "Feed from 0", err, path)
			_, err = s.Feed(ctx, packMax+20, 10*packMax)
			wantChecked(t, "Feed from inside the second pack", err, path)
			// Every page of List until one fails, from the start and from
			// inside the second pack.
			for _, cursor := range []string{"", encodeCursor(packMax + 20)} {
				q := source.ListQuery{Cursor: cursor, Limit: MaxListLimit}
				for range top {
					var next string
					if _, next, err = s.List(ctx, q); err != nil || next == "" {
						break
					}
					q.Cursor = next
				}
				wantChecked(t, "List after "+cursor, err, path)
			}
			_, err = s.Range(ctx, t0, func(authz.Record) error { return nil })
			wantChecked(t, "Range", err, path)
			if tc.prune {
				_, err = s.Prune(t0.Add(2 * time.Hour))
				wantChecked(t, "Prune", err, path)
			}
		})
	}
}

// A damaged expiry pack yields ErrCorrupt naming the file from Stats and
// Prune once they reach it (it holds expired records), never a panic or
// a prune that leaves expired records behind.
func TestDamagedExpiryPack(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(b *bolt.Bucket, keys [][]byte) error
	}{
		{"key of 15 bytes", func(b *bolt.Bucket, keys [][]byte) error {
			return movePack(b, keys[0], bytes.Clone(keys[0][:15]))
		}},
		{"key of 17 bytes", func(b *bolt.Bucket, keys [][]byte) error {
			return movePack(b, keys[1], append(bytes.Clone(keys[1]), 0))
		}},
		{"key of 4 bytes", func(b *bolt.Bucket, keys [][]byte) error {
			return movePack(b, keys[1], bytes.Clone(keys[1][:4]))
		}},
		{"value not a multiple of 40 bytes", func(b *bolt.Bucket, keys [][]byte) error {
			v := b.Get(keys[1])
			return b.Put(keys[1], bytes.Clone(v[:len(v)-1]))
		}},
		{"value of 39 bytes", func(b *bolt.Bucket, keys [][]byte) error {
			return b.Put(keys[1], bytes.Clone(b.Get(keys[1])[:entryLen-1]))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := packsStore(t)
			editBolt(t, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketExpiry)
				var keys [][]byte
				_ = b.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil })
				if len(keys) != 3 {
					t.Fatalf("%d expiry packs, want 3", len(keys))
				}
				return tc.edit(b, keys)
			})
			later := t0.Add(2 * time.Hour) // every record expired
			s := openAt(t, dir, &clock{t: later})
			_, err := s.Stats(context.Background())
			wantChecked(t, "Stats", err, path)
			_, err = s.Prune(later)
			wantChecked(t, "Prune", err, path)
		})
	}
}

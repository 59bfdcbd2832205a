package embedded

import (
	"bytes"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/audit/audittest"
)

// TestAuditConformance runs the audit trail suite on the audit bucket of a
// Store, editing the bucket directly to tamper with it.
func TestAuditConformance(t *testing.T) {
	var mu sync.Mutex
	stores := map[audit.Store]*Store{}
	dirs := map[*Store]string{}
	open := func(t *testing.T, dir string) audit.Store {
		t.Helper()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		a := s.Audit()
		mu.Lock()
		stores[a], dirs[s] = s, dir
		mu.Unlock()
		return a
	}
	storeOf := func(a audit.Store) *Store {
		mu.Lock()
		defer mu.Unlock()
		return stores[a]
	}
	audittest.Run(t, audittest.Harness{
		Open: func(t *testing.T) audit.Store { return open(t, t.TempDir()) },
		Reopen: func(t *testing.T, a audit.Store) audit.Store {
			s := storeOf(a)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			mu.Lock()
			dir := dirs[s]
			mu.Unlock()
			return open(t, dir)
		},
		// One process holds the data file: its writers share the Store.
		Another: func(_ *testing.T, a audit.Store) audit.Store { return a },
		Raw: func(t *testing.T, a audit.Store) [][]byte {
			var out [][]byte
			err := storeOf(a).db.View(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketAudit).ForEach(func(_, v []byte) error {
					out = append(out, bytes.Clone(v))
					return nil
				})
			})
			if err != nil {
				t.Fatalf("read the audit bucket: %v", err)
			}
			return out
		},
		Rewrite: func(t *testing.T, a audit.Store, data [][]byte) {
			err := storeOf(a).db.Update(func(tx *bolt.Tx) error {
				if err := tx.DeleteBucket(bucketAudit); err != nil {
					return err
				}
				b, err := tx.CreateBucket(bucketAudit)
				if err != nil {
					return err
				}
				for i, d := range data {
					if err := b.Put(posKey(uint64(i+1)), d); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("rewrite the audit bucket: %v", err)
			}
		},
	})
}

package embedded

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
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

// TestPutRecordedIsAtomic: revocations and their audit entries are stored
// together, or, when the entries cannot be appended, neither is.
func TestPutRecordedIsAtomic(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	log := audit.NewLog(s.Audit(), audit.WithNode("n"))
	entries := func(stored []authz.Record) []audit.Entry {
		var out []audit.Entry
		for _, r := range stored {
			out = append(out, log.Prepare(audit.Entry{Kind: audit.KindRevoke, Target: r.ID}))
		}
		return out
	}
	rec := authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "one", ExpiresAt: time.Now().Add(time.Hour)}
	stored, err := s.PutRecorded(ctx, []authz.Record{rec}, entries)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := log.List(ctx, audit.Query{})
	if err != nil || len(got) != 1 || got[0].Target != stored[0].ID || got[0].Node != "n" {
		t.Fatalf("List = %+v, %v; want the entry of record %s", got, err, stored[0].ID)
	}
	// A damaged head makes the append fail: the record is not stored either.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyAuditHead, []byte("{")) }); err != nil {
		t.Fatal(err)
	}
	rec.Value = "two"
	if _, err := s.PutRecorded(ctx, []authz.Record{rec}, entries); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutRecorded with a damaged audit head: %v, want ErrCorrupt", err)
	}
	found, err := s.Lookup(ctx, rec.LookupKey())
	if err != nil || len(found) != 0 {
		t.Fatalf("Lookup of the refused record = %v, %v; want nothing stored", found, err)
	}
}

// BenchmarkAuditAppend measures one audit append: one synced bbolt
// transaction.
func BenchmarkAuditAppend(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := audit.NewLog(s.Audit())
	e := audit.Entry{Kind: audit.KindRevoke, Actor: "bench", Source: "127.0.0.1:1", Target: "token https://idp jti"}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Record(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
}

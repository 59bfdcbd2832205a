package embedded

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
)

// A file of schema 1 (before lifts) opens, keeps its records, and takes
// lifts; a lift survives a reopen, and Prune drops the lift entry with the
// lifted record's expiry.
func TestSchema1UpgradesAndLiftsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	clock := time.Now()
	now := func() time.Time { return clock }
	s, err := Open(dir, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recs, err := s.Put(ctx, []authz.Record{
		{Kind: authz.KindToken, Issuer: "https://a", Value: "1", ExpiresAt: clock.Add(time.Hour)},
		{Kind: authz.KindToken, Issuer: "https://a", Value: "2", ExpiresAt: clock.Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Make it a schema 1 file: no lifts bucket.
	db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketLifts); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaV1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if s, err = Open(dir, Options{Now: now}); err != nil {
		t.Fatalf("open a schema 1 file: %v", err)
	}
	if _, err := s.Lift(ctx, recs[0].ID, "test", "mistake"); err != nil {
		t.Fatalf("lift after the upgrade: %v", err)
	}
	s.Close()
	if s, err = Open(dir, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Lookup(ctx, recs[0].LookupKey()); err != nil || len(got) != 0 {
		t.Errorf("lifted record after a reopen: %v, %v", got, err)
	}
	if st, err := s.Stats(ctx); err != nil || st.Records != 1 || st.Position != 3 {
		t.Errorf("stats after a reopen: %+v, %v; want 1 record at position 3", st, err)
	}
	clock = clock.Add(2 * time.Hour)
	if n, err := s.Prune(clock); err != nil || n != 2 {
		t.Errorf("Prune = %d, %v; want the live record and the lift entry", n, err)
	}
	if st, err := s.Stats(ctx); err != nil || st.Records != 0 || len(st.ByKind) != 0 {
		t.Errorf("stats after the prune: %+v, %v", st, err)
	}
}

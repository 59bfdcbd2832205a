package embedded

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
)

// testdata/schema2.db.gz is a data file written by the schema 2 store
// (before packs), its clock at fixtureTime:
//   - 300 token records of issuer https://a, values t000 to t299, record i
//     expiring 1+i%7 hours after fixtureTime, put 100 at a time
//     (positions 1 to 300);
//   - at 301 and 302 two subject records of alice, expiring after 24 and
//     2 hours; at 303 a key record kid-1 (3 hours), at 304 a session
//     record sess-9 (5 hours);
//   - at 305 the lift entry of kid-1.
var fixtureTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixtureDir returns a new data directory holding the schema 2 fixture.
func fixtureDir(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "schema2.db.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := os.OpenFile(filepath.Join(dir, FileName), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, z); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// withUpgradeStep sets upgradeStep for the test.
func withUpgradeStep(t *testing.T, n int) {
	old := upgradeStep
	upgradeStep = n
	t.Cleanup(func() { upgradeStep = old })
}

// feedOf returns every feed entry of s as "position id".
func feedOf(t *testing.T, s *Store) []string {
	t.Helper()
	recs, err := s.feedPage(0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("%d %s", r.Position, r.ID)
	}
	return out
}

// A schema 2 file opens as schema 3, in steps of a few entries, with every
// record, position, index entry, lift and count it had; its expiries
// still prune, and the store goes on from its position.
func TestUpgradeSchema2(t *testing.T) {
	withUpgradeStep(t, 7)
	dir := fixtureDir(t)
	c := &clock{t: fixtureTime}
	s := openAt(t, dir, c)
	ctx := context.Background()

	if err := s.view(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketMeta).Get(keyVersion)); v != schemaVersion {
			t.Errorf("schema version %q, want %q", v, schemaVersion)
		}
		if tx.Bucket(bucketFeedV2) != nil || tx.Bucket(bucketExpiryV2) != nil {
			t.Error("the schema 2 buckets are still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	feed := feedOf(t, s)
	if len(feed) != 304 {
		t.Fatalf("feed holds %d entries, want 304 (305 positions, one lifted)", len(feed))
	}
	recs, err := s.feedPage(0, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		want := uint64(i + 1)
		if i >= 302 {
			want++ // 303 was lifted
		}
		if r.Position != want {
			t.Fatalf("feed entry %d at position %d, want %d", i, r.Position, want)
		}
	}
	if !recs[303].IsLift() {
		t.Errorf("position 305 holds %+v, want the lift entry", recs[303])
	}
	for i := range 300 {
		key := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://a", Value: fmt.Sprintf("t%03d", i)}
		got, err := s.Lookup(ctx, key)
		if err != nil || len(got) != 1 || got[0].Position != uint64(i+1) {
			t.Fatalf("Lookup(%s) = %+v, %v", key.Value, got, err)
		}
	}
	if got, err := s.Lookup(ctx, authz.Record{Kind: authz.KindSubject, Issuer: "https://a", Value: "alice"}.LookupKey()); err != nil || len(got) != 2 {
		t.Errorf("Lookup(alice) = %d records, %v; want 2", len(got), err)
	}
	if got, err := s.Lookup(ctx, authz.Record{Kind: authz.KindKey, Issuer: "https://a", Value: "kid-1"}.LookupKey()); err != nil || len(got) != 0 {
		t.Errorf("Lookup(lifted kid-1) = %+v, %v; want none", got, err)
	}
	st := stats(t, s)
	if st.Records != 303 || st.Position != 305 || st.ByKind[authz.KindToken] != 300 || st.ByKind[authz.KindSubject] != 2 || st.ByKind[authz.KindSession] != 1 {
		t.Errorf("stats %+v, want 303 records (300 tokens, 2 subjects, 1 session) at 305", st)
	}

	// Three hours on: the tokens of 1 to 3 hours (i%7 < 3), alice's 2-hour
	// record, kid-1's lift entry (with kid-1's expiry) go.
	expired := 0
	for i := range 300 {
		if i%7 < 3 {
			expired++
		}
	}
	c.Set(fixtureTime.Add(3 * time.Hour))
	if st := stats(t, s); st.Records != 303-expired-1 {
		t.Errorf("stats before the prune: %d records, want %d", st.Records, 303-expired-1)
	}
	if n, err := s.Prune(c.Now()); err != nil || n != expired+2 {
		t.Errorf("Prune = %d, %v; want %d", n, err, expired+2)
	}
	if st := stats(t, s); st.Records != 303-expired-1 || st.Position != 305 {
		t.Errorf("stats after the prune: %+v, want %d records at 305", st, 303-expired-1)
	}
	if got := put(t, s, authz.Record{Kind: authz.KindToken, Issuer: "https://a", Value: "new", ExpiresAt: c.Now().Add(time.Hour)}); got[0].Position != 306 {
		t.Errorf("a new record at position %d, want 306", got[0].Position)
	}
	if _, err := s.Lift(ctx, recs[303-1].ID, "test", "mistake"); err != nil { // sess-9
		t.Errorf("lift after the upgrade: %v", err)
	}
	s.Close()
	s = openAt(t, dir, c)
	if got, err := s.Lookup(ctx, authz.LookupKey{Kind: authz.KindSession, Issuer: "https://a", Value: "sess-9"}); err != nil || len(got) != 0 {
		t.Errorf("lifted sess-9 after a reopen: %+v, %v", got, err)
	}
	if st := stats(t, s); st.Position != 307 || st.Records != 303-expired-1 {
		t.Errorf("stats after a reopen: %+v", st)
	}
}

// A schema 1 file (schema 2 without lifts) opens too.
func TestUpgradeSchema1(t *testing.T) {
	dir := fixtureDir(t)
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
	s := openAt(t, dir, &clock{t: fixtureTime})
	if got := feedOf(t, s); len(got) != 304 {
		t.Errorf("feed holds %d entries, want 304", len(got))
	}
	if st := stats(t, s); st.Records != 303 || st.Position != 305 {
		t.Errorf("stats %+v", st)
	}
}

// An upgrade stopped after any of its transactions goes on at the next
// Open and ends as one that was not stopped.
func TestUpgradeResumes(t *testing.T) {
	withUpgradeStep(t, 50)
	want := func() []string {
		s := openAt(t, fixtureDir(t), &clock{t: fixtureTime})
		return feedOf(t, s)
	}()
	stop := errors.New("stopped")
	for k := 1; k <= 6; k++ { // 305 feed entries: 7 steps of 50
		dir := fixtureDir(t)
		steps := 0
		upgradeStepped = func() error {
			if steps++; steps == k {
				return stop
			}
			return nil
		}
		_, err := Open(dir, Options{Now: func() time.Time { return fixtureTime }})
		upgradeStepped = nil
		if !errors.Is(err, stop) {
			t.Fatalf("stop after step %d: Open = %v", k, err)
		}
		s := openAt(t, dir, &clock{t: fixtureTime})
		if got := feedOf(t, s); !slices.Equal(got, want) {
			t.Errorf("stopped after step %d: feed differs from an upgrade in one go", k)
		}
		if st := stats(t, s); st.Records != 303 || st.Position != 305 {
			t.Errorf("stopped after step %d: stats %+v", k, st)
		}
		s.Close()
	}
}

// A schema 2 entry that is not one stops the upgrade with ErrCorrupt, at
// every Open: nothing is guessed.
func TestUpgradeRefusesDamagedEntries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		bucket   []byte
		key, val []byte
	}{
		{"feed key not a position", bucketFeedV2, []byte{1, 2, 3}, []byte("18ed0372c147b0b697555ce59e238b69")},
		{"feed value not an ID", bucketFeedV2, posKey(999), []byte("short")},
		{"expiry key without ID", bucketExpiryV2, putUint64(1), nil},
		{"expiry with a value", bucketExpiryV2, append(putUint64(1), "18ed0372c147b0b697555ce59e238b69"...), []byte("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixtureDir(t)
			path := filepath.Join(dir, FileName)
			writeBolt(t, path, tc.bucket, tc.key, tc.val)
			for range 2 {
				_, err := Open(dir, Options{Now: func() time.Time { return fixtureTime }})
				wantCorrupt(t, "Open", err, path)
			}
		})
	}
}

// An upgrade stopped part way leaves a file that a schema 2 release
// refuses (it opens versions 1 and 2 only): it would serve a feed and an
// expiry index missing the entries already moved into packs, and take
// positions again that the packs hold. A file stopped part way and then
// written by a schema 2 release (one stopped before the mark existed)
// keeps the greater position: no position is given twice.
func TestUpgradeStoppedPartWay(t *testing.T) {
	withUpgradeStep(t, 50)
	dir := fixtureDir(t)
	path := filepath.Join(dir, FileName)
	stop := errors.New("stopped")
	upgradeStepped = func() error { return stop }
	t.Cleanup(func() { upgradeStepped = nil })
	if _, err := Open(dir, Options{Now: func() time.Time { return fixtureTime }}); !errors.Is(err, stop) {
		t.Fatalf("stop after the first step: Open = %v", err)
	}
	upgradeStepped = nil

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketFeed).Stats().KeyN; n == 0 {
			t.Error("no feed pack after the first step")
		}
		if v := string(tx.Bucket(bucketMeta).Get(keyVersion)); v == schemaV1 || v == schemaV2 || v == schemaVersion {
			t.Errorf("version %q part way through the upgrade: a schema 2 release opens it", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A schema 2 release took 10 positions in the old feed.
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaV2)); err != nil {
			return err
		}
		return tx.Bucket(bucketFeedV2).SetSequence(315)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	c := &clock{t: fixtureTime}
	s := openAt(t, dir, c)
	if st := stats(t, s); st.Position != 315 || st.Records != 303 {
		t.Errorf("stats %+v, want 303 records at position 315", st)
	}
	if got := put(t, s, authz.Record{Kind: authz.KindToken, Issuer: "https://a", Value: "new", ExpiresAt: c.Now().Add(time.Hour)}); got[0].Position != 316 {
		t.Errorf("a new record at position %d, want 316", got[0].Position)
	}
}

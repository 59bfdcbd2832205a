package embedded

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// wantCorrupt fails unless err wraps ErrCorrupt and names path.
func wantCorrupt(t *testing.T, what string, err error, path string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("%s: error = %v; want ErrCorrupt naming %s", what, err, path)
	}
}

// storeWith creates a closed store in a fresh directory holding n records,
// and returns the directory and the records.
func storeWith(t *testing.T, n int) (string, []authz.Record) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]authz.Record, n)
	for i := range recs {
		recs[i] = token("https://idp", fmt.Sprintf("jti-%d-%s", i, strings.Repeat("x", 100)), time.Hour)
	}
	recs = put(t, s, recs...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs
}

func TestOpenCorruptFile(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"random bytes", func(t *testing.T, path string) {
			b := make([]byte, 64<<10)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"text file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("revocations: []\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"another bbolt database", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("sessions"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{"wrong schema version", func(t *testing.T, path string) {
			dir, _ := storeWith(t, 1)
			writeBolt(t, filepath.Join(dir, FileName), bucketMeta, keyVersion, []byte("99"))
			copyFile(t, filepath.Join(dir, FileName), path)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			tt.make(t, path)
			s, err := Open(dir, Options{})
			if err == nil {
				_ = s.Close()
			}
			wantCorrupt(t, "Open", err, path)
			// The lock is released: once the file is fixed, Open works.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			s, err = Open(dir, Options{OpenTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("Open after removing the corrupt file: %v", err)
			}
			_ = s.Close()
		})
	}
}

// TestTruncatedFile cuts a valid data file short. bbolt may notice it on
// Open or only when a read reaches a missing page; either way every path
// yields ErrCorrupt naming the file, and none crashes the process.
func TestTruncatedFile(t *testing.T) {
	dir, recs := storeWith(t, 3000)
	path := filepath.Join(dir, FileName)
	// The pages in use, not the file: bbolt grows a file ahead of its
	// pages (a new file's large map grows it by 16 MiB at a time).
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	_ = db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
	_ = db.Close()
	for _, size := range []int64{used / 2, used / 4, 3 * 4096, 4096 + 10, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "d")
			copyFile(t, path, filepath.Join(dst, FileName))
			if err := os.Truncate(filepath.Join(dst, FileName), size); err != nil {
				t.Fatal(err)
			}
			s, err := Open(dst, Options{Now: func() time.Time { return t0 }})
			if err != nil {
				wantCorrupt(t, "Open", err, filepath.Join(dst, FileName))
				return
			}
			defer s.Close()
			ctx := context.Background()
			_, err = s.Range(ctx, t0, func(authz.Record) error { return nil })
			wantCorrupt(t, "Range", err, filepath.Join(dst, FileName))
			var lookupErr error
			for _, r := range recs {
				if _, lookupErr = s.Lookup(ctx, r.LookupKey()); lookupErr != nil {
					break
				}
			}
			wantCorrupt(t, "Lookup of every record", lookupErr, filepath.Join(dst, FileName))
		})
	}
}

func TestRecordThatDoesNotDecode(t *testing.T) {
	dir, recs := storeWith(t, 3)
	path := filepath.Join(dir, FileName)
	bad := recs[1]
	writeBolt(t, path, bucketRecords, []byte(bad.ID), []byte("{not json"))

	s, err := Open(dir, Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatalf("Open: %v (a bad record is found when read, not on Open)", err)
	}
	defer s.Close()
	ctx := context.Background()
	_, err = s.Get(ctx, bad.ID)
	wantCorrupt(t, "Get", err, path)
	_, err = s.Lookup(ctx, bad.LookupKey())
	wantCorrupt(t, "Lookup", err, path)
	// The feed gives the records before it, then names its position, so
	// that a follower can go past it.
	if got, err := s.Feed(ctx, 0, 10); err != nil || len(got) != 1 || got[0].ID != recs[0].ID {
		t.Errorf("Feed(0) = %d records, %v; want the one before the bad record", len(got), err)
	}
	_, err = s.Feed(ctx, 1, 10)
	wantCorrupt(t, "Feed", err, path)
	var badEntry *source.BadEntryError
	if !errors.As(err, &badEntry) || badEntry.Position != recs[1].Position {
		t.Errorf("Feed(1) = %v, want a BadEntryError at position %d", err, recs[1].Position)
	}
	if got, err := s.Feed(ctx, 2, 10); err != nil || len(got) != 1 || got[0].ID != recs[2].ID {
		t.Errorf("Feed(2) = %d records, %v; want the one after the bad record", len(got), err)
	}
	_, _, err = s.List(ctx, source.ListQuery{})
	wantCorrupt(t, "List", err, path)
	_, err = s.Range(ctx, t0, func(authz.Record) error { return nil })
	wantCorrupt(t, "Range", err, path)
	_, err = s.Prune(t0.Add(2 * time.Hour))
	wantCorrupt(t, "Prune", err, path)

	// The good records stay readable.
	if got, err := s.Get(ctx, recs[0].ID); err != nil || got.ID != recs[0].ID {
		t.Errorf("Get(good record) = %+v, %v", got, err)
	}
}

// TestDamagedPages overwrites one page of a valid data file at a time with
// random bytes: reads either succeed or fail with ErrCorrupt naming the
// file; none crashes the process.
func TestDamagedPages(t *testing.T) {
	dir, recs := storeWith(t, 300)
	path := filepath.Join(dir, FileName)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := min(len(orig)/page, 80)
	r := rand.New(rand.NewPCG(3, 4))
	failed := 0
	for p := 2; p < pages; p++ {
		b := slices.Clone(orig)
		for i := p * page; i < (p+1)*page; i++ {
			b[i] = byte(r.Uint32())
		}
		dst := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		err := readAll(dst, recs)
		if err != nil {
			failed++
			wantCorrupt(t, fmt.Sprintf("page %d", p), err, dst)
		}
	}
	t.Logf("%d of %d damaged pages detected", failed, pages-2)
	if failed == 0 {
		t.Errorf("no read failed with any of %d pages damaged", pages-2)
	}
}

// readAll opens the store at path and reads every record every way.
func readAll(path string, recs []authz.Record) error {
	s, err := Open(filepath.Dir(path), Options{Now: func() time.Time { return t0 }})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Range(ctx, t0, func(authz.Record) error { return nil }); err != nil {
		return err
	}
	// feedPage, not Feed: a damaged page can make a feed look empty, and
	// Feed would wait for a Put.
	if _, err := s.feedPage(0, len(recs), nil); err != nil {
		return err
	}
	if _, err := s.Stats(ctx); err != nil {
		return err
	}
	for _, r := range recs {
		if _, err := s.Lookup(ctx, r.LookupKey()); err != nil {
			return err
		}
		if _, err := s.Get(ctx, r.ID); err != nil && !errors.Is(err, source.ErrNotFound) {
			return err
		}
	}
	return nil
}

// writeBolt sets bucket/key to val in the bbolt file at path.
func writeBolt(t *testing.T, path string, bucket, key, val []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, val) }); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

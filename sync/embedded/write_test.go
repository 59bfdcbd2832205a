package embedded

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
)

// TestPutMergesIndex: index values already stored are found and kept
// whatever lies between the keys a Put writes (a step of the cursor, a
// seek from the root, the end of the bucket, keys before the first),
// keys repeated in one Put keep every record, a batch prepared on several
// cores writes the same as one prepared on one, and all of it holds
// after a reopen.
func TestPutMergesIndex(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	s := openAt(t, dir, c)
	want := map[string]int{} // records a jti's lookup key holds
	jti := func(n int) string { return fmt.Sprintf("k%06d", n) }
	putJTIs := func(ns []int) {
		t.Helper()
		recs := make([]authz.Record, len(ns))
		for i, n := range ns {
			recs[i] = token("https://idp", jti(n), time.Hour)
			want[jti(n)]++
		}
		put(t, s, recs...)
	}
	var ns []int
	for n := 1000; n < 3000; n += 2 { // 1,000 keys over several pages
		ns = append(ns, n)
	}
	putJTIs(ns)
	putJTIs([]int{2000, 2000, 2001}) // one stored key twice, a new one between
	ns = ns[:0]
	for n := 0; len(ns) < prepareParallel+10; n++ {
		switch {
		case n < 1000: // before every stored key
		case n < 2000 && n%50 != 0: // far apart: a seek, not steps
			continue
		case n < 3000: // stored and new keys in turn
		default: // after the last
		}
		ns = append(ns, n)
	}
	ns = append(ns, 1500, 4000, 4000)
	putJTIs(ns)

	check := func(s *Store) {
		t.Helper()
		for v, n := range want {
			got, err := s.Lookup(context.Background(), authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: v})
			if err != nil || len(got) != n {
				t.Fatalf("Lookup(%s) = %d records, %v; want %d", v, len(got), err, n)
			}
		}
	}
	check(s)
	total := 0
	for _, n := range want {
		total += n
	}
	if st := stats(t, s); st.Records != total {
		t.Fatalf("%d records counted, want %d", st.Records, total)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(openAt(t, dir, c))
}

// TestPutWrittenAgain: a prepared request written in a transaction that
// is rolled back, then again (as a failed group is, call by call), stores
// each record once, whole, at the positions of the second write.
func TestPutWrittenAgain(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, token("https://idp", "before", time.Hour))
	recs := []authz.Record{token("https://idp", "a", time.Hour), token("https://idp", "b", time.Hour), token("https://idp", "a", 2*time.Hour)}
	req, err := prepareAll(recs, t0)
	if err != nil {
		t.Fatal(err)
	}
	abort := errors.New("abort")
	if err := s.update(func(tx *bolt.Tx) error {
		if err := req.write(tx); err != nil {
			return err
		}
		return abort
	}); !errors.Is(err, abort) {
		t.Fatalf("first write: %v", err)
	}
	if err := s.update(req.write); err != nil {
		t.Fatalf("second write: %v", err)
	}
	feed, err := s.Feed(context.Background(), 0, 10)
	if err != nil || len(feed) != 4 {
		t.Fatalf("Feed = %d records, %v; want 4", len(feed), err)
	}
	for i, r := range feed[1:] {
		w := req.recs[i]
		if r.ID != w.ID || r.Value != w.Value || r.Position != uint64(i+2) || w.Position != r.Position || !r.ExpiresAt.Equal(w.ExpiresAt) {
			t.Fatalf("feed record %d: %+v; want %+v at position %d", i+2, r, w, i+2)
		}
	}
	got, err := s.Lookup(context.Background(), authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: "a"})
	if err != nil || len(got) != 2 {
		t.Fatalf("Lookup(a) = %d records, %v; want 2", len(got), err)
	}
	if st := stats(t, s); st.Records != 4 {
		t.Fatalf("%d records counted, want 4", st.Records)
	}
}

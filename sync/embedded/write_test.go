package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
	req, err := prepareAll(recs, t0, 2)
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

// TestCursorGet: cursorGet answers as Bucket.Get does for keys asked in
// any order: increasing close together or far apart, repeated, going back,
// absent, before the first key and after the last, over several pages.
func TestCursorGet(t *testing.T) {
	s, _ := newStore(t)
	key := func(n int) []byte { return fmt.Appendf(nil, "k%06d", n) }
	if err := s.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("test"))
		if err != nil {
			return err
		}
		for n := 10; n < 5000; n += 3 { // gaps: absent keys between
			if err := b.Put(key(n), fmt.Appendf(nil, "v%d", n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	orders := map[string][]int{
		"increasing":             {0, 1, 10, 11, 13, 13, 16, 40, 41, 4999, 5000, 6000},
		"backwards":              {6000, 4999, 100, 13, 10, 0},
		"past the end then back": {7000, 8000, 4996, 4996, 4997},
	}
	var walk []int
	for n := 0; n < 6000; n += 1 + rnd.IntN(40) {
		walk = append(walk, n)
		if rnd.IntN(10) == 0 {
			walk = append(walk, rnd.IntN(6000)) // a jump anywhere
		}
	}
	orders["random walk"] = walk
	for name, ns := range orders {
		t.Run(name, func(t *testing.T) {
			if err := s.view(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte("test"))
				g := cursorGet{c: b.Cursor()}
				for _, n := range ns {
					k := key(n)
					if got, want := g.get(k), b.Get(k); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
						t.Fatalf("get(%s) = %q, Bucket.Get %q", k, got, want)
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFeedIDsOutOfOrder: the feed reads each record whole even when record
// IDs do not grow with positions (two Puts prepared in one order and
// committed in the other), with and without records the node enforced
// ahead.
func TestFeedIDsOutOfOrder(t *testing.T) {
	s, _ := newStore(t)
	batch := func(prefix string, n int) []authz.Record {
		recs := make([]authz.Record, n)
		for i := range recs {
			recs[i] = token("https://idp", fmt.Sprintf("%s-%d", prefix, i), time.Hour)
		}
		return recs
	}
	first, err := prepareAll(batch("first", 50), t0, 2)
	if err != nil {
		t.Fatal(err)
	}
	second, err := prepareAll(batch("second", 50), t0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if second.recs[0].ID <= first.recs[len(first.recs)-1].ID {
		t.Fatal("IDs made later do not sort later")
	}
	for _, req := range []*putRequest{second, first} {
		if err := s.commit(req); err != nil {
			t.Fatal(err)
		}
	}
	want := append(append(slices.Clone(second.recs), first.recs...), put(t, s, batch("third", 50)...)...)
	for _, known := range []func(uint64, []byte) bool{nil, func(pos uint64, _ []byte) bool { return pos%3 == 0 }} {
		got, err := s.feedPage(0, 1000, known)
		if err != nil || len(got) != len(want) {
			t.Fatalf("feed = %d records, %v; want %d", len(got), err, len(want))
		}
		for i, r := range got {
			w := want[i]
			if r.Position != uint64(i+1) || w.Position != r.Position || r.ID != w.ID {
				t.Fatalf("feed record %d: %+v, want %+v", i+1, r, w)
			}
			if r.IsAheadCopy() != (known != nil && known(r.Position, nil)) || !r.IsAheadCopy() && r.Value != w.Value {
				t.Fatalf("feed record %d: %+v (ahead copy %v), want %+v", i+1, r, r.IsAheadCopy(), w)
			}
		}
	}
}

// TestPreparePut: batches prepared in one order are stored in the order
// they are put; a put runs once; a batch the store refuses is refused
// when prepared, and nothing of it is stored.
func TestPreparePut(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	putA, err := s.PreparePut(ctx, []authz.Record{token("https://idp", "a", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	putB, err := s.PreparePut(ctx, []authz.Record{token("https://idp", "b", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := putB(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := putA(nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[0].Position != 1 || a[0].Position != 2 {
		t.Fatalf("positions b %d, a %d; want 1, 2", b[0].Position, a[0].Position)
	}
	if _, err := putA(nil); !errors.Is(err, ErrPutTwice) {
		t.Fatalf("second put: %v, want ErrPutTwice", err)
	}
	if _, err := s.PreparePut(ctx, []authz.Record{token("https://idp", "c", time.Hour), token("https://idp", "expired", -time.Hour)}); !errors.Is(err, authz.ErrInvalidRecord) {
		t.Fatalf("prepare of an expired record: %v, want ErrInvalidRecord", err)
	}
	if putNone, err := s.PreparePut(ctx, nil); err != nil {
		t.Fatal(err)
	} else if out, err := putNone(nil); out != nil || err != nil {
		t.Fatalf("put of nothing: %v, %v", out, err)
	}
	if st := stats(t, s); st.Records != 2 {
		t.Fatalf("%d records stored, want 2", st.Records)
	}
}

// TestArena: slices carved from one block do not overlap, appending to
// one cannot overwrite the next, and one larger than a block's room is
// whole.
func TestArena(t *testing.T) {
	var a arena
	var got [][]byte
	var want []string
	for i := range 3000 {
		s := fmt.Sprintf("key-%d-%s", i, strings.Repeat("x", i%50))
		switch i % 3 {
		case 0:
			got = append(got, a.copy(s))
		case 1:
			got = append(got, a.add(func(b []byte) []byte { return append(b, s...) }))
		default:
			b := a.alloc(len(s))
			copy(b, s)
			got = append(got, b)
		}
		_ = append(got[len(got)-1], "overrun"...) // must not reach the next slice
		want = append(want, s)
	}
	big := strings.Repeat("y", 2*arenaBlock)
	got = append(got, a.add(func(b []byte) []byte { return append(b, big...) }), a.copy("after"))
	want = append(want, big, "after")
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("slice %d = %.40q, want %.40q", i, got[i], want[i])
		}
	}
}

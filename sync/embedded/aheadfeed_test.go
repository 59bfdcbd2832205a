package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
)

// TestAheadFeed: the node's own follower gets the records the node
// enforced ahead as copies it does not decode, each counted once; a record
// the store holds at a remembered position under another ID (the store
// lost the node's records and took others) comes whole and is added.
func TestAheadFeed(t *testing.T) {
	s, _ := newStore(t)
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, s, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	feed := AheadFeed{Store: s, Rev: rev}
	apply := func(after uint64) []authz.Record {
		t.Helper()
		recs, err := feed.Feed(context.Background(), after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n := rev.Apply(recs...); n != len(recs) {
			t.Fatalf("applied %d of %d records", n, len(recs))
		}
		return recs
	}

	stored := put(t, s, token("i", "a", time.Hour), token("i", "b", time.Hour), token("i", "c", time.Hour))
	rev.Enforce(stored...)
	for i, r := range apply(0) {
		if r.Kind != "" || r.ID != stored[i].ID || r.Position != stored[i].Position {
			t.Errorf("record %d: %+v, want the copy of %s at %d, not decoded", i, r, stored[i].ID, stored[i].Position)
		}
	}
	if plain, err := s.Feed(context.Background(), 0, 0); err != nil || len(plain) != 3 || plain[0].Kind != authz.KindToken {
		t.Fatalf("Store.Feed: %+v, %v; want the three records whole", plain, err)
	}
	if st := rev.Filter().Stats(); st.Entries != 3 || st.Position != 3 {
		t.Fatalf("entries %d position %d; want 3, 3", st.Entries, st.Position)
	}

	// The node enforced records at 4-5 that the store no longer holds;
	// it holds others there.
	var lost []authz.Record
	for p := uint64(4); p <= 5; p++ {
		lost = append(lost, authz.Record{ID: fmt.Sprintf("%032d", p), Kind: authz.KindToken, Issuer: "i", Value: fmt.Sprint("lost", p), Position: p})
	}
	rev.Enforce(lost...)
	others := put(t, s, token("i", "d", time.Hour), token("i", "e", time.Hour))
	for i, r := range apply(3) {
		if r.Kind != authz.KindToken || r.ID != others[i].ID {
			t.Errorf("record at %d: %+v, want %s whole", r.Position, r, others[i].ID)
		}
		if !rev.Filter().MayContain(r.LookupKey().FilterKey()) {
			t.Errorf("record %s at a remembered position is not enforced", r.ID)
		}
	}
	if st := rev.Filter().Stats(); st.Entries != 7 || st.Position != 5 {
		t.Fatalf("entries %d position %d; want 7 (3, the 2 lost, the 2 others), 5", st.Entries, st.Position)
	}
}

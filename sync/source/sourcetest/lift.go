package sourcetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

func (s *suite) liftCases() []testCase {
	return []testCase{
		{"RemovesTheRecordAndFeedsTheLift", s.liftRemoves},
		{"LeavesOtherRecordsOfTheKey", s.liftLeavesOthers},
		{"UnknownExpiredOrTwice", s.liftErrors},
		{"WakesAWaitingFeed", s.liftWakesFeed},
		{"RacesAPutOfTheSameKey", s.liftRacesPut},
		{"ClampRecords", s.liftClamp},
	}
}

// lift lifts id, failing the test on error.
func lift(t testing.TB, src source.Source, id string) authz.Record {
	t.Helper()
	l, err := src.Lift(ctxT(t), id, "sourcetest", "a mistake")
	if err != nil {
		t.Fatalf("Lift(%s): %v", id, err)
	}
	return l
}

// liftRemoves: after a lift, Lookup, Get, List, Range, Stats and a built
// snapshot leave the record out, and the feed holds the lift entry at the
// next position, naming the record and carrying its key.
func (s *suite) liftRemoves(t *testing.T) {
	src := s.open(t)
	now := time.Now()
	recs := put(t, src,
		token("https://a", "1", time.Hour),
		authz.Record{Kind: authz.KindSubject, Issuer: "https://a", Value: "alice", Before: now, ExpiresAt: now.Add(time.Hour)},
		token("https://a", "2", time.Hour))
	l := lift(t, src, recs[1].ID)
	switch {
	case l.Lifts != recs[1].ID || !l.IsLift():
		t.Errorf("lift entry lifts %q, want %q", l.Lifts, recs[1].ID)
	case l.Position != 4:
		t.Errorf("lift entry at position %d, want 4", l.Position)
	case l.ID == "" || l.ID == recs[1].ID:
		t.Errorf("lift entry has ID %q, want one of its own", l.ID)
	case l.LookupKey() != recs[1].LookupKey():
		t.Errorf("lift entry carries key %+v, want %+v", l.LookupKey(), recs[1].LookupKey())
	case l.Actor != "sourcetest" || l.Reason != "a mistake" || l.CreatedAt.IsZero():
		t.Errorf("lift entry %+v lacks who, why or when", l)
	}
	if got := lookup(t, src, recs[1].LookupKey()); len(got) != 0 {
		t.Errorf("Lookup after the lift = %v, want nothing", ids(got))
	}
	if _, err := src.Get(ctxT(t), recs[1].ID); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Get of a lifted record: %v, want ErrNotFound", err)
	}
	if _, err := src.Get(ctxT(t), l.ID); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Get of a lift entry: %v, want ErrNotFound (it is not a revocation)", err)
	}
	listed, _ := listAll(t, src, source.ListQuery{})
	checkSame(t, "List after a lift", listed, []authz.Record{recs[0], recs[2]})
	ranged, pos := rangeAll(t, src, time.Now())
	if want := []string{recs[0].ID, recs[2].ID}; !slices.Equal(sortedIDs(ranged), sortedSlice(want)) || pos != 4 {
		t.Errorf("Range after a lift = %v at %d, want %v at 4", ids(ranged), pos, want)
	}
	if st := stats(t, src); st.Records != 2 || st.ByKind[authz.KindSubject] != 0 || st.Position != 4 {
		t.Errorf("Stats after a lift = %+v, want 2 token records at position 4", st)
	}
	f, err := src.Snapshot(ctxT(t), smallBloom)
	if err == nil && f.Position() >= 4 {
		// A snapshot may still flag the lifted key (a filter cannot
		// delete; the lookup then finds nothing), but holds the others.
		for _, r := range []authz.Record{recs[0], recs[2]} {
			if !f.MayContain(r.LookupKey().FilterKey()) {
				t.Errorf("Snapshot after a lift misses %s", r.Value)
			}
		}
	} else if err != nil && !errors.Is(err, source.ErrNoSnapshot) {
		t.Fatalf("Snapshot: %v", err)
	}
	feed, err := src.Feed(ctxT(t), 3, 0)
	if err != nil {
		t.Fatalf("Feed after 3: %v", err)
	}
	if len(feed) != 1 || feed[0].Lifts != recs[1].ID || feed[0].Position != 4 || feed[0].ID != l.ID {
		t.Errorf("Feed after 3 = %+v, want the lift entry at 4", feed)
	}
}

func sortedSlice(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// liftLeavesOthers: two records under one key, one lifted: Lookup still
// finds the other.
func (s *suite) liftLeavesOthers(t *testing.T) {
	src := s.open(t)
	recs := put(t, src, token("https://a", "1", time.Hour), token("https://a", "1", 2*time.Hour))
	lift(t, src, recs[0].ID)
	checkSame(t, "Lookup after lifting one of two records", lookup(t, src, recs[1].LookupKey()), recs[1:])
	lift(t, src, recs[1].ID)
	if got := lookup(t, src, recs[1].LookupKey()); len(got) != 0 {
		t.Errorf("Lookup after lifting both = %v, want nothing", ids(got))
	}
}

// liftErrors: lifting an unknown or expired ID is ErrNotFound, without a
// reason it is refused, and a second lift is ErrLifted with the first lift
// entry; none of these writes to the feed.
func (s *suite) liftErrors(t *testing.T) {
	src := s.open(t)
	recs := put(t, src, token("https://a", "1", time.Hour), token("https://a", "2", expireAfter))
	if _, err := src.Lift(ctxT(t), "0123456789abcdef0123456789abcdef", "x", "y"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Lift of an unknown ID: %v, want ErrNotFound", err)
	}
	if _, err := src.Lift(ctxT(t), recs[0].ID, "x", ""); !errors.Is(err, authz.ErrInvalidRecord) {
		t.Errorf("Lift without a reason: %v, want ErrInvalidRecord", err)
	}
	first := lift(t, src, recs[0].ID)
	again, err := src.Lift(ctxT(t), recs[0].ID, "someone else", "again")
	if !errors.Is(err, source.ErrLifted) || again.ID != first.ID {
		t.Errorf("second Lift = %+v, %v; want ErrLifted with the first lift entry %s", again, err, first.ID)
	}
	if _, err := src.Lift(ctxT(t), first.ID, "x", "y"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Lift of a lift entry: %v, want ErrNotFound", err)
	}
	eventually(t, "the short record expires", func() bool {
		_, err := src.Get(ctxT(t), recs[1].ID)
		return errors.Is(err, source.ErrNotFound)
	})
	if _, err := src.Lift(ctxT(t), recs[1].ID, "x", "y"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Lift of an expired record: %v, want ErrNotFound", err)
	}
	if st := stats(t, src); st.Position != 3 {
		t.Errorf("position %d after one lift and refused ones, want 3", st.Position)
	}
}

// liftWakesFeed: a Feed call waiting for a record returns the lift entry.
func (s *suite) liftWakesFeed(t *testing.T) {
	src := s.open(t)
	recs := put(t, src, token("https://a", "1", time.Hour))
	ch := goFeed(ctxT(t), src, 1, 0)
	s.waitFeeding(t, src, ch)
	l := lift(t, src, recs[0].ID)
	r := result(t, ch)
	if r.err != nil || len(r.recs) != 1 || r.recs[0].ID != l.ID || r.recs[0].Lifts != recs[0].ID {
		t.Errorf("waiting Feed returned %+v, %v; want the lift entry %s", r.recs, r.err, l.ID)
	}
}

// liftRacesPut: a lift and a Put of another record under the same key,
// concurrently: both happen, in some order of the feed, and the key keeps
// exactly the new record.
func (s *suite) liftRacesPut(t *testing.T) {
	src := s.open(t)
	for i := range 10 {
		old := put(t, src, token("https://a", "race", time.Hour))[0]
		var renewed authz.Record
		var wg sync.WaitGroup
		var liftErr, putErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, liftErr = src.Lift(ctxT(t), old.ID, "x", "race")
		}()
		go func() {
			defer wg.Done()
			var out []authz.Record
			if out, putErr = src.Put(ctxT(t), []authz.Record{token("https://a", "race", time.Hour)}); putErr == nil {
				renewed = out[0]
			}
		}()
		wg.Wait()
		if liftErr != nil || putErr != nil {
			t.Fatalf("round %d: Lift: %v, Put: %v", i, liftErr, putErr)
		}
		checkSame(t, "Lookup after a lift racing a Put", lookup(t, src, old.LookupKey()), []authz.Record{renewed})
		lift(t, src, renewed.ID)
	}
}

// liftClamp: a clamp record is stored, found and counted like any record,
// keeps its max age, and lifts.
func (s *suite) liftClamp(t *testing.T) {
	src := s.open(t)
	c := put(t, src, authz.Record{Kind: authz.KindClamp, Issuer: "https://a", MaxAgeSeconds: 300, Reason: "breach", ExpiresAt: time.Now().Add(time.Hour)})[0]
	// Stored under its issuer's issuer-before key, beside such records.
	kill := put(t, src, authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://a", Before: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})[0]
	got := lookup(t, src, authz.LookupKey{Kind: authz.KindIssuerBefore, Issuer: "https://a"})
	if len(got) != 2 || !slices.Equal(sortedIDs(got), sortedSlice([]string{c.ID, kill.ID})) {
		t.Fatalf("Lookup of the issuer-before key = %v, want the clamp %s and the kill switch %s", ids(got), c.ID, kill.ID)
	}
	for _, r := range got {
		if r.ID == c.ID && (r.MaxAgeSeconds != 300 || r.Kind != authz.KindClamp) {
			t.Errorf("Lookup returned the clamp as %+v, want its kind and max age", r)
		}
	}
	if st := stats(t, src); st.ByKind[authz.KindClamp] != 1 {
		t.Errorf("Stats by kind %v, want one clamp", st.ByKind)
	}
	if listed, _ := listAll(t, src, source.ListQuery{Kind: authz.KindClamp}); len(listed) != 1 {
		t.Errorf("List of clamps = %v, want one", ids(listed))
	}
	l := lift(t, src, c.ID)
	if l.MaxAgeSeconds != 300 || l.Kind != authz.KindClamp {
		t.Errorf("lift entry of a clamp %+v, want its kind and max age", l)
	}
	checkSame(t, "Lookup after lifting the clamp", lookup(t, src, c.LookupKey()), []authz.Record{kill})
}

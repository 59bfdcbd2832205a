package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

func (s *suite) expiryCases() []testCase {
	return []testCase{
		{"ExpiredRecordsAreGone", s.expiredGone},
	}
}

// expiredGone: once its ExpiresAt has passed, a record is no longer looked
// up, got, listed, ranged over or counted, by any source, pruned or not;
// the records beside it stay.
func (s *suite) expiredGone(t *testing.T) {
	src := s.open(t)
	now := time.Now()
	short := put(t, src,
		token("https://idp", "shared", expireAfter),
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: now.Add(expireAfter)},
	)
	long := put(t, src,
		token("https://idp", "shared", time.Hour),
		token("https://idp", "other", time.Hour),
	)
	key := short[0].LookupKey()
	if got := lookup(t, src, key); len(got) != 2 {
		t.Fatalf("Lookup before the expiry = %v, want 2 records", ids(got))
	}
	if st := stats(t, src); st.Records != 4 {
		t.Fatalf("Stats before the expiry = %+v, want 4 records", st)
	}
	eventually(t, "the expired record leaves Lookup", func() bool {
		return len(lookup(t, src, key)) == 1
	})
	if time.Now().Before(short[0].ExpiresAt) {
		t.Errorf("Lookup dropped a record before its ExpiresAt %v", short[0].ExpiresAt)
	}
	t.Run("Lookup", func(t *testing.T) {
		checkSame(t, "Lookup", lookup(t, src, key), long[:1])
		if got := lookup(t, src, short[1].LookupKey()); len(got) != 0 {
			t.Errorf("Lookup of an expired key record = %v", ids(got))
		}
	})
	t.Run("Get", func(t *testing.T) {
		for _, r := range short {
			eventually(t, "Get of an expired record is ErrNotFound", func() bool {
				_, err := src.Get(ctxT(t), r.ID)
				return errors.Is(err, source.ErrNotFound)
			})
		}
		if got, err := src.Get(ctxT(t), long[0].ID); err != nil || !sameRecord(got, long[0]) {
			t.Errorf("Get of an unexpired record = %+v, %v", got, err)
		}
	})
	t.Run("List", func(t *testing.T) {
		got, _ := listAll(t, src, source.ListQuery{})
		checkSame(t, "List", got, long)
		got, _ = listAll(t, src, source.ListQuery{Kind: authz.KindKey})
		checkSame(t, "List of kind key", got, nil)
		// A cursor past expired records pages on.
		page, next, err := src.List(ctxT(t), source.ListQuery{Limit: 1})
		if err != nil || next == "" {
			t.Fatalf("List(Limit 1) = %v, cursor %q, %v", ids(page), next, err)
		}
		checkSame(t, "List(Limit 1)", page, long[:1])
	})
	t.Run("Range", func(t *testing.T) {
		got, pos := rangeAll(t, src, time.Now())
		if pos != 4 || !slices.Equal(sortedIDs(got), sortedIDs(long)) {
			t.Errorf("Range = %v at %d, want %v at 4", sortedIDs(got), pos, sortedIDs(long))
		}
	})
	t.Run("Stats", func(t *testing.T) {
		st := stats(t, src)
		if st.Records != 2 || st.Position != 4 || fmt.Sprint(st.ByKind) != fmt.Sprint(map[authz.Kind]int{authz.KindToken: 2}) {
			t.Errorf("Stats = %+v, want 2 token records at position 4", st)
		}
	})
	t.Run("Snapshot", func(t *testing.T) {
		f, err := src.Snapshot(ctxT(t), smallBloom)
		switch {
		case errors.Is(err, source.ErrNoSnapshot):
		case err != nil:
			t.Errorf("Snapshot: %v", err)
		case !f.MayContain(long[1].LookupKey().FilterKey()):
			t.Error("Snapshot misses an unexpired record")
		}
	})
}

func (s *suite) closeCases() []testCase {
	return []testCase{
		{"EndsWaitingFeed", s.closeEndsFeed},
		{"CallsFailAfterClose", s.closeCallsFail},
	}
}

// closeErr fails unless err reports a closed source.
func (s *suite) closeErr(t testing.TB, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s on a closed source: no error", what)
	case s.h.ErrClosed != nil && !errors.Is(err, s.h.ErrClosed):
		t.Errorf("%s on a closed source = %v, want %v", what, err, s.h.ErrClosed)
	}
}

// closeEndsFeed: Close ends a waiting Feed with an error.
func (s *suite) closeEndsFeed(t *testing.T) {
	src := s.open(t)
	ch := goFeed(ctxT(t), src, 0, 0)
	s.waitFeeding(t, src, ch)
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := result(t, ch)
	if r.recs != nil {
		t.Errorf("Feed ended by Close returned records %v", ids(r.recs))
	}
	s.closeErr(t, "a Feed waiting at Close", r.err)
}

// closeCallsFail: every call on a closed source fails rather than hangs or
// answers; a second Close is no error.
func (s *suite) closeCallsFail(t *testing.T) {
	src := s.open(t)
	rec := put(t, src, token("https://idp", "x", time.Hour))[0]
	if err := src.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	ctx := ctxT(t)
	_, err := src.Put(ctx, []authz.Record{token("https://idp", "y", time.Hour)})
	s.closeErr(t, "Put", err)
	_, err = src.Lookup(ctx, rec.LookupKey())
	s.closeErr(t, "Lookup", err)
	_, err = src.Get(ctx, rec.ID)
	s.closeErr(t, "Get", err)
	_, err = src.Feed(ctx, 0, 0)
	s.closeErr(t, "Feed", err)
	_, err = src.Snapshot(ctx, smallBloom)
	s.closeErr(t, "Snapshot", err)
	_, err = src.Range(ctx, time.Now(), func(authz.Record) error { return nil })
	s.closeErr(t, "Range", err)
	_, _, err = src.List(ctx, source.ListQuery{})
	s.closeErr(t, "List", err)
	_, err = src.Stats(ctx)
	s.closeErr(t, "Stats", err)
}

func (s *suite) concurrencyCases() []testCase {
	return []testCase{
		{"PutFeedLookup", s.concurrent},
	}
}

// Bounds of the concurrency case.
const (
	writers         = 4
	putsPerWriter   = 15
	recordsPerPut   = 3
	lookupsByReader = 50
)

// concurrent: Puts from several goroutines, with a follower reading the
// feed and readers looking up, lose nothing and give every record one
// position: the feed returns each Put's records once, in position order.
func (s *suite) concurrent(t *testing.T) {
	src := s.open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*callTimeout)
	defer cancel()
	const total = writers * putsPerWriter * recordsPerPut

	// The follower reads until it has every record, or ctx ends.
	followed := make(chan []authz.Record, 1)
	go func() {
		var got []authz.Record
		var after uint64
		for len(got) < total {
			recs, err := src.Feed(ctx, after, 7)
			if err != nil || len(recs) == 0 {
				t.Errorf("Feed(%d) = %d records, %v", after, len(recs), err)
				break
			}
			got = append(got, recs...)
			after = recs[len(recs)-1].Position
		}
		followed <- got
	}()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var stored []authz.Record
	for w := range writers {
		wg.Go(func() {
			for i := range putsPerWriter {
				recs := tokens("https://idp", fmt.Sprintf("w%d-%d-", w, i), recordsPerPut, time.Hour)
				out, err := src.Put(ctx, recs)
				if err != nil {
					t.Errorf("writer %d: Put: %v", w, err)
					return
				}
				for j := 1; j < len(out); j++ {
					if out[j].Position <= out[j-1].Position {
						t.Errorf("writer %d: positions within a Put %v do not grow", w, positions(out))
					}
				}
				mu.Lock()
				stored = append(stored, out...)
				mu.Unlock()
			}
		})
	}
	for r := range 2 {
		wg.Go(func() {
			for i := range lookupsByReader {
				k := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: fmt.Sprintf("w%d-%d-0", (r+i)%writers, i%putsPerWriter)}
				if recs, err := src.Lookup(ctx, k); err != nil || len(recs) > 1 {
					t.Errorf("reader %d: Lookup(%v) = %v, %v", r, k.Value, ids(recs), err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := <-followed
	if t.Failed() {
		return
	}

	slices.SortFunc(stored, func(a, b authz.Record) int { return int(a.Position) - int(b.Position) })
	for i := 1; i < len(stored); i++ {
		if stored[i].Position == stored[i-1].Position {
			t.Fatalf("two records got position %d", stored[i].Position)
		}
	}
	checkSame(t, "the follower's feed", got, stored)
	if st := stats(t, src); st.Records != total || st.Position != stored[len(stored)-1].Position {
		t.Errorf("Stats = %+v, want %d records at position %d", st, total, stored[len(stored)-1].Position)
	}
}

package redis

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// TestConcurrentPutFeedLookup runs writers, feed followers and lookups at
// once: every follower must see every record exactly once, in contiguous
// position order, and every written record must be found.
func TestConcurrentPutFeedLookup(t *testing.T) {
	s, srv := newSource(t, Options{})
	writer2 := openSource(t, srv.URL(), Options{})
	const writers, perWriter, batch = 4, 25, 3
	const total = writers * perWriter * batch

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	written := make([][]authz.Record, writers)
	errs := make(chan error, 16)
	for w := range writers {
		src := s
		if w%2 == 1 {
			src = writer2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				recs := make([]authz.Record, batch)
				for j := range recs {
					recs[j] = token("https://idp", fmt.Sprintf("w%d-%d-%d", w, i, j), time.Hour)
				}
				out, err := src.Put(ctx, recs)
				if err != nil {
					errs <- err
					return
				}
				for j := 1; j < len(out); j++ {
					if out[j].Position != out[j-1].Position+1 {
						errs <- fmt.Errorf("batch positions %d, %d are not contiguous", out[j-1].Position, out[j].Position)
					}
				}
				written[w] = append(written[w], out...)
				if got, err := src.Lookup(ctx, out[0].LookupKey()); err != nil || len(got) != 1 {
					errs <- fmt.Errorf("Lookup of a just written record = %d, %v", len(got), err)
				}
			}
		}()
	}
	const followers = 3
	seen := make([][]authz.Record, followers)
	for f := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pos uint64
			for pos < total {
				recs, err := s.Feed(ctx, pos, 7)
				if err != nil {
					errs <- fmt.Errorf("follower %d: Feed(%d): %w", f, pos, err)
					return
				}
				for _, r := range recs {
					if r.Position != pos+1 {
						errs <- fmt.Errorf("follower %d: position %d after %d", f, r.Position, pos)
						return
					}
					pos = r.Position
				}
				seen[f] = append(seen[f], recs...)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := map[uint64]string{}
	for _, recs := range written {
		for _, r := range recs {
			if _, dup := want[r.Position]; dup {
				t.Errorf("position %d given twice", r.Position)
			}
			want[r.Position] = r.ID
		}
	}
	if len(want) != total {
		t.Fatalf("%d records written, want %d", len(want), total)
	}
	for f, recs := range seen {
		if len(recs) != total {
			t.Errorf("follower %d saw %d records, want %d", f, len(recs), total)
		}
		for _, r := range recs {
			if want[r.Position] != r.ID {
				t.Errorf("follower %d: position %d is %s, the writer stored %s", f, r.Position, r.ID, want[r.Position])
			}
		}
	}
	if st := stats(t, s); st.Records != total || st.Position != total {
		t.Errorf("Stats = %+v, want %d records at %d", st, total, total)
	}
}

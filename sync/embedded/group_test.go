package embedded

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// TestGroupCommit: concurrent Puts, written together in groups bounded by
// maxGroupRecords, each get their own records back, every record once,
// each call's records at consecutive positions in its own order, and the
// store holds all of them after a reopen (each Put returned only once
// durable).
func TestGroupCommit(t *testing.T) {
	defer func(n int) { maxGroupRecords = n }(maxGroupRecords)
	maxGroupRecords = 7 // groups of one to a few calls

	dir := t.TempDir()
	c := &clock{t: t0}
	s := openAt(t, dir, c)
	const callers, calls, perCall = 8, 10, 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		mu     sync.Mutex
		stored [][]authz.Record
		wg     sync.WaitGroup
	)
	errs := make(chan error, callers)
	for w := range callers {
		wg.Go(func() {
			for i := range calls {
				recs := make([]authz.Record, perCall)
				for j := range recs {
					recs[j] = token("https://idp", fmt.Sprintf("w%d-%d-%d", w, i, j), time.Hour)
				}
				out, err := s.Put(ctx, recs)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				stored = append(stored, out)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	var positions []uint64
	for _, out := range stored {
		for j, r := range out {
			if j > 0 && r.Position != out[j-1].Position+1 {
				t.Errorf("one call's records at positions %d then %d: want consecutive", out[j-1].Position, r.Position)
			}
			positions = append(positions, r.Position)
		}
	}
	slices.Sort(positions)
	const total = callers * calls * perCall
	if len(slices.Compact(positions)) != total || positions[0] != 1 || positions[len(positions)-1] != total {
		t.Fatalf("positions: %d distinct from %d to %d, want 1..%d", len(positions), positions[0], positions[len(positions)-1], total)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, c)
	feed, err := s.Feed(ctx, 0, 2*total)
	if err != nil {
		t.Fatalf("Feed after reopen: %v", err)
	}
	if len(feed) != total {
		t.Fatalf("after reopen the feed holds %d records, want %d", len(feed), total)
	}
	for _, out := range stored {
		for _, r := range out {
			got, err := s.Lookup(ctx, r.LookupKey())
			if err != nil || len(got) != 1 || got[0].ID != r.ID {
				t.Fatalf("Lookup(%s) after reopen = %v, %v; want record %s", r.LookupKey(), got, err, r.ID)
			}
		}
	}
}

// TestGroupCommitClosed: Puts queued behind a commit on a store that
// closes meanwhile fail; none hangs.
func TestGroupCommitClosed(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if _, err := s.Put(ctx, []authz.Record{token("https://idp", fmt.Sprintf("w%d-%d", w, i), time.Hour)}); err != nil {
					return // closed
				}
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := s.Put(ctx, []authz.Record{token("https://idp", "late", time.Hour)}); err == nil {
		t.Fatal("Put on a closed store succeeded")
	}
}

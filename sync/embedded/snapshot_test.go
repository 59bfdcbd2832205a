package embedded

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
)

// exactConfig sizes a filter so that false positives among a few thousand
// keys are negligible (1e-12 each).
var exactConfig = bloom.Config{Entries: 10_000, FPRate: 1e-12, DeltaEntries: 1024}

func TestSnapshot(t *testing.T) {
	s, c := newStore(t)
	var live, expired []authz.Record
	for i := range 500 {
		live = append(live,
			token("https://idp", fmt.Sprint("live-", i), time.Hour),
			authz.Record{Kind: authz.KindSubject, Issuer: "https://idp", Value: fmt.Sprint("user-", i), Before: t0, ExpiresAt: t0.Add(time.Hour)})
		expired = append(expired, token("https://idp", fmt.Sprint("gone-", i), time.Minute))
	}
	// A key with an expired and a live record stays in the filter.
	live = append(live, token("https://idp", "both", time.Hour))
	put(t, s, token("https://idp", "both", time.Minute))
	put(t, s, live...)
	put(t, s, expired...)
	c.Set(t0.Add(time.Minute))

	f, err := s.Snapshot(context.Background(), exactConfig)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if pos, want := f.Position(), stats(t, s).Position; pos != want {
		t.Errorf("snapshot Position = %d, want Stats.Position %d", pos, want)
	}
	for _, r := range live {
		if !f.MayContain(r.LookupKey().FilterKey()) {
			t.Errorf("snapshot misses live record %s %q", r.Kind, r.Value)
		}
	}
	for _, r := range expired {
		if f.MayContain(r.LookupKey().FilterKey()) {
			t.Errorf("snapshot holds expired record %s %q", r.Kind, r.Value)
		}
	}
}

func TestSnapshotPositionWithoutLiveRecords(t *testing.T) {
	s, c := newStore(t)
	put(t, s, token("i", "a", time.Second), token("i", "b", time.Second))
	c.Set(t0.Add(time.Second))
	if _, err := s.Prune(c.Now()); err != nil {
		t.Fatal(err)
	}
	f, err := s.Snapshot(context.Background(), exactConfig)
	if err != nil {
		t.Fatal(err)
	}
	if f.Position() != 2 {
		t.Errorf("Position of an empty snapshot = %d, want the store's 2", f.Position())
	}
}

func TestSnapshotErrors(t *testing.T) {
	s, _ := newStore(t)
	recs := make([]authz.Record, 2*ctxCheckEvery)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Hour)
	}
	put(t, s, recs...)
	if _, err := s.Snapshot(context.Background(), bloom.Config{}); err == nil {
		t.Error("Snapshot with a zero Config: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Snapshot(ctx, exactConfig); !errors.Is(err, context.Canceled) {
		t.Errorf("Snapshot with a canceled ctx = %v, want Canceled", err)
	}
}

// TestConcurrentUse runs writers, lookups and feed followers at once (run it
// with -race): every follower sees every position once, in order, and
// every lookup finds only records of its key.
func TestConcurrentUse(t *testing.T) {
	s, _ := newStore(t)
	const writers, perWriter = 4, 20
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < perWriter; i += 2 {
				_, err := s.Put(ctx, []authz.Record{
					token("https://idp", fmt.Sprintf("w%d", w), time.Hour),
					token("https://idp", fmt.Sprintf("w%d-%d", w, i), time.Hour),
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	total := uint64(writers * perWriter)
	for range 2 {
		wg.Go(func() {
			var after uint64
			for after < total {
				recs, err := s.Feed(ctx, after, 7)
				if err != nil {
					errs <- fmt.Errorf("feed after %d: %w", after, err)
					return
				}
				for _, r := range recs {
					if r.Position != after+1 {
						errs <- fmt.Errorf("feed gave position %d after %d", r.Position, after)
						return
					}
					after = r.Position
				}
			}
		})
	}
	for w := range 2 {
		wg.Go(func() {
			key := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: fmt.Sprintf("w%d", w)}
			for range 200 {
				recs, err := s.Lookup(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				for _, r := range recs {
					if r.LookupKey() != key {
						errs <- fmt.Errorf("lookup of %v returned %+v", key, r)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := stats(t, s); st.Records != int(total) || st.Position != total {
		t.Errorf("Stats = %+v, want %d records at position %d", st, total, total)
	}
}

package source_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/source"
)

// positionedStore is an embedded store that says where its snapshot is
// (the embedded store builds one at its newest position) and counts the
// records its feed hands out.
type positionedStore struct {
	*embedded.Store
	fed atomic.Int64
}

func (s *positionedStore) SnapshotPosition(ctx context.Context) (uint64, bool, error) {
	st, err := s.Stats(ctx)
	return st.Position, err == nil, err
}

func (s *positionedStore) PublishedSnapshot(ctx context.Context) (*bloom.Filter, bool, error) {
	f, err := s.Snapshot(ctx, smallBloom)
	return f, err == nil, err
}

func (s *positionedStore) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	recs, err := s.Store.Feed(ctx, after, limit)
	s.fed.Add(int64(len(recs)))
	return recs, err
}

// TestFollowerFarBehindLoadsTheSnapshot: a node further behind than
// ReloadLag, whose source offers a snapshot that far ahead, loads it
// instead of reading the whole feed, and enforces every record; a node
// a little behind reads the feed.
func TestFollowerFarBehindLoadsTheSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name      string
		records   int
		wantSkips uint64
	}{
		{"far behind", 3000, 1},
		{"a little behind", 400, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src := &positionedStore{Store: openStore(t, t.TempDir())}
			put(t, src, "first")
			f, err := bloom.New(smallBloom)
			if err != nil {
				t.Fatal(err)
			}
			rev, err := authz.NewRevocations(f, src, authz.DefaultRevocationConfig())
			if err != nil {
				t.Fatal(err)
			}
			cfg := source.DefaultFollowerConfig()
			cfg.Bloom, cfg.Batch, cfg.ReloadLag, cfg.FeedWait = smallBloom, 100, 1000, time.Second
			fol := source.NewFollower(src, rev, cfg, nil)
			if err := fol.Start(ctx); err != nil {
				t.Fatal(err)
			}
			var values []string
			for i := range tc.records {
				values = append(values, fmt.Sprint("v", i))
			}
			recs := put(t, src, values...)
			head := recs[len(recs)-1].Position
			src.fed.Store(0)
			done := make(chan struct{})
			go func() { defer close(done); fol.Run(ctx) }()
			defer func() { cancel(); <-done }() // no read of a store closed after the test
			waitFor(t, func() bool { return fol.Position() >= head })
			for _, v := range append(values, "first") {
				if !enforced(rev, v) {
					t.Fatalf("%s not enforced after catching up", v)
				}
			}
			if got := fol.Skips(); got != tc.wantSkips {
				t.Errorf("%d snapshot loads, want %d", got, tc.wantSkips)
			}
			if tc.wantSkips > 0 && src.fed.Load() >= int64(tc.records)/2 {
				t.Errorf("the node read %d of the %d records from the feed, want about one batch", src.fed.Load(), tc.records)
			}
		})
	}
}

// aheadCopies is a source whose feed gives every record as an
// authz.AheadCopy, as a store read for the serving node may.
type aheadCopies struct{ source.Source }

func (a aheadCopies) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	recs, err := a.Source.Feed(ctx, after, limit)
	for i := range recs {
		recs[i] = authz.AheadCopy(recs[i].ID, recs[i].Position)
	}
	return recs, err
}

// TestCatchUpRefusesAheadCopies: a new filter is never caught up from
// records without their contents: the replacement fails, and the filter
// in force keeps every record.
func TestCatchUpRefusesAheadCopies(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	put(t, st, "first")
	f, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, st, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := source.DefaultFollowerConfig()
	cfg.Bloom = smallBloom
	if err := source.NewFollower(st, rev, cfg, nil).Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The snapshot is taken before these: the catch-up must read them.
	src := &snapshotFirst{Source: aheadCopies{st}}
	fol := source.NewFollower(src, rev, cfg, nil)
	src.after = func() { put(t, st, "second", "third") }
	if err := fol.Refresh(ctx); err == nil {
		t.Fatal("caught up a new filter from records without their contents")
	}
	if !enforced(rev, "first") {
		t.Fatal("the filter in force lost a record")
	}
}

// snapshotFirst runs after once its snapshot is taken.
type snapshotFirst struct {
	source.Source
	after func()
}

func (s *snapshotFirst) Snapshot(ctx context.Context, cfg bloom.Config) (*bloom.Filter, error) {
	f, err := s.Source.Snapshot(ctx, cfg)
	if s.after != nil {
		s.after()
		s.after = nil
	}
	return f, err
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// watchedSource is a follower's Redis source that notes the positions its
// feed is read from and the records it hands out, and may run a hook when
// the follower asks where the published snapshot is (ask: the position it
// answers instead, ok false for Redis's own answer), or fail asks (as a
// Redis too busy to answer in time): all of them while hold is set, then
// failing more (counted down).
type watchedSource struct {
	*Source
	mu       sync.Mutex
	after    []uint64
	fed      int
	ask      func(n int, pos uint64, found bool) (uint64, bool)
	asked    int // looks not failed by the test
	answered int // looks Redis answered since ask was set (ask's n)
	hold     bool
	failing  int
}

func (w *watchedSource) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	recs, err := w.Source.Feed(ctx, after, limit)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.after = append(w.after, after)
	w.fed += len(recs)
	return recs, err
}

// errLookFailed is a watchedSource's failed ask.
var errLookFailed = errors.New("published snapshot position: i/o timeout (made by the test)")

func (w *watchedSource) SnapshotPosition(ctx context.Context) (uint64, bool, error) {
	pos, found, err := w.Source.SnapshotPosition(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hold || w.failing > 0 {
		if !w.hold {
			w.failing--
		}
		return 0, false, errLookFailed
	}
	w.asked++
	if w.ask != nil && err == nil {
		w.answered++ // the hook counts the looks Redis answered since it was set
		if p, ok := w.ask(w.answered, pos, found); ok {
			return p, true, nil
		}
	}
	return pos, found, err
}

// reads returns the positions the feed was read from and the records read.
func (w *watchedSource) reads() ([]uint64, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.after), w.fed
}

// skipFollower starts a follower of w reading batches of 50, ReloadLag
// 100, waiting up to wait for a snapshot.
func skipFollower(t *testing.T, w *watchedSource, wait time.Duration) (*source.Follower, *authz.Revocations) {
	t.Helper()
	f, rev := newSkipFollower(t, w, wait)
	if err := f.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return f, rev
}

// newSkipFollower is skipFollower without the start.
func newSkipFollower(t *testing.T, w *watchedSource, wait time.Duration) (*source.Follower, *authz.Revocations) {
	t.Helper()
	filter, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, w, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := source.DefaultFollowerConfig()
	cfg.Bloom, cfg.Batch, cfg.ReloadLag, cfg.SnapshotWait = smallBloom, 50, 100, wait
	return source.NewFollower(w, rev, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))), rev
}

// TestFarBehindWaitsForTheSnapshot covers a node more than ReloadLag
// behind: it waits for a snapshot far enough ahead and loads it, reading
// the feed only from the snapshot's position on; it never takes a snapshot
// not past its own position (the source telling otherwise), and reads the
// feed when none comes within SnapshotWait. Every record is enforced
// either way and the feed is never read from a position behind an earlier
// read (the node never goes backwards).
func TestFarBehindWaitsForTheSnapshot(t *testing.T) {
	// The node is at 61 (11 records, then a batch of 50) when it first asks;
	// the source's newest position is then 411.
	const head = 411
	for _, tc := range []struct {
		name string
		// wait is the follower's SnapshotWait.
		wait time.Duration
		// publishEarly publishes a snapshot at position 1, before the node
		// passes it; publishLate one at the newest position once the
		// records are written, before the node asks.
		publishEarly, publishLate bool
		// ask is the watched source's hook (s the writer's source).
		ask func(t *testing.T, s *Source, keep func([]authz.Record)) func(n int, pos uint64, found bool) (uint64, bool)
		// failLooks: the node's looks fail until the late publish is done,
		// and failLooks more.
		failLooks int
		wantSkips uint64
		wantWaits uint64
	}{
		{name: "no lease holder (nothing published): the feed at once", wait: time.Minute},
		{name: "the writes ended, only a snapshot behind the node: the feed", wait: 15 * time.Second, publishEarly: true},
		{name: "writes go on, no snapshot comes: the feed after SnapshotWait", wait: 50 * time.Millisecond, publishEarly: true, wantWaits: 1,
			ask: func(t *testing.T, s *Source, keep func([]authz.Record)) func(int, uint64, bool) (uint64, bool) {
				return func(n int, _ uint64, _ bool) (uint64, bool) {
					if n <= 200 { // the newest position moves ReloadLag/10 a look
						recs, err := s.Put(context.Background(), tokens(fmt.Sprint("more-", n), 10))
						if err != nil {
							t.Error(err)
						}
						keep(recs)
					}
					return 0, false
				}
			}},
		// It tries the load again at its looks until twice SnapshotWait,
		// then reads the feed (a wait ended in the feed) and never tries
		// that snapshot again.
		{name: "the source names a snapshot ahead but holds one behind: not taken", wait: 300 * time.Millisecond, publishEarly: true, wantWaits: 1,
			ask: func(*testing.T, *Source, func([]authz.Record)) func(int, uint64, bool) (uint64, bool) {
				return func(int, uint64, bool) (uint64, bool) { return head, true }
			}},
		{name: "published while the node waits: loaded", wait: time.Minute, publishEarly: true, wantSkips: 1,
			ask: func(t *testing.T, s *Source, keep func([]authz.Record)) func(int, uint64, bool) (uint64, bool) {
				return func(n int, _ uint64, _ bool) (uint64, bool) {
					if n == 1 { // the lease holder, once the node has seen the old snapshot
						if err := s.Publish(context.Background(), smallBloom); err != nil {
							t.Error(err)
						}
					}
					return 0, false
				}
			}},
		// Failed looks tell nothing: not that no lease holder runs, nor
		// that the writes ended. Before, the first failed look sent the
		// node back to the feed, batch after batch, until the snapshot was
		// no longer far enough ahead.
		{name: "looks fail, then the snapshot at the writes' end: loaded", wait: 1500 * time.Millisecond, publishEarly: true, publishLate: true, failLooks: 5, wantSkips: 1},
		// The published snapshot moves past SnapshotWait, never far enough
		// ahead of the node, while the writes go on: the node waits on
		// (before, it read the feed at SnapshotWait) and loads the snapshot
		// published at their end, a quarter of SnapshotWait later.
		{name: "the snapshot still moves at SnapshotWait: waits on, loads it", wait: 2 * time.Second, publishEarly: true, wantSkips: 1,
			ask: func(t *testing.T, s *Source, keep func([]authz.Record)) func(int, uint64, bool) (uint64, bool) {
				var first time.Time
				return func(n int, _ uint64, _ bool) (uint64, bool) {
					if n == 1 {
						first = time.Now()
					}
					if time.Since(first) <= 2*time.Second*5/4 {
						recs, err := s.Put(context.Background(), tokens(fmt.Sprint("more-", n), 10))
						if err != nil {
							t.Error(err)
						}
						keep(recs)
						return 62 + uint64(n), true // moving, less than ReloadLag ahead of the node at 61
					}
					if first.IsZero() { // once: the writes' last publish
						return 0, false
					}
					first = time.Time{}
					if err := s.Publish(context.Background(), smallBloom); err != nil {
						t.Error(err)
					}
					return 0, false
				}
			}},
		// A lease holder from the start (publishEarly, a snapshot behind
		// the node): without one, the node's first look could come before
		// the late publish and read the feed, as it should.
		{name: "a publish racing the load: the newer snapshot", wait: time.Minute, publishEarly: true, publishLate: true, wantSkips: 1,
			ask: func(t *testing.T, s *Source, keep func([]authz.Record)) func(int, uint64, bool) (uint64, bool) {
				return func(n int, _ uint64, _ bool) (uint64, bool) {
					if n == 1 { // between the answer and the load
						recs, err := s.Put(context.Background(), tokens("racing", 200))
						if err != nil {
							t.Error(err)
						}
						keep(recs)
						if err := s.Publish(context.Background(), smallBloom); err != nil {
							t.Error(err)
						}
					}
					return 0, false
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, srv := newSource(t, Options{})
			w := &watchedSource{Source: openSource(t, srv.URL(), Options{})}
			recs := put(t, s, tokens("early", 1)...)
			if tc.publishEarly {
				if err := s.Publish(ctxT(t), smallBloom); err != nil {
					t.Fatal(err)
				}
			}
			f, rev := skipFollower(t, w, tc.wait)
			recs = append(recs, put(t, s, tokens("step", 10)...)...)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); f.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, testTimeout, "the node reaches 11", func() bool { return f.Position() >= 11 })
			var hooked []authz.Record
			if tc.ask != nil {
				w.mu.Lock()
				w.ask = tc.ask(t, s, func(r []authz.Record) { hooked = append(hooked, r...) }) // under w.mu
				w.mu.Unlock()
			}
			w.mu.Lock()
			w.hold, w.failing = tc.failLooks > 0, tc.failLooks
			w.mu.Unlock()
			recs = append(recs, put(t, s, tokens("mass", 400)...)...) // one Put: the node wakes 400 behind
			if tc.publishLate {
				if err := s.Publish(ctxT(t), smallBloom); err != nil {
					t.Fatal(err)
				}
			}
			w.mu.Lock()
			w.hold = false
			w.mu.Unlock()
			// A load moves the position before it counts the skip: wait
			// for the counts too, then check that they are exact.
			waitFor(t, testTimeout, "the node reaches the source's newest position", func() bool {
				st, err := s.Stats(ctxT(t))
				return err == nil && f.Position() >= st.Position && f.Position() >= head &&
					f.Skips() >= tc.wantSkips && f.SnapshotWaits() >= tc.wantWaits
			})
			w.mu.Lock()
			recs = append(recs, hooked...)
			w.mu.Unlock()
			if f.Skips() != tc.wantSkips || f.SnapshotWaits() != tc.wantWaits {
				t.Errorf("skips %d, waits ended in the feed %d; want %d, %d", f.Skips(), f.SnapshotWaits(), tc.wantSkips, tc.wantWaits)
			}
			for _, r := range recs {
				if !rev.Filter().MayContain(r.LookupKey().FilterKey()) {
					t.Errorf("record %q not enforced", r.Value)
				}
			}
			after, fed := w.reads()
			if !slices.IsSorted(after) {
				t.Errorf("the feed was read from positions %v: backwards", after)
			}
			if tc.wantSkips > 0 && fed >= 400 {
				t.Errorf("read %d records from the feed with %d written behind the node: the snapshot saved nothing", fed, 400)
			}
		})
	}
}

// TestBurstWithinWaitLagIsReadAtOnce: a burst of revocations smaller than
// WaitLag (ReloadLag by default) behind a published snapshot is read from
// the feed at once: the node never stops to look for a snapshot.
func TestBurstWithinWaitLagIsReadAtOnce(t *testing.T) {
	s, srv := newSource(t, Options{})
	w := &watchedSource{Source: openSource(t, srv.URL(), Options{})}
	recs := put(t, s, tokens("early", 1)...)
	if err := s.Publish(ctxT(t), smallBloom); err != nil { // a lease holder runs
		t.Fatal(err)
	}
	f, rev := skipFollower(t, w, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, testTimeout, "the node reaches 1", func() bool { return f.Position() >= 1 })
	w.mu.Lock()
	asked := w.asked
	w.mu.Unlock()
	// 90 behind, two batches of 50: more than ReloadLag/10, less than ReloadLag.
	recs = append(recs, put(t, s, tokens("burst", 90)...)...)
	waitFor(t, testTimeout, "the node reaches the burst's end", func() bool { return f.Position() >= recs[len(recs)-1].Position })
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.asked != asked || f.Skips() != 0 || f.SnapshotWaits() != 0 {
		t.Fatalf("snapshot looks %d, skips %d, waits %d during the burst; want none", w.asked-asked, f.Skips(), f.SnapshotWaits())
	}
	for _, r := range recs {
		if !rev.Filter().MayContain(r.LookupKey().FilterKey()) {
			t.Fatalf("record %d not enforced", r.Position)
		}
	}
}

// TestFeedAfterWaitStillLoadsFarSnapshot: a node whose wait ended in the
// feed (no snapshot came within SnapshotWait while the writes went on)
// still loads, after a full batch, a snapshot published later more than
// ReloadLag ahead of it, without waiting; before, it read the whole feed.
func TestFeedAfterWaitStillLoadsFarSnapshot(t *testing.T) {
	s, srv := newSource(t, Options{})
	w := &watchedSource{Source: openSource(t, srv.URL(), Options{})}
	recs := put(t, s, tokens("early", 1)...)
	if err := s.Publish(ctxT(t), smallBloom); err != nil { // a lease holder runs
		t.Fatal(err)
	}
	f, rev := skipFollower(t, w, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, testTimeout, "the node reaches 1", func() bool { return f.Position() >= 1 })
	var hooked []authz.Record
	published := false
	w.mu.Lock()
	w.ask = func(n int, _ uint64, _ bool) (uint64, bool) { // in the node's goroutine
		switch {
		case f.SnapshotWaits() == 0 && n <= 400: // the writes go on, nothing published
			r, err := s.Put(context.Background(), tokens(fmt.Sprint("more-", n), 10))
			if err != nil {
				t.Error(err)
			}
			hooked = append(hooked, r...)
		case !published: // after the wait: more writes, then a snapshot at their end
			r, err := s.Put(context.Background(), tokens("late", 1000))
			if err != nil {
				t.Error(err)
			}
			hooked = append(hooked, r...)
			if err := s.Publish(context.Background(), smallBloom); err != nil {
				t.Error(err)
			}
			published = true
		}
		return 0, false
	}
	w.mu.Unlock()
	recs = append(recs, put(t, s, tokens("mass", 400)...)...)
	waitFor(t, testTimeout, "the node reaches the source's newest position", func() bool {
		st, err := s.Stats(ctxT(t))
		w.mu.Lock()
		defer w.mu.Unlock()
		return err == nil && published && f.Position() >= st.Position && f.Skips() >= 1 // counted after the load
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	recs = append(recs, hooked...)
	if f.SnapshotWaits() != 1 || f.Skips() != 1 {
		t.Errorf("waits ended in the feed %d, skips %d; want 1, 1", f.SnapshotWaits(), f.Skips())
	}
	for _, r := range recs {
		if !rev.Filter().MayContain(r.LookupKey().FilterKey()) {
			t.Errorf("record %q not enforced", r.Value)
		}
	}
	if !slices.IsSorted(w.after) {
		t.Errorf("the feed was read from positions %v: backwards", w.after)
	}
	if w.fed >= len(recs) {
		t.Errorf("read %d records from the feed of %d: the snapshot saved nothing", w.fed, len(recs))
	}
}

// TestStartingNodeReadsOnWhenLooksFail: a node starting far behind, whose
// looks at the published snapshot fail, reads the feed on: it does not wait
// (only a node that enforces already does), however long SnapshotWait.
func TestStartingNodeReadsOnWhenLooksFail(t *testing.T) {
	s, srv := newSource(t, Options{})
	w := &watchedSource{Source: openSource(t, srv.URL(), Options{}), hold: true}
	recs := put(t, s, tokens("early", 1)...)
	if err := s.Publish(ctxT(t), smallBloom); err != nil {
		t.Fatal(err)
	}
	recs = append(recs, put(t, s, tokens("mass", 400)...)...)
	f, rev := newSkipFollower(t, w, time.Hour)
	started := make(chan error, 1)
	go func() { started <- f.Start(context.Background()) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatalf("Start still running after %v: the starting node waits for a snapshot its looks cannot see", testTimeout)
	}
	if f.Position() < recs[len(recs)-1].Position {
		t.Fatalf("started at %d, want %d", f.Position(), recs[len(recs)-1].Position)
	}
	for _, r := range recs {
		if !rev.Filter().MayContain(r.LookupKey().FilterKey()) {
			t.Fatalf("record %d not enforced", r.Position)
		}
	}
}

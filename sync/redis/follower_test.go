package redis

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// newFollower returns a follower of s over a fresh filter, not started.
func newFollower(t *testing.T, s *Source) (*source.Follower, *authz.Revocations) {
	t.Helper()
	return newFollowerLogging(t, s, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newFollowerLogging is newFollower logging to log.
func newFollowerLogging(t *testing.T, s *Source, log *slog.Logger) (*source.Follower, *authz.Revocations) {
	t.Helper()
	filter, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, s, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := source.DefaultFollowerConfig()
	cfg.Bloom = smallBloom
	cfg.Batch = 50
	return source.NewFollower(s, rev, cfg, log), rev
}

// TestFollowerFollowsRedis runs the real follower against the source: it
// starts with no snapshot published, follows new revocations, and after
// falling behind the retained feed reloads a snapshot and catches up.
func TestFollowerFollowsRedis(t *testing.T) {
	s, srv := newSource(t, Options{})
	writer := openSource(t, srv.URL(), Options{FeedRetention: 10}) // the writer trims
	early := put(t, writer, tokens("early", 3)...)

	f, rev := newFollower(t, s)
	if err := f.Start(ctxT(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if f.Position() != 3 || !rev.Ready() {
		t.Fatalf("after Start: position %d, ready %v; want 3, true", f.Position(), rev.Ready())
	}
	checkHolds(t, rev.Filter(), early)

	// run runs the follower until the returned stop is called.
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); f.Run(ctx) }()
		return func() { cancel(); <-done }
	}
	stop := run()

	later := put(t, writer, tokens("later", 2)...)
	waitFor(t, 5*time.Second, "the follower applies new records", func() bool { return f.Position() == 5 })
	checkHolds(t, rev.Filter(), later)

	// Stop following, let the feed move on past its retention, follow again.
	stop()
	var burst []authz.Record
	for range 3 {
		burst = append(burst, put(t, writer, tokens("burst", 100)...)...)
	}
	stop = run()
	defer stop()
	// Refresh moves the position before reload counts it: wait for both.
	waitFor(t, 10*time.Second, "the follower reloads a snapshot and catches up past the trimmed feed", func() bool {
		return f.Position() == 305 && f.Reloads() > 0
	})
	checkHolds(t, rev.Filter(), append(early, append(later, burst...)...))
}

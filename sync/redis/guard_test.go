package redis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
)

// runFollower runs f until the test ends.
func runFollower(t *testing.T, f *source.Follower) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// subject returns a subject revocation of sub for tokens issued until now.
func subject(sub string) authz.Record {
	now := time.Now()
	return authz.Record{Kind: authz.KindSubject, Issuer: "https://idp", Value: sub, Before: now, Reason: "test", ExpiresAt: now.Add(time.Hour)}
}

// TestRedisLostItsDataLookupRefuses reproduces a node asked to confirm a
// subject revocation after Redis lost its data: it must not answer "no
// record" (which the node would cache and allow), but fail, so that the
// node denies what it cannot confirm; and its follower reports the source
// diverged without waiting for the feed's next read.
func TestRedisLostItsDataLookupRefuses(t *testing.T) {
	tests := []struct {
		name string
		// lose makes Redis lose its data, as seen by writer.
		lose func(t *testing.T, writer *Source, flush func())
	}{
		{"FLUSHALL", func(t *testing.T, _ *Source, flush func()) { flush() }},
		{"FLUSHALL, then refilled past the node", func(t *testing.T, writer *Source, flush func()) {
			flush()
			put(t, writer, tokens("after", 5)...) // seq is ahead of the node again
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := newSource(t, Options{})
			writer := openSource(t, srv.URL(), Options{})
			put(t, writer, tokens("before", 2)...)
			f, _ := newFollower(t, s)
			if err := f.Start(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			runFollower(t, f)
			rec := put(t, writer, subject("alice"))[0]
			waitFor(t, 10*time.Second, "the follower applies the revocation", func() bool { return f.Position() == rec.Position })
			waitBlocked(t, srv) // the follower waits in its next feed read

			c := client(t, srv)
			tt.lose(t, writer, func() {
				if err := c.FlushAll(ctxT(t)).Err(); err != nil {
					t.Fatal(err)
				}
			})
			recs, err := s.Lookup(ctxT(t), rec.LookupKey())
			if !errors.Is(err, ErrPositionAhead) {
				t.Fatalf("Lookup after Redis lost its data = %v, %v; want ErrPositionAhead", ids(recs), err)
			}
			// The Lookup woke the follower's feed read: no need to wait for
			// its five-second slice, let alone its thirty-second step.
			waitFor(t, 3*time.Second, "the follower reports the source diverged", f.Diverged)
			// It stays so: nothing answers from the emptied Redis.
			if _, err := s.Lookup(ctxT(t), rec.LookupKey()); !errors.Is(err, ErrPositionAhead) {
				t.Errorf("second Lookup = %v, want ErrPositionAhead", err)
			}
			if _, err := s.Feed(ctxT(t), f.Position(), 0); !errors.Is(err, ErrPositionAhead) {
				t.Errorf("Feed = %v, want ErrPositionAhead", err)
			}
		})
	}
}

// TestRedisLostItsDataNodeRestarts: a node that starts from its own
// snapshot onto a Redis that lost its data reports it at once and refuses
// to confirm from it.
func TestRedisLostItsDataNodeRestarts(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	writer := openSource(t, srv.URL(), Options{})
	rec := put(t, writer, subject("alice"))[0]

	newNode := func() (*Source, *source.Follower) {
		t.Helper()
		s := openSource(t, srv.URL(), Options{})
		filter, err := bloom.New(smallBloom)
		if err != nil {
			t.Fatal(err)
		}
		rev, err := authz.NewRevocations(filter, s, authz.DefaultRevocationConfig())
		if err != nil {
			t.Fatal(err)
		}
		cfg := source.DefaultFollowerConfig()
		cfg.Bloom, cfg.DataDir = smallBloom, dir
		f := source.NewFollower(s, rev, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := f.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return s, f
	}
	_, f := newNode()
	if f.Position() != rec.Position || f.Diverged() {
		t.Fatalf("first start: position %d, diverged %v", f.Position(), f.Diverged())
	}
	if err := f.SaveSnapshot(); err != nil {
		t.Fatal(err)
	}
	if err := client(t, srv).FlushAll(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}

	s, f := newNode()
	if !f.Diverged() {
		t.Error("a node started from its snapshot onto an emptied Redis does not report it diverged")
	}
	if recs, err := s.Lookup(ctxT(t), rec.LookupKey()); !errors.Is(err, ErrPositionAhead) {
		t.Errorf("Lookup = %v, %v; want ErrPositionAhead", ids(recs), err)
	}
}

// TestLookupOnAFreshRedis: a Redis that never held anything is not one that
// lost data: lookups answer, and the first Put's epoch is adopted.
func TestLookupOnAFreshRedis(t *testing.T) {
	s, srv := newSource(t, Options{})
	key := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: "x"}
	if recs := lookup(t, s, key); len(recs) != 0 {
		t.Fatalf("Lookup on an empty Redis = %v", ids(recs))
	}
	writer := openSource(t, srv.URL(), Options{})
	r := put(t, writer, token("https://idp", "x", time.Hour))[0]
	if recs := lookup(t, s, key); len(recs) != 1 || recs[0].ID != r.ID {
		t.Fatalf("Lookup after the first Put = %v, want %s", ids(recs), r.ID)
	}
	put(t, writer, token("https://idp", "y", time.Hour))
	if recs := lookup(t, s, key); len(recs) != 1 {
		t.Fatalf("Lookup after another Put = %v", ids(recs))
	}
}

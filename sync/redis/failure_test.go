package redis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
)

// downTimeout bounds each call made while Redis is down: they must fail,
// not hang (the bound keeps a hanging call from hanging the test).
const downTimeout = 3 * time.Second

// callsWhileDown makes every kind of call against a stopped Redis and
// fails the test for any that does not return an error.
func callsWhileDown(t *testing.T, s *Source, key authz.LookupKey) {
	t.Helper()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Put", func(ctx context.Context) error {
			_, err := s.Put(ctx, []authz.Record{token("https://idp", "while-down", time.Hour)})
			return err
		}},
		{"Lookup", func(ctx context.Context) error { _, err := s.Lookup(ctx, key); return err }},
		{"Feed", func(ctx context.Context) error { _, err := s.Feed(ctx, 0, 0); return err }},
		{"Stats", func(ctx context.Context) error { _, err := s.Stats(ctx); return err }},
		{"Snapshot", func(ctx context.Context) error { _, err := s.Snapshot(ctx, smallBloom); return err }},
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "0123456789abcdef0123456789abcdef"); return err }},
	}
	for _, c := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), downTimeout)
		err := c.call(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s with Redis down succeeded", c.name)
		}
	}
}

func TestRedisDownAndBackKeepsAcknowledgedRecords(t *testing.T) {
	s, srv := newSource(t, Options{}, redistest.Persistent())
	acked := put(t, s, token("https://idp", "before", time.Hour), token("https://idp", "before-2", time.Hour))
	srv.Stop() // a crash: SIGKILL

	callsWhileDown(t, s, acked[0].LookupKey())

	srv.Restart()
	waitUp(t, s)
	for _, r := range acked {
		if got := lookup(t, s, r.LookupKey()); len(got) != 1 || got[0].ID != r.ID {
			t.Errorf("after the restart Lookup(%s) = %v, want the acknowledged %s", r.Value, ids(got), r.ID)
		}
	}
	recs, err := s.Feed(ctxT(t), 0, 0)
	if err != nil || !slices.Equal(ids(recs), ids(acked)) {
		t.Errorf("after the restart Feed(0) = %v, %v; want %v", ids(recs), err, ids(acked))
	}
	if more := put(t, s, token("https://idp", "after", time.Hour)); more[0].Position != 3 {
		t.Errorf("first Put after the restart got position %d, want 3", more[0].Position)
	}
}

func TestNewWhileRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	if _, err := Open(ctxT(t), srv.URL(), Options{}); err == nil || !containsAddr(err, srv.Addr()) {
		t.Errorf("Open with Redis down = %v, want an error naming %s", err, srv.Addr())
	}
	s, err := New(srv.URL(), Options{})
	if err != nil {
		t.Fatalf("New with Redis down: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	key := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: "x"}
	callsWhileDown(t, s, key)

	srv.Restart()
	waitUp(t, s)
	r := put(t, s, token("https://idp", "x", time.Hour))[0]
	if got := lookup(t, s, key); len(got) != 1 || got[0].ID != r.ID {
		t.Errorf("once Redis is up Lookup = %v, want %s", ids(got), r.ID)
	}
}

func containsAddr(err error, addr string) bool {
	return err != nil && strings.Contains(err.Error(), addr)
}

// waitUp waits until s reaches its Redis again: after many failed dials the
// client probes Redis about once a second before it dials for calls again.
func waitUp(t *testing.T, s *Source) {
	t.Helper()
	waitFor(t, 10*time.Second, "the source reaches the restarted Redis", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return s.Ping(ctx) == nil
	})
}

func TestRedisLostItsDataFeedSaysAhead(t *testing.T) {
	s, srv := newSource(t, Options{}) // no persistence
	put(t, s, token("https://idp", "a", time.Hour), token("https://idp", "b", time.Hour))
	srv.Restart() // comes back empty
	if _, err := s.Feed(ctxT(t), 2, 0); !errors.Is(err, ErrPositionAhead) {
		t.Errorf("Feed(2) from a Redis that lost its data = %v, want ErrPositionAhead", err)
	}
}

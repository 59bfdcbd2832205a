package redis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
)

// testTimeout bounds every single call of a test.
const testTimeout = 10 * time.Second

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newSource starts a Redis and opens a source on it, closed at the end.
func newSource(t testing.TB, opts Options, start ...redistest.Option) (*Source, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t, start...)
	return openSource(t, srv.URL(), opts), srv
}

// openSource opens a source on url, closed at the end of the test.
func openSource(t testing.TB, url string, opts Options) *Source {
	t.Helper()
	s, err := Open(ctxT(t), url, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// token returns a token record expiring ttl from now.
func token(iss, jti string, ttl time.Duration) authz.Record {
	return authz.Record{Kind: authz.KindToken, Issuer: iss, Value: jti, Reason: "test", ExpiresAt: time.Now().Add(ttl)}
}

func put(t testing.TB, s *Source, recs ...authz.Record) []authz.Record {
	t.Helper()
	out, err := s.Put(ctxT(t), recs)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return out
}

func ids(recs []authz.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func positions(recs []authz.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

func stats(t testing.TB, s *Source) source.Stats {
	t.Helper()
	st, err := s.Stats(ctxT(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func lookup(t testing.TB, s *Source, k authz.LookupKey) []authz.Record {
	t.Helper()
	recs, err := s.Lookup(ctxT(t), k)
	if err != nil {
		t.Fatalf("Lookup(%v): %v", k, err)
	}
	return recs
}

// client returns a plain client of srv, for looking at keys directly.
func client(t testing.TB, srv *redistest.Server) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestPutReplayStoresOnce(t *testing.T) {
	s, srv := newSource(t, Options{})
	put(t, s, token("https://idp", "first", time.Hour))
	b, err := s.prepare([]authz.Record{token("https://idp", "a", time.Hour), token("https://idp", "b", time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.store(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	// A retry of the same batch (its answer lost on the way back).
	again, err := s.store(ctxT(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(positions(first), []uint64{2, 3}) || !slices.Equal(positions(again), positions(first)) {
		t.Errorf("positions = %v then %v, want [2 3] both times", positions(first), positions(again))
	}
	// One entry per Put: the first, and the batch of two once.
	if n := client(t, srv).XLen(ctxT(t), s.k.feed()).Val(); n != 2 {
		t.Errorf("feed holds %d entries, want 2", n)
	}
	if st := stats(t, s); st.Position != 3 || st.Records != 3 {
		t.Errorf("Stats = %+v, want 3 records at position 3", st)
	}
}

func TestPrefixesKeepSourcesApart(t *testing.T) {
	a, srv := newSource(t, Options{})
	b := openSource(t, srv.URL(), Options{Prefix: "{tenant-b}:"})
	r := put(t, a, token("https://idp", "x", time.Hour))[0]
	if recs := lookup(t, b, r.LookupKey()); len(recs) != 0 {
		t.Errorf("source with another prefix sees %+v", recs)
	}
	if st := stats(t, b); st.Position != 0 {
		t.Errorf("source with another prefix is at position %d", st.Position)
	}
	keys := client(t, srv).Keys(ctxT(t), "*").Val()
	for _, k := range keys {
		if !strings.HasPrefix(k, DefaultPrefix) {
			t.Errorf("key %q outside the prefix %s", k, DefaultPrefix)
		}
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts Options
		want string
	}{
		{"no address at all", "", Options{}, "no URL"},
		{"not a redis URL", "http://127.0.0.1:1", Options{}, "URL"},
		{"password not echoed", "ftp://user:s3cret@127.0.0.1:1", Options{}, "xxxxx"},
		{"prefix without hash tag", "redis://127.0.0.1:1", Options{Prefix: "jwtguard:"}, "hash tag"},
		{"empty hash tag", "redis://127.0.0.1:1", Options{Prefix: "{}:"}, "hash tag"},
		{"sentinel without addresses", "", Options{SentinelMaster: "m"}, "SentinelAddrs"},
		{"sentinel and cluster", "", Options{SentinelMaster: "m", SentinelAddrs: []string{"a:1"}, ClusterAddrs: []string{"b:1"}}, "not both"},
		{"cluster with a database", "redis://127.0.0.1:1/3", Options{ClusterAddrs: []string{"b:1"}}, "database 0"},
		{"negative retention", "redis://127.0.0.1:1", Options{FeedRetention: -1}, "FeedRetention"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.url, tt.opts)
			if err == nil {
				_ = s.Close()
				t.Fatalf("New succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("New error %q, want it to contain %q (and no password)", err, tt.want)
			}
		})
	}
}

func TestNewAcceptsURLForms(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts Options
		addr string
	}{
		{"plain", "redis://127.0.0.1:7001/2", Options{}, "127.0.0.1:7001"},
		{"acl and tls", "rediss://user:pw@127.0.0.1:7002/0", Options{}, "127.0.0.1:7002"},
		{"sentinel", "", Options{SentinelMaster: "m", SentinelAddrs: []string{"127.0.0.1:26379", "127.0.0.1:26380"}}, "127.0.0.1:26379,127.0.0.1:26380"},
		{"cluster", "redis://:pw@ignored:1", Options{ClusterAddrs: []string{"127.0.0.1:7000"}}, "127.0.0.1:7000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.url, tt.opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			if s.Addr() != tt.addr {
				t.Errorf("Addr = %q, want %q", s.Addr(), tt.addr)
			}
		})
	}
}

// TestReadsByTheSourceClock: every read decides expiry by Options.Now, as
// the embedded store does, even while Redis still holds the record.
func TestReadsByTheSourceClock(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, _ := newSource(t, Options{Now: clock})
	// Whole milliseconds: Stats counts by the expiries of the sorted sets,
	// which Redis keeps in milliseconds (rounded up).
	exp := now.Add(time.Hour).Truncate(time.Millisecond)
	r := put(t, s, authz.Record{Kind: authz.KindKey, Value: "k", ExpiresAt: exp})[0]
	if _, err := s.Get(ctxT(t), r.ID); err != nil {
		t.Fatalf("Get before the expiry: %v", err)
	}
	mu.Lock()
	now = r.ExpiresAt
	mu.Unlock()
	if _, err := s.Get(ctxT(t), r.ID); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Get at the record's expiry = %v, want ErrNotFound", err)
	}
	if recs := lookup(t, s, r.LookupKey()); len(recs) != 0 {
		t.Errorf("Lookup at the record's expiry = %v", ids(recs))
	}
	if recs, _, err := s.List(ctxT(t), source.ListQuery{}); err != nil || len(recs) != 0 {
		t.Errorf("List at the record's expiry = %v, %v", ids(recs), err)
	}
	if st := stats(t, s); st.Records != 0 {
		t.Errorf("Stats at the record's expiry = %+v", st)
	}
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
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

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestPutAssignsIDPositionCreatedAt(t *testing.T) {
	s, _ := newSource(t, Options{})
	created := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	in := []authz.Record{
		token("https://idp", "a", time.Hour),
		{Kind: authz.KindSubject, Value: "alice", Before: time.Now(), CreatedAt: created, ExpiresAt: time.Now().Add(time.Hour)},
		{Kind: authz.KindKey, Value: "kid-1", ID: "caller-id", Position: 99, ExpiresAt: time.Now().Add(time.Hour)},
	}
	before := time.Now()
	out := put(t, s, in...)
	if len(out) != len(in) {
		t.Fatalf("Put returned %d records, want %d", len(out), len(in))
	}
	seen := map[string]bool{}
	for i, r := range out {
		if !hexID.MatchString(r.ID) || seen[r.ID] {
			t.Errorf("record %d: ID %q is not a fresh 32-digit hex ID", i, r.ID)
		}
		seen[r.ID] = true
		if want := uint64(i + 1); r.Position != want {
			t.Errorf("record %d: Position = %d, want %d", i, r.Position, want)
		}
		got, err := s.Get(ctxT(t), r.ID)
		if err != nil {
			t.Fatalf("Get(%s): %v", r.ID, err)
		}
		if got.Position != r.Position || got.ID != r.ID || !got.ExpiresAt.Equal(r.ExpiresAt) || !got.CreatedAt.Equal(r.CreatedAt) {
			t.Errorf("Get(%s) = %+v, want %+v", r.ID, got, r)
		}
	}
	if out[0].CreatedAt.Before(before) {
		t.Errorf("zero CreatedAt became %v, want the time of Put", out[0].CreatedAt)
	}
	if !out[1].CreatedAt.Equal(created) {
		t.Errorf("given CreatedAt became %v, want it kept (%v)", out[1].CreatedAt, created)
	}
	if in[0].ID != "" || !in[0].CreatedAt.IsZero() {
		t.Errorf("Put modified its input: %+v", in[0])
	}
	if more := put(t, s, token("https://idp", "b", time.Hour)); more[0].Position != 4 {
		t.Errorf("next Put got position %d, want 4", more[0].Position)
	}
}

func TestPutValidationIsAllOrNothing(t *testing.T) {
	s, _ := newSource(t, Options{})
	good := token("https://idp", "good", time.Hour)
	tests := []struct {
		name string
		bad  authz.Record
	}{
		{"unknown kind", authz.Record{Kind: "nope", Value: "x", ExpiresAt: time.Now().Add(time.Hour)}},
		{"missing expiry", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "v"}},
		{"expired", token("https://idp", "old", -time.Second)},
		{"expires before created", authz.Record{Kind: authz.KindKey, Value: "k", CreatedAt: time.Now().Add(2 * time.Hour), ExpiresAt: time.Now().Add(time.Hour)}},
		{"issuer-before with value", authz.Record{Kind: authz.KindIssuerBefore, Issuer: "i", Value: "v", Before: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(ctxT(t), []authz.Record{good, tt.bad})
			if !errors.Is(err, authz.ErrInvalidRecord) {
				t.Fatalf("Put = %v, want an error wrapping ErrInvalidRecord", err)
			}
			if !strings.Contains(err.Error(), "record 1") {
				t.Errorf("error %q does not name record 1", err)
			}
			if st := stats(t, s); st.Position != 0 || st.Records != 0 {
				t.Errorf("after a refused Put, Stats = %+v, want nothing stored", st)
			}
			if recs := lookup(t, s, good.LookupKey()); len(recs) != 0 {
				t.Errorf("the valid record of a refused batch is stored: %+v", recs)
			}
		})
	}
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
	if n := client(t, srv).XLen(ctxT(t), s.k.feed()).Val(); n != 3 {
		t.Errorf("feed holds %d entries, want 3", n)
	}
	if st := stats(t, s); st.Position != 3 || st.Records != 3 {
		t.Errorf("Stats = %+v, want 3 records at position 3", st)
	}
}

func TestLookup(t *testing.T) {
	s, _ := newSource(t, Options{})
	now := time.Now()
	recs := put(t, s,
		token("https://a", "jti-1", time.Hour),
		token("https://a", "jti-1", 2*time.Hour), // a second record under the same key
		token("https://b", "jti-1", time.Hour),
		authz.Record{Kind: authz.KindSubject, Issuer: "https://a", Value: "alice", Before: now, ExpiresAt: now.Add(time.Hour)},
		authz.Record{Kind: authz.KindSession, Issuer: "https://a", Value: "sid:1", ExpiresAt: now.Add(time.Hour)},
		authz.Record{Kind: authz.KindToken, Issuer: "https://a", Value: "odd : value%20 {x}", ExpiresAt: now.Add(time.Hour)},
	)
	tests := []struct {
		name string
		key  authz.LookupKey
		want []string
	}{
		{"two records under one key", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://a", Value: "jti-1"}, ids(recs[0:2])},
		{"another issuer", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://b", Value: "jti-1"}, ids(recs[2:3])},
		{"subject is found by value alone", recs[3].LookupKey(), ids(recs[3:4])},
		{"session", authz.LookupKey{Kind: authz.KindSession, Issuer: "https://a", Value: "sid:1"}, ids(recs[4:5])},
		{"value with separators and braces", recs[5].LookupKey(), ids(recs[5:6])},
		{"unknown value", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://a", Value: "jti-2"}, nil},
		{"same value, other kind", authz.LookupKey{Kind: authz.KindSession, Issuer: "https://a", Value: "jti-1"}, nil},
		{"escaping is not ambiguous", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://a:jti-1", Value: ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(lookup(t, s, tt.key))
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("Lookup = %v, want %v", got, want)
			}
		})
	}
}

func TestGetUnknown(t *testing.T) {
	s, _ := newSource(t, Options{})
	for _, id := range []string{"0123456789abcdef0123456789abcdef", "", "../x"} {
		if _, err := s.Get(ctxT(t), id); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func TestStats(t *testing.T) {
	s, _ := newSource(t, Options{})
	if st := stats(t, s); st.Records != 0 || st.Position != 0 || len(st.ByKind) != 0 {
		t.Errorf("empty source: Stats = %+v", st)
	}
	now := time.Now()
	put(t, s,
		token("https://a", "1", time.Hour),
		token("https://a", "2", time.Hour),
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: now.Add(time.Hour)},
	)
	put(t, s, authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://a", Before: now, ExpiresAt: now.Add(time.Hour)})
	st := stats(t, s)
	want := map[authz.Kind]int{authz.KindToken: 2, authz.KindKey: 1, authz.KindIssuerBefore: 1}
	if st.Records != 4 || st.Position != 4 || fmt.Sprint(st.ByKind) != fmt.Sprint(want) {
		t.Errorf("Stats = %+v, want 4 records at 4, by kind %v", st, want)
	}
}

func TestList(t *testing.T) {
	s, _ := newSource(t, Options{})
	var all []authz.Record
	for i := range 25 {
		iss := "https://a"
		if i%5 == 0 {
			iss = "https://b"
		}
		all = append(all, put(t, s, token(iss, fmt.Sprint("jti-", i), time.Hour))...)
	}
	all = append(all, put(t, s, authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: time.Now().Add(time.Hour)})...)

	listAll := func(t *testing.T, q source.ListQuery) ([]authz.Record, int) {
		t.Helper()
		var out []authz.Record
		pages := 0
		for range 100 {
			page, next, err := s.List(ctxT(t), q)
			if err != nil {
				t.Fatalf("List(%+v): %v", q, err)
			}
			pages++
			out = append(out, page...)
			if next == "" {
				return out, pages
			}
			q.Cursor = next
		}
		t.Fatal("List did not end within 100 pages")
		return nil, 0
	}
	tests := []struct {
		name  string
		q     source.ListQuery
		want  []authz.Record
		pages int
	}{
		{"everything in one page", source.ListQuery{}, all, 1},
		{"pages of 10", source.ListQuery{Limit: 10}, all, 3},
		{"by kind", source.ListQuery{Kind: authz.KindKey}, all[25:], 1},
		{"by issuer, pages of 2", source.ListQuery{Issuer: "https://b", Limit: 2}, []authz.Record{all[0], all[5], all[10], all[15], all[20]}, 3},
		{"by value", source.ListQuery{Value: "jti-7"}, all[7:8], 1},
		{"exact page size", source.ListQuery{Issuer: "https://b", Limit: 5}, []authz.Record{all[0], all[5], all[10], all[15], all[20]}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := listAll(t, tt.q)
			if !slices.Equal(positions(got), positions(tt.want)) {
				t.Errorf("positions = %v, want %v", positions(got), positions(tt.want))
			}
			if pages != tt.pages {
				t.Errorf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
	for _, c := range []string{"garbage", "emb1.AAAAAAAAAAE", cursorPrefix + "!!"} {
		if _, _, err := s.List(ctxT(t), source.ListQuery{Cursor: c}); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("List(cursor %q) = %v, want ErrInvalidCursor", c, err)
		}
	}
	if _, _, err := s.List(ctxT(t), source.ListQuery{Limit: -1}); err == nil {
		t.Error("List with a negative limit succeeded")
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

package scope

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func newTable(t *testing.T, cfg Config) *Table {
	t.Helper()
	tb, err := New(cfg, "n1", WithClock(func() time.Time { return t0 }))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func event(id, sub, sid, addr, method, path string) *envoy.Event {
	e := &envoy.Event{
		Time:   t0,
		Reason: authz.ReasonOK,
		Claims: authz.Claims{Issuer: "https://idp.test", Subject: sub, Session: sid, KeyID: "k1", TokenID: id,
			IssuedAt: t0.Add(-time.Minute).Unix(), Expiry: t0.Add(time.Hour).Unix()},
		Request: envoy.Request{Method: method, Path: path, UserAgent: "curl/8"},
	}
	if addr != "" {
		e.Request.Source = netip.MustParseAddr(addr)
	}
	return e
}

// TestTableKeepsWhereTokensAreUsed: a token's entry names its owner, the
// addresses, user agents and routes it was used from (query dropped, path
// cut), counts its requests and denials, and the queries select it.
func TestTableKeepsWhereTokensAreUsed(t *testing.T) {
	tb := newTable(t, DefaultConfig())
	tb.Observe(event("t1", "alice", "s1", "203.0.113.7", "GET", "/v1/users/42/keys?x=1"))
	tb.Observe(event("t1", "alice", "s1", "198.51.100.9", "POST", "/v1/orders"))
	denied := event("t1", "alice", "s1", "203.0.113.7", "GET", "/v1/users/42")
	denied.Reason = authz.ReasonRevoked
	tb.Observe(denied)
	tb.Observe(event("t2", "bob", "s2", "192.0.2.1", "GET", "/admin"))
	tb.Observe(&envoy.Event{Reason: authz.ReasonMalformed}) // no token identity: not kept
	tb.Flush()

	got, _ := tb.Query(Query{Subject: "alice"})
	if len(got) != 1 {
		t.Fatalf("alice: %d tokens, want 1: %+v", len(got), got)
	}
	e := got[0]
	if e.TokenID != "t1" || e.Session != "s1" || e.KeyID != "k1" || e.Requests != 3 || e.Denied != 1 || e.LastReason != authz.ReasonRevoked {
		t.Errorf("entry %+v", e)
	}
	if fmt.Sprint(e.AddrExamples) != "[203.0.113.7 198.51.100.9]" || e.DistinctAddrs != 2 {
		t.Errorf("addresses %v, distinct %d", e.AddrExamples, e.DistinctAddrs)
	}
	if fmt.Sprint(e.Routes) != "[GET /v1/users POST /v1/orders]" || fmt.Sprint(e.UserAgents) != "[curl/8]" {
		t.Errorf("routes %v, user agents %v", e.Routes, e.UserAgents)
	}

	for _, tc := range []struct {
		name, query string
		want        string
	}{
		{"all", "", "[t1 t2]"},
		{"subject", "subject=bob", "[t2]"},
		{"session", "session=s1", "[t1]"},
		{"kid", "kid=k1", "[t1 t2]"},
		{"issuer other", "issuer=https://other.test", "[]"},
		{"cidr", "addr=198.51.100.0/24", "[t1]"},
		{"single address", "addr=192.0.2.1", "[t2]"},
		{"mapped address", "addr=::ffff:192.0.2.1", "[t2]"},
		{"route prefix", "route=/v1/", "[t1]"},
		{"method route", "route=POST+/v1", "[t1]"},
		{"method route miss", "route=DELETE+/v1", "[]"},
		{"since", "since=1m", "[t1 t2]"},
		{"and", "subject=alice&addr=192.0.2.0/24", "[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.query)
			q, err := ParseQuery(v, t0)
			if err != nil {
				t.Fatal(err)
			}
			es, _ := tb.Query(q)
			var ids []string
			for _, e := range es {
				ids = append(ids, e.TokenID)
			}
			if g := fmt.Sprint(sortedIDs(ids)); g != tc.want {
				t.Errorf("got %s, want %s", g, tc.want)
			}
		})
	}
}

func sortedIDs(ids []string) []string {
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[j] < ids[i] {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	if ids == nil {
		return []string{}
	}
	return ids
}

// TestParseQueryRefuses: a bad CIDR, an unknown or repeated parameter, a
// bad duration or limit is a bad query, never a query for everything.
func TestParseQueryRefuses(t *testing.T) {
	for _, q := range []string{
		"addr=300.1.2.3/8", "addr=10.0.0.0/33", "addr=bob", "user=alice", "subject=a&subject=b",
		"since=-5m", "since=yesterday", "limit=0", "limit=10001", "route=users", "kid=" + strings.Repeat("k", 2000),
	} {
		v, _ := url.ParseQuery(q)
		if _, err := ParseQuery(v, t0); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%s: err %v, want ErrBadQuery", q, err)
		}
	}
}

// TestExpiredTokensLeave: a token past its exp is no longer answered and
// the sweep drops it.
func TestExpiredTokensLeave(t *testing.T) {
	now := t0
	tb, err := New(DefaultConfig(), "n1", WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	tb.Observe(event("t1", "alice", "", "", "GET", "/"))
	tb.Flush()
	now = t0.Add(2 * time.Hour)
	if got, _ := tb.Query(Query{}); len(got) != 0 {
		t.Errorf("expired token answered: %+v", got)
	}
	tb.sweep()
	if st := tb.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after sweep: %+v", st)
	}
}

// TestSubListsAreCapped: one token used from many addresses, agents and
// routes keeps a few examples of each; the sketch still counts addresses.
func TestSubListsAreCapped(t *testing.T) {
	tb := newTable(t, DefaultConfig())
	for i := range 500 {
		e := event("t1", "alice", "", fmt.Sprintf("10.0.%d.%d", i/256, i%256), "GET", fmt.Sprintf("/r%d/x", i))
		e.Request.UserAgent = fmt.Sprintf("agent-%d-%s", i, strings.Repeat("x", 500))
		tb.Observe(e)
		tb.Flush()
	}
	got, _ := tb.Query(Query{})
	e := got[0]
	if len(e.AddrExamples) != MaxAddrExamples || len(e.UserAgents) != MaxUserAgents || len(e.Routes) != MaxRoutes {
		t.Errorf("lists %d %d %d", len(e.AddrExamples), len(e.UserAgents), len(e.Routes))
	}
	if len(e.UserAgents[0]) > maxText {
		t.Errorf("user agent of %d bytes kept", len(e.UserAgents[0]))
	}
	if e.DistinctAddrs < 450 || e.DistinctAddrs > 550 {
		t.Errorf("distinct addresses estimated %d, want about 500", e.DistinctAddrs)
	}
}

// TestObserveDoesNotAllocate: the hot-path part is a copy into the queue;
// a full queue drops and counts.
func TestObserveDoesNotAllocate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueSize = 4
	tb := newTable(t, cfg)
	e := event("t1", "alice", "s1", "203.0.113.7", "GET", "/v1")
	if n := testing.AllocsPerRun(100, func() { tb.Observe(e) }); n != 0 {
		t.Errorf("Observe allocates %.1f times", n)
	}
	if tb.Stats().Dropped == 0 {
		t.Error("a full queue dropped nothing")
	}
}

// TestFloodStaysBounded: a million distinct tokens, big ones included,
// keep the table within its entry and byte bounds, and the heap it holds
// within a small multiple of the byte bound.
func TestFloodStaysBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytes = 4 << 20
	tb := newTable(t, cfg)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	big := strings.Repeat("s", 900)
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 200_000 // still fifty times the entries the bound keeps; the race detector is slow
	}
	for i := range n {
		sub := "user"
		if i%10 == 0 {
			sub = big // attackers choose their claims
		}
		s := sighting{at: t0, allowed: true, method: "GET", path: "/v1/x", ua: "flood",
			source: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
			claims: authz.Claims{Issuer: "https://idp.test", Subject: sub, TokenID: fmt.Sprintf("tok-%d", i), Expiry: t0.Add(time.Hour).Unix()}}
		tb.apply(&s)
	}
	st := tb.Stats()
	if st.Entries > cfg.MaxEntries || st.Bytes > cfg.MaxBytes || st.Evicted < uint64(n-cfg.MaxEntries) {
		t.Fatalf("after %d tokens: %+v (bounds: %d entries, %d bytes)", n, st, cfg.MaxEntries, cfg.MaxBytes)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if held > 2*cfg.MaxBytes {
		t.Errorf("the table holds %d bytes of heap, over twice its bound of %d", held, cfg.MaxBytes)
	}
	t.Logf("%d tokens: %d kept, %d accounted bytes, %d heap bytes held", n, st.Entries, st.Bytes, held)
	runtime.KeepAlive(tb)
}

func TestRoute(t *testing.T) {
	for _, tc := range []struct {
		path  string
		depth int
		want  string
	}{
		{"/v1/users/42/keys?x=1", 2, "GET /v1/users"},
		{"/v1/users/42", 1, "GET /v1"},
		{"/", 2, "GET /"},
		{"", 2, "GET /"},
		{"/a#frag", 3, "GET /a"},
		{"/a/b/c", 5, "GET /a/b/c"},
	} {
		if got := Route("GET", tc.path, tc.depth); got != tc.want {
			t.Errorf("Route(%q, %d) = %q, want %q", tc.path, tc.depth, got, tc.want)
		}
	}
}

// BenchmarkObserve is the scope table's cost on the hot path: a copy into
// its queue (drained outside the timer).
func BenchmarkObserve(b *testing.B) {
	tb, err := New(DefaultConfig(), "n1")
	if err != nil {
		b.Fatal(err)
	}
	e := event("t1", "alice", "s1", "203.0.113.7", "GET", "/v1/users/42")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tb.Observe(e)
		if i%1024 == 1023 {
			b.StopTimer()
			tb.Flush()
			b.StartTimer()
		}
	}
}

// BenchmarkApply is the worker's cost per decision: a known token, and a
// new token each time in a full table (an insert and an eviction).
func BenchmarkApply(b *testing.B) {
	for _, fresh := range []bool{false, true} {
		name := map[bool]string{false: "known", true: "new"}[fresh]
		b.Run(name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxEntries = 1000
			tb, err := New(cfg, "n1")
			if err != nil {
				b.Fatal(err)
			}
			s := sighting{at: t0, allowed: true, method: "GET", path: "/v1/users/42", ua: "curl/8",
				source: netip.MustParseAddr("203.0.113.7"),
				claims: authz.Claims{Issuer: "https://idp.test", Subject: "alice", TokenID: "t1", Expiry: t0.Add(time.Hour).Unix()}}
			ids := make([]string, 4096)
			for i := range ids {
				ids[i] = fmt.Sprintf("tok-%d", i)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if fresh {
					s.claims.TokenID = ids[i%len(ids)]
				}
				tb.apply(&s)
			}
		})
	}
}

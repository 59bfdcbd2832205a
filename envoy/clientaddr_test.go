package envoy_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/envoy"
)

// TestForwardAuthSourceAddress: in forward-auth mode the source is the
// peer, or the rightmost untrusted X-Forwarded-For address when the peer
// is a trusted proxy; an attacker's own X-Forwarded-For entries, garbage
// and oversized headers never become the source.
func TestForwardAuthSourceAddress(t *testing.T) {
	e := newEnv(t)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	many := func(n int, entry string) string { return strings.TrimSuffix(strings.Repeat(entry+", ", n), ", ") }
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no trusted proxies: the peer", nil, "10.0.0.1:80", []string{"203.0.113.7"}, "10.0.0.1"},
		{"spoofed from an untrusted peer: ignored", trusted, "198.51.100.1:80", []string{"203.0.113.7"}, "198.51.100.1"},
		{"trusted peer, no header: the peer", trusted, "10.0.0.1:80", nil, "10.0.0.1"},
		{"trusted peer names the client", trusted, "10.0.0.1:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"the client's own entries are ignored", trusted, "10.0.0.1:80", []string{"6.6.6.6, 10.9.9.9, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops are skipped", trusted, "10.0.0.1:80", []string{"6.6.6.6, 203.0.113.7, 10.0.0.3, 10.0.0.2"}, "203.0.113.7"},
		{"every hop trusted: the farthest", trusted, "10.0.0.1:80", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"several header lines, last one last", trusted, "10.0.0.1:80", []string{"6.6.6.6", "203.0.113.7, 10.0.0.2"}, "203.0.113.7"},
		{"garbage: the peer", trusted, "10.0.0.1:80", []string{"not-an-address"}, "10.0.0.1"},
		{"empty entry among trusted: the peer", trusted, "10.0.0.1:80", []string{"203.0.113.7,,10.0.0.2"}, "10.0.0.1"},
		{"garbage left of the client is never read", trusted, "10.0.0.1:80", []string{"<script>, 203.0.113.7"}, "203.0.113.7"},
		{"only commas: the peer", trusted, "10.0.0.1:80", []string{",,,"}, "10.0.0.1"},
		{"odd brackets: the peer", trusted, "10.0.0.1:80", []string{"[203.0.113.7"}, "10.0.0.1"},
		{"bad port: the peer", trusted, "10.0.0.1:80", []string{"203.0.113.7:99999"}, "10.0.0.1"},
		{"address with port", trusted, "10.0.0.1:80", []string{"203.0.113.7:4711"}, "203.0.113.7"},
		{"IPv6", trusted, "[fd00::1]:80", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv6 with port", trusted, "[fd00::1]:80", []string{"[2001:db8::7]:443"}, "2001:db8::7"},
		{"IPv6 with a zone", trusted, "[fd00::1]:80", []string{"fe80::1%eth0"}, "fe80::1"},
		{"IPv4-mapped client", trusted, "10.0.0.1:80", []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"IPv4-mapped trusted peer", trusted, "[::ffff:10.0.0.1]:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"IPv4-mapped trusted hop is skipped", trusted, "10.0.0.1:80", []string{"203.0.113.7, ::ffff:10.0.0.2"}, "203.0.113.7"},
		{"many entries, client on the right", trusted, "10.0.0.1:80", []string{many(300, "6.6.6.6") + ", 203.0.113.7"}, "203.0.113.7"},
		{"more trusted hops than walked: the peer", trusted, "10.0.0.1:80", []string{many(envoy.MaxForwardedForHops+1, "10.0.0.9")}, "10.0.0.1"},
		{"oversized header: the peer", trusted, "10.0.0.1:80", []string{strings.Repeat("1", envoy.MaxForwardedForBytes) + ", 203.0.113.7"}, "10.0.0.1"},
		{"oversized over many lines: the peer", trusted, "10.0.0.1:80", append(make([]string, 0, 600), strings.Split(many(600, "6.6.6.6"), ", ")...), "10.0.0.1"},
		{"peer without port: unknown", trusted, "10.0.0.1", []string{"203.0.113.7"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			a := envoy.NewAuthorization(e.checker, envoy.WithObserver(rec), envoy.WithTrustedProxies(tc.trusted))
			hr := httptest.NewRequest(http.MethodGet, "/auth", nil)
			hr.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				hr.Header.Add("X-Forwarded-For", v)
			}
			a.ServeHTTP(httptest.NewRecorder(), hr)
			if len(rec.events) != 1 {
				t.Fatalf("%d events", len(rec.events))
			}
			got := rec.events[0].Request.Source
			if tc.want == "" {
				if got.IsValid() {
					t.Errorf("source %v, want none", got)
				}
				return
			}
			if want := netip.MustParseAddr(tc.want); got != want {
				t.Errorf("source %v, want %v", got, want)
			}
		})
	}
}

// TestForwardAuthSourceAllocatesNothing: walking X-Forwarded-For adds no
// allocation to a forward-auth check.
func TestForwardAuthSourceAllocatesNothing(t *testing.T) {
	e := newEnv(t)
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	var seen netip.Addr
	a := envoy.NewAuthorization(e.checker, envoy.WithTrustedProxies(trusted), envoy.WithObserver(observerFunc(func(ev *envoy.Event) { seen = ev.Request.Source })))
	with := httptest.NewRequest(http.MethodGet, "/auth", nil)
	with.RemoteAddr = "10.0.0.1:80"
	with.Header.Set("X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.0.0.2")
	without := httptest.NewRequest(http.MethodGet, "/auth", nil)
	without.RemoteAddr = "10.0.0.1:80"
	w := httptest.NewRecorder()
	base := testing.AllocsPerRun(100, func() { a.ServeHTTP(w, without) })
	got := testing.AllocsPerRun(100, func() { a.ServeHTTP(w, with) })
	if got > base {
		t.Errorf("%v allocations with X-Forwarded-For, %v without", got, base)
	}
	if seen != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("source %v", seen)
	}
}

type observerFunc func(*envoy.Event)

func (f observerFunc) Observe(e *envoy.Event) { f(e) }

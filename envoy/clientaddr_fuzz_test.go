package envoy

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// FuzzForwardedFor: whatever a client or a proxy puts in X-Forwarded-For
// (two header lines here), working out the source never panics, gives the
// peer when the peer is not trusted, and otherwise gives the peer or an
// address that the header holds.
func FuzzForwardedFor(f *testing.F) {
	a := &Authorization{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	f.Fuzz(func(t *testing.T, peer, line1, line2 string) {
		r := &http.Request{RemoteAddr: peer, Header: http.Header{}}
		for _, l := range []string{line1, line2} {
			if l != "" {
				r.Header.Add("X-Forwarded-For", l)
			}
		}
		got := a.clientAddr(r)
		p := peerAddr(peer)
		if got == p {
			return
		}
		if !p.IsValid() || !a.trusts(p) {
			t.Fatalf("peer %q (untrusted) gave %v", peer, got)
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("source %v: want a plain address", got)
		}
		found := false
		for _, l := range []string{line1, line2} {
			for _, entry := range strings.Split(l, ",") {
				if ip, ok := forwardedAddr(entry); ok && ip == got {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("source %v is in neither %q nor %q", got, line1, line2)
		}
	})
}

package envoy

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Bounds of the X-Forwarded-For a forward-auth request may carry: past
// them the header is ignored and the peer address used.
const (
	// MaxForwardedForBytes is the longest X-Forwarded-For (all its lines)
	// that is read.
	MaxForwardedForBytes = 4096
	// MaxForwardedForHops is the most entries walked from the right.
	MaxForwardedForHops = 32
)

// WithTrustedProxies sets the proxies whose X-Forwarded-For is believed in
// forward-auth mode: a request from a peer in one of these prefixes takes
// its source address from X-Forwarded-For, walked right to left past
// every trusted hop (the rightmost address not in a trusted prefix). None
// (the default) trusts no one: the source is the connection's peer.
func WithTrustedProxies(prefixes []netip.Prefix) AuthorizationOption {
	return func(a *Authorization) { a.trusted = prefixes }
}

// trusts reports whether ip is a trusted proxy.
func (a *Authorization) trusts(ip netip.Addr) bool {
	for _, p := range a.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddr is the source address of a forward-auth request: its peer,
// or, when the peer is a trusted proxy, the rightmost untrusted address of
// X-Forwarded-For (the leftmost entry when every hop is trusted). A
// malformed, oversized or over-long header yields the peer: it is never
// half believed.
func (a *Authorization) clientAddr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !a.trusts(peer) {
		return peer
	}
	xff := r.Header.Values("X-Forwarded-For")
	size := 0
	for _, v := range xff {
		size += len(v)
	}
	if size == 0 || size > MaxForwardedForBytes {
		return peer
	}
	client, hops := netip.Addr{}, 0
	// Later header lines were appended later: walk them last to first,
	// each from its right end.
	for i := len(xff) - 1; i >= 0; i-- {
		rest := xff[i]
		for {
			entry := rest
			comma := strings.LastIndexByte(rest, ',')
			if comma >= 0 {
				entry, rest = rest[comma+1:], rest[:comma]
			}
			if hops++; hops > MaxForwardedForHops {
				return peer
			}
			ip, ok := forwardedAddr(entry)
			if !ok {
				return peer
			}
			if !a.trusts(ip) {
				return ip
			}
			client = ip
			if comma < 0 {
				break
			}
		}
	}
	return client
}

// forwardedAddr parses one X-Forwarded-For entry: an address, or an
// address with a port ("203.0.113.7:4711", "[2001:db8::1]:4711"), as some
// proxies write it. A zone is dropped; an IPv4-mapped IPv6 address is
// taken as its IPv4 address.
func forwardedAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.WithZone("").Unmap(), true
}

// peerAddr is the address of a connection's "host:port", or zero.
func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.WithZone("").Unmap()
}

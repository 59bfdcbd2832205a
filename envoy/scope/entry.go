package scope

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// Caps of an entry's sub-lists and strings: what one token can cost.
const (
	// MaxAddrExamples is how many source addresses an entry names (the
	// sketch counts them all).
	MaxAddrExamples = 8
	// MaxUserAgents is how many distinct user agents an entry keeps.
	MaxUserAgents = 4
	// MaxRoutes is how many distinct routes an entry keeps.
	MaxRoutes = 8
	// maxText bounds a user agent or route kept.
	maxText = 128
	// maxID bounds an identity string (token id, issuer, subject, sid,
	// kid) kept: the longest value a revocation record takes, so that a
	// kept id can be revoked as is.
	maxID = 1024
	// entryOverhead is the accounted size of an entry apart from its
	// strings: the struct, its slices' headers, the LRU's element and map
	// slot, generously.
	entryOverhead = 640
)

// Entry is what the scope knows of one token.
type Entry struct {
	TokenID  string    `json:"token_id"`
	Issuer   string    `json:"issuer"`
	Subject  string    `json:"subject,omitempty"`
	Session  string    `json:"session,omitempty"`
	KeyID    string    `json:"kid,omitempty"`
	IssuedAt time.Time `json:"issued_at,omitzero"`
	Expiry   time.Time `json:"expires_at"`
	// FirstSeen and LastSeen are the first and last requests seen with it.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Requests counts the requests seen with it, Denied those denied.
	Requests uint64 `json:"requests"`
	Denied   uint64 `json:"denied"`
	// LastReason is the decision of the last request seen.
	LastReason authz.Reason `json:"last_reason"`
	// Addrs estimates the distinct source addresses (DistinctAddrs is its
	// estimate); AddrExamples names the first MaxAddrExamples of them.
	Addrs         Sketch       `json:"addrs_sketch"`
	DistinctAddrs int          `json:"distinct_addrs"`
	AddrExamples  []netip.Addr `json:"addr_examples"`
	// UserAgents and Routes are the first distinct ones seen (routes as
	// "METHOD /path", the path cut to the configured depth, query dropped).
	UserAgents []string `json:"user_agents"`
	Routes     []string `json:"routes"`
	// Nodes names the nodes that saw it (in a mesh answer).
	Nodes []string `json:"nodes,omitempty"`
}

// key identifies an entry in a table: issuer and token id.
func key(issuer, tokenID string) string { return issuer + "\x00" + tokenID }

// Key is the entry's key in a table.
func (e *Entry) Key() string { return key(e.Issuer, e.TokenID) }

// size is the entry's accounted memory.
func (e *Entry) size() int64 {
	n := entryOverhead + len(e.TokenID) + len(e.Issuer) + len(e.Subject) + len(e.Session) + len(e.KeyID)
	n += cap(e.AddrExamples) * 24
	for _, s := range e.UserAgents {
		n += len(s) + 16
	}
	for _, s := range e.Routes {
		n += len(s) + 16
	}
	for _, s := range e.Nodes {
		n += len(s) + 16
	}
	return int64(n)
}

// clip bounds s to n bytes, on a rune boundary, and copies it so that the
// table never holds on to the request it came from.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !validEnd(s) {
			s = s[:len(s)-1]
		}
	}
	return strings.Clone(s)
}

// validEnd reports whether s does not end inside a multi-byte rune.
func validEnd(s string) bool {
	for i := len(s) - 1; i >= 0 && i >= len(s)-4; i-- {
		c := s[i]
		if c < 0x80 {
			return true
		}
		if c >= 0xC0 { // a leading byte: does its rune fit?
			need := 2
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			return len(s)-i >= need
		}
	}
	return true
}

// Route returns "METHOD /path" of a request: the query dropped and the path
// cut after depth segments ("/v1/users/42/keys" at depth 2 is "/v1/users").
func Route(method, path string, depth int) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		path = "/"
	}
	seg := 0
	for i := 1; i < len(path); i++ {
		if path[i] == '/' {
			seg++
			if seg >= depth {
				path = path[:i]
				break
			}
		}
	}
	return method + " " + path
}

// addText appends s to list when it is new and list has room.
func addText(list []string, s string, max int) []string {
	if s == "" || len(list) >= max || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// merge adds what o knows of the same token to e.
func (e *Entry) merge(o *Entry) {
	if e.FirstSeen.IsZero() || (!o.FirstSeen.IsZero() && o.FirstSeen.Before(e.FirstSeen)) {
		e.FirstSeen = o.FirstSeen
	}
	if o.LastSeen.After(e.LastSeen) {
		e.LastSeen, e.LastReason = o.LastSeen, o.LastReason
	}
	if e.Expiry.Before(o.Expiry) {
		e.Expiry = o.Expiry
	}
	e.Requests += o.Requests
	e.Denied += o.Denied
	e.Addrs.Merge(&o.Addrs)
	e.DistinctAddrs = e.Addrs.Estimate()
	for _, a := range o.AddrExamples {
		if len(e.AddrExamples) < MaxAddrExamples && !slices.Contains(e.AddrExamples, a) {
			e.AddrExamples = append(e.AddrExamples, a)
		}
	}
	for _, s := range o.UserAgents {
		e.UserAgents = addText(e.UserAgents, s, MaxUserAgents)
	}
	for _, s := range o.Routes {
		e.Routes = addText(e.Routes, s, MaxRoutes)
	}
	for _, s := range o.Nodes {
		if !slices.Contains(e.Nodes, s) {
			e.Nodes = append(e.Nodes, s)
		}
	}
	slices.Sort(e.Nodes)
}

// clone returns a copy of e that shares no slice with it.
func (e *Entry) clone() Entry {
	c := *e
	c.AddrExamples = slices.Clone(e.AddrExamples)
	c.UserAgents = slices.Clone(e.UserAgents)
	c.Routes = slices.Clone(e.Routes)
	c.Nodes = slices.Clone(e.Nodes)
	c.DistinctAddrs = c.Addrs.Estimate()
	return c
}

package scope

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of a query's answer.
const (
	// DefaultLimit is the most tokens an answer lists unless asked.
	DefaultLimit = 1000
	// MaxLimit is the most tokens an answer lists.
	MaxLimit = 10_000
)

// Query selects tokens; every field set must match (and). The zero
// Query selects every live token.
type Query struct {
	Subject string
	Session string
	KeyID   string
	Issuer  string
	// Addr matches a token with a source address example in it.
	Addr netip.Prefix
	// Route matches a token with a route whose path starts with it, or,
	// when it holds a space ("POST /v1"), whose "METHOD /path" does.
	Route string
	// Since matches a token seen at or after it.
	Since time.Time
	// Limit is the most tokens answered (DefaultLimit when 0).
	Limit int
}

// ErrBadQuery is wrapped by every ParseQuery error.
var ErrBadQuery = errors.New("bad token query")

// queryParams are the parameters of GET /v1/tokens.
var queryParams = []string{"subject", "session", "kid", "issuer", "addr", "route", "since", "limit"}

// ParseQuery reads the parameters of GET /v1/tokens: subject, session,
// kid, issuer, addr (an address or CIDR), route (a path prefix), since (a
// duration back from now, or an RFC 3339 time) and limit. Unknown or
// repeated parameters and bad values are errors wrapping ErrBadQuery.
func ParseQuery(v url.Values, now time.Time) (Query, error) {
	bad := func(format string, a ...any) (Query, error) {
		return Query{}, fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, a...))
	}
	for name, vals := range v {
		if !slices.Contains(queryParams, name) {
			return bad("unknown parameter %q (known: %s)", name, strings.Join(queryParams, ", "))
		}
		if len(vals) != 1 {
			return bad("parameter %q given %d times", name, len(vals))
		}
	}
	q := Query{Subject: v.Get("subject"), Session: v.Get("session"), KeyID: v.Get("kid"), Issuer: v.Get("issuer"), Route: v.Get("route")}
	for name, s := range map[string]string{"subject": q.Subject, "session": q.Session, "kid": q.KeyID, "issuer": q.Issuer, "route": q.Route} {
		if len(s) > maxID {
			return bad("%s is longer than %d bytes", name, maxID)
		}
	}
	if q.Route != "" && !strings.Contains(q.Route, "/") {
		return bad("route %q: want a path prefix such as /v1/users, or METHOD /path", q.Route)
	}
	if s := v.Get("addr"); s != "" {
		p, err := parseAddr(s)
		if err != nil {
			return bad("addr %q: want an address or a CIDR such as 203.0.113.0/24", s)
		}
		q.Addr = p
	}
	if s := v.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			q.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			q.Since = t
		} else {
			return bad("since %q: want a positive duration (15m) or an RFC 3339 time", s)
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return bad("limit %q: want 1 to %d", s, MaxLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// parseAddr reads an address (a /32 or /128) or a CIDR.
func parseAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Values returns q as GET /v1/tokens parameters (the inverse of
// ParseQuery, Since as an RFC 3339 time).
func (q Query) Values() url.Values {
	v := url.Values{}
	for name, s := range map[string]string{"subject": q.Subject, "session": q.Session, "kid": q.KeyID, "issuer": q.Issuer, "route": q.Route} {
		if s != "" {
			v.Set(name, s)
		}
	}
	if q.Addr.IsValid() {
		v.Set("addr", q.Addr.String())
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// limit is the number of tokens q answers at most.
func (q *Query) limit() int {
	if q.Limit <= 0 || q.Limit > MaxLimit {
		return DefaultLimit
	}
	return q.Limit
}

// Index is the most selective shared-store index q can be answered from:
// "session:", "subject:", "kid:" or "issuer:" and the value, or "" for
// every token.
func (q *Query) Index() string {
	switch {
	case q.Session != "":
		return "session:" + q.Session
	case q.Subject != "":
		return "subject:" + q.Subject
	case q.KeyID != "":
		return "kid:" + q.KeyID
	case q.Issuer != "":
		return "issuer:" + q.Issuer
	}
	return ""
}

// indexes are the shared-store indexes e is found under.
func (e *Entry) indexes() []string {
	out := []string{"", "issuer:" + e.Issuer}
	if e.Subject != "" {
		out = append(out, "subject:"+e.Subject)
	}
	if e.Session != "" {
		out = append(out, "session:"+e.Session)
	}
	if e.KeyID != "" {
		out = append(out, "kid:"+e.KeyID)
	}
	return out
}

// Match reports whether e is live at now and selected by q.
func (q *Query) Match(e *Entry, now time.Time) bool {
	switch {
	case !now.Before(e.Expiry):
		return false
	case q.Subject != "" && e.Subject != q.Subject,
		q.Session != "" && e.Session != q.Session,
		q.KeyID != "" && e.KeyID != q.KeyID,
		q.Issuer != "" && e.Issuer != q.Issuer,
		!q.Since.IsZero() && e.LastSeen.Before(q.Since):
		return false
	}
	if q.Addr.IsValid() && !slices.ContainsFunc(e.AddrExamples, q.Addr.Contains) {
		return false
	}
	if q.Route != "" && !slices.ContainsFunc(e.Routes, q.routeMatch) {
		return false
	}
	return true
}

func (q *Query) routeMatch(route string) bool {
	if strings.Contains(q.Route, " ") {
		return strings.HasPrefix(route, q.Route)
	}
	_, path, _ := strings.Cut(route, " ")
	return strings.HasPrefix(path, q.Route)
}

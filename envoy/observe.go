package envoy

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/authz"
)

// Request is what a check knows of the request it decides, from either
// transport: the facts the decision log, the detectors and the scope table
// record. Its strings point into the incoming request; an observer that
// keeps one past Observe must copy it.
type Request struct {
	// Transport is "grpc" (ext_authz) or "http" (forward-auth).
	Transport string
	Method    string
	Host      string
	Path      string
	// Source is the client address the proxy saw: Envoy's source.address;
	// in forward-auth mode the connection's peer, or the client it names in
	// X-Forwarded-For when it is a trusted proxy (WithTrustedProxies).
	// Zero when unknown. Always a plain IPv4 or IPv6 address (IPv4-mapped
	// addresses unmapped, no zone).
	Source    netip.Addr
	RequestID string
	UserAgent string
	// ContextExtensions are the ext_authz context_extensions Envoy sends
	// per route or virtual host (gRPC only; nil otherwise).
	ContextExtensions map[string]string
}

// Event is one decision as an Observer sees it.
type Event struct {
	Time      time.Time
	Took      time.Duration
	Request   Request
	Reason    authz.Reason
	RevokedBy authz.Kind
	// Rule names the route rule that decided, if any.
	Rule   string
	Claims authz.Claims
	// Err details why a token failed verification (nil for an allow); it
	// never holds the token.
	Err error
}

// PollInterval is how often an observer's worker drains its queue. A
// worker polls rather than waits on its queue: a send to a channel a
// goroutine waits on wakes that goroutine, a scheduler round trip on every
// request; a send to a buffered channel nobody waits on is a copy.
const PollInterval = 5 * time.Millisecond

// Observer is told of every decision, after it is made and before the
// answer is sent. Observe runs on the hot path: it must not block, lock
// across calls or allocate per call; an observer with work to do hands a
// copy of the event to its own bounded queue and counts what it drops when
// the queue is full, and drains it every PollInterval. The *Event is
// reused once Observe returns: an observer never keeps the pointer.
type Observer interface {
	Observe(e *Event)
}

// Blocker holds what this node denies for a while, checked on every
// request: the source address before the token is even parsed (so a flood
// of forged tokens from one address costs no signature verifications), and
// a verified token's claims after. Both run on the hot path: lock-free,
// allocation-free, and quick to say no when nothing is blocked.
type Blocker interface {
	BlockedAddr(addr netip.Addr, now time.Time) bool
	// BlockedToken is told a verified token's issuer, token id, session
	// and subject (strings, not the Claims, which would escape to the
	// heap through the interface call).
	BlockedToken(issuer, tokenID, session, subject string, now time.Time) bool
}

// WithBlocker denies with authz.ReasonBlocked (HTTP 403) what b blocks.
func WithBlocker(b Blocker) AuthorizationOption {
	return func(a *Authorization) { a.blocker = b }
}

// WithObserver adds o to the observers of every decision.
func WithObserver(o Observer) AuthorizationOption {
	return func(a *Authorization) { a.observers = append(a.observers, o) }
}

// grpcRequest returns the facts of an ext_authz CheckRequest.
func grpcRequest(req *authv3.CheckRequest) Request {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := Request{
		Transport:         "grpc",
		Method:            h.GetMethod(),
		Host:              h.GetHost(),
		Path:              h.GetPath(),
		RequestID:         h.GetId(),
		ContextExtensions: attrs.GetContextExtensions(),
	}
	if hs := h.GetHeaders(); hs != nil {
		r.UserAgent = hs["user-agent"]
	}
	r.Source = grpcSource(req)
	return r
}

// grpcSource is the client address Envoy saw (source.address), zero when
// it sent none or one that does not parse.
func grpcSource(req *authv3.CheckRequest) netip.Addr {
	if sa := req.GetAttributes().GetSource().GetAddress().GetSocketAddress(); sa != nil {
		if ip, err := netip.ParseAddr(sa.GetAddress()); err == nil {
			return ip.WithZone("").Unmap()
		}
	}
	return netip.Addr{}
}

// httpRequest returns the facts of a forward-auth request: the original
// request's method, host and URI as the proxy forwards them, and the
// client address (clientAddr).
func (a *Authorization) httpRequest(r *http.Request) Request {
	rt := httpRoute(r)
	return Request{
		Transport: "http",
		Method:    rt.Method,
		Host:      rt.Host,
		Path:      rt.Path,
		RequestID: r.Header.Get("X-Request-Id"),
		UserAgent: r.UserAgent(),
		Source:    a.clientAddr(r),
	}
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// events recycles the Events handed to observers: an Event escapes
// through the Observer interface, and the hot path allocates nothing.
var events = sync.Pool{New: func() any { return new(Event) }}

// notify tells every observer of d.
func (a *Authorization) notify(req *Request, d *authz.Decision, start time.Time) {
	if len(a.observers) == 0 {
		return
	}
	e := events.Get().(*Event)
	*e = Event{
		Time:      start,
		Took:      time.Since(start),
		Request:   *req,
		Reason:    d.Reason,
		RevokedBy: d.RevokedBy,
		Rule:      d.Rule,
		Claims:    d.Claims,
		Err:       d.Err,
	}
	for _, o := range a.observers {
		o.Observe(e)
	}
	*e = Event{}
	events.Put(e)
}

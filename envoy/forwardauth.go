package envoy

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// HeadersToRemove is the header of a forward-auth answer listing, comma
// separated, the request headers the proxy must remove before the request
// reaches the upstream (Envoy's ext_authz http_service applies it; nginx,
// Caddy and Traefik copy only the headers they are told to, and get no
// value for these).
const HeadersToRemove = "X-Envoy-Auth-Headers-To-Remove"

// ServeHTTP is the HTTP forward-auth check (Envoy's ext_authz http_service,
// nginx auth_request, Traefik forwardAuth, Caddy forward_auth): the request
// carries the original request's headers (Authorization, X-Forwarded-*,
// X-Original-URI, ...). It answers 200 with the upstream headers and
// HeadersToRemove, or the same deny as the gRPC service: 401 (400 for
// several credentials, 503 when jwtguard cannot decide) with
// WWW-Authenticate and a JSON body.
func (a *Authorization) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := a.checker.Load()
	var d authz.Decision
	if a.blocker != nil && a.blocker.BlockedAddr(a.clientAddr(r), start) {
		d = authz.Decision{Reason: authz.ReasonBlocked}
	} else {
		rt := httpRoute(r)
		d = a.decide(r.Context(), c, nil, r.Header, &rt, start)
	}
	a.observe(&d, start, transportHTTP)
	if len(a.observers) > 0 {
		q := a.httpRequest(r)
		a.notify(&q, &d, start)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if d.Allowed() {
		var remove []string
		a.upstreamHeaders(c, &d, h.Set, func(name string) { remove = append(remove, name) })
		if len(remove) > 0 {
			h.Set(HeadersToRemove, strings.Join(remove, ", "))
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	den := decisionDenial(&d)
	if den.wwwAuthenticate != "" {
		h.Set("WWW-Authenticate", den.wwwAuthenticate)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(den.body)))
	w.WriteHeader(den.status)
	_, _ = w.Write(den.body)
}

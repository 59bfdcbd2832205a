package envoy

import (
	"net/http"
	"sync"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/authz"
)

// grpcRoute returns what the checker's rules match an ext_authz request
// on: its method, host, path and context_extensions, the request's own
// strings and map (nothing is copied).
func grpcRoute(req *authv3.CheckRequest) authz.Route {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	return authz.Route{Method: h.GetMethod(), Host: h.GetHost(), Path: h.GetPath(), ContextExtensions: attrs.GetContextExtensions()}
}

// httpRoute returns what the rules match a forward-auth request on: the
// original request's method, host and URI as the proxy forwards them
// (X-Forwarded-* or X-Original-*), else the check request's own. The proxy
// must set these headers itself, overwriting any the client sent.
func httpRoute(r *http.Request) authz.Route {
	return authz.Route{
		Method: firstOf(r.Header.Get("X-Forwarded-Method"), r.Header.Get("X-Original-Method"), r.Method),
		Host:   firstOf(r.Header.Get("X-Forwarded-Host"), r.Host),
		Path:   firstOf(r.Header.Get("X-Forwarded-Uri"), r.Header.Get("X-Original-URI"), r.URL.RequestURI()),
	}
}

// scopeDenials holds the denies of insufficient_scope with the scope
// parameter of each scope text the rules require, made once per text (the
// texts come from the configuration, so they are few).
var scopeDenials struct {
	mu   sync.RWMutex
	grpc map[string]*denied
	http map[string]denial
}

// scopeChallenge is the deny of d (insufficient_scope with the scopes the
// route requires) as both transports send it.
func scopeChallenge(d *authz.Decision) denial {
	den := denialFor(d.Reason)
	den.wwwAuthenticate = `Bearer error="insufficient_scope", scope="` + d.RequiredScope + `", error_description="` + string(d.Reason) + `"`
	return den
}

// scopeDenied is deniedResponse's shared part for d, which requires scopes.
func scopeDenied(d *authz.Decision) *denied {
	scopeDenials.mu.RLock()
	den, ok := scopeDenials.grpc[d.RequiredScope]
	scopeDenials.mu.RUnlock()
	if ok {
		return den
	}
	den = newDeniedAs(d.Reason, scopeChallenge(d))
	scopeDenials.mu.Lock()
	defer scopeDenials.mu.Unlock()
	if scopeDenials.grpc == nil {
		scopeDenials.grpc = map[string]*denied{}
	}
	scopeDenials.grpc[d.RequiredScope] = den
	return den
}

// decisionDenial is the forward-auth deny of d.
func decisionDenial(d *authz.Decision) denial {
	if d.RequiredScope == "" {
		return denialOf(d.Reason)
	}
	scopeDenials.mu.RLock()
	den, ok := scopeDenials.http[d.RequiredScope]
	scopeDenials.mu.RUnlock()
	if ok {
		return den
	}
	den = scopeChallenge(d)
	scopeDenials.mu.Lock()
	defer scopeDenials.mu.Unlock()
	if scopeDenials.http == nil {
		scopeDenials.http = map[string]denial{}
	}
	scopeDenials.http[d.RequiredScope] = den
	return den
}

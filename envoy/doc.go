// Package envoy adapts authz to the proxies in front of it: the Envoy
// ext_authz v3 gRPC service (also used by Istio's envoyExtAuthzGrpc
// provider) and the HTTP forward-auth endpoint of nginx auth_request,
// Traefik forwardAuth, Caddy forward_auth and Envoy's http_service. It holds
// no decision logic: requests become authz calls, decisions become
// responses.
package envoy

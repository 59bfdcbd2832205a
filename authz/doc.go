// Package authz makes the access decision for one request: it extracts the
// bearer token, verifies its signature and claims against the configured
// issuers, and checks it against the revocation state (a Bloom filter with an
// LRU confirm cache backed by an exact lookup).
//
// authz knows nothing of Envoy, gRPC or any revocation source: adapters in
// envoy/ translate requests and decisions, and sources in sync/ implement the
// small Lookup interface declared here.
package authz

// Package keywatch is the key-rotation watch: per issuer it follows the
// age of each signing key (since this node first loaded it), the key set's
// refreshes and their failures, and the kids of the tokens being verified.
// It raises an alarm (a log line, a metric, and the node's alarm hook)
// when no new key has appeared within an issuer's MaxKeyAge (a missed
// rotation), when tokens keep naming a key that left the set, and when
// refreshes have failed for longer than a bound.
//
// An issuer may opt in to "rotate, then purge": once a new key has been in
// the set for the issuer's grace period, the tokens signed by the keys
// that were there before it and issued before it appeared are revoked (a
// key record with Before = the moment the new key appeared), so that
// everyone re-authenticates under the new key.
//
// The watch reads the key sets through authz.Checker.KeySets (read-only)
// and the decisions as an envoy.Observer with its own bounded queue.
package keywatch

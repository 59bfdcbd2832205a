// Package detect watches decisions off the hot path for signs of a stolen
// or misused token (one token from many addresses or user agents, one token
// at an abnormal rate, bursts of forged or malformed tokens from one
// address, revoked or expired tokens presented again) and answers each
// with its detector's policy: observe (a log line and a metric), block
// (deny on this node for a while, checked before signature verification
// for an address), or revoke (a record written to the revocation source
// through a Revoker, so every node enforces it).
//
// An Engine is an envoy.Observer and an envoy.Blocker. Observe copies a
// small event into a bounded queue (a full queue drops and counts); one
// worker goroutine runs the detectors. Every table is a bounded LRU of
// candidates keyed by a 128-bit keyed hash, each holding at most
// threshold+1 distinct values: a flood of distinct tokens or addresses
// evicts candidates, it never grows memory past Config.MemoryBound.
//
// The package writes nothing itself: revocations, audit entries and the
// mesh-wide counts go through the small interfaces Revoker, Auditor and
// Shared, wired by the node (envoy must not import sync/).
package detect

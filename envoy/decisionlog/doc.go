// Package decisionlog is jwtguard's decision log: an envoy.Observer that
// writes the decisions it is told of as JSON lines (time, node, decision
// and reason, the request's method, host, path, source address and id,
// and the token's iss, sub, jti, sid, kid and token id; never the token,
// never a header) to a file or stdout.
//
// Allows are sampled, denies are limited to so many a second, and what is
// left out is counted: in Prometheus counters and in a summary line the
// log writes now and then. Observe runs on the hot path and never blocks:
// it copies the event into a slot of a bounded queue (or drops it, counted,
// when the queue is full); one goroutine encodes and writes the lines.
// Close writes what is queued and a last summary.
package decisionlog

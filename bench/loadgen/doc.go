// Package loadgen is jwtguard's end-to-end load generator: a server under
// test (the real stack, or a baseline gRPC server that allows without
// checking) and a client that drives envoy.service.auth.v3.Authorization/Check
// (or HTTP forward-auth) with a mix of tokens, checks every decision against
// what the mix expects, and reports throughput and latency percentiles from
// an HDR histogram, as text, JSON and an SVG chart.
//
// Client and server share key material through a directory (see Keys) and a
// fixed, documented set of revocations (see RevokedSet), so the server
// exposes nothing beyond what jwtguard itself serves.
//
// The command is bench/cmd/loadgen; this package holds its logic so that it
// can be tested in one process.
package loadgen

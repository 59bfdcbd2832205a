// Package sourcetest is the conformance suite of revocation sources: Run
// checks that a source.Source keeps every point of the contract documented
// in package source, in the manner of testing/fstest.TestFS. Every source
// (sync/embedded, sync/redis) runs it from its own tests, so that the
// sources cannot drift apart; a source's own test files keep only what is
// particular to it (its storage, its failures, its topologies).
//
// The suite runs on real time: a source decides expiry by its own clock
// (Redis expires keys by the server's), so records that must expire are
// given expiries a moment ahead and the suite polls, with a deadline, until
// they are gone.
package sourcetest

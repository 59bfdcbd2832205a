// Package redistest starts real redis-server processes for tests: one per
// call, on a free loopback port, with its own data directory, stopped when
// the test ends. Tests can stop and restart a server to exercise what a node
// does while Redis is down, and start it persistent (AOF, fsync on every
// write) to check that nothing acknowledged is lost across a crash.
//
// It never touches a Redis the machine already runs (for example on 6379).
package redistest

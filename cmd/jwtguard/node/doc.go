// Package node assembles one running jwtguard: the checker over its
// revocation state, the revocation source and the follower that keeps the
// state current, the gRPC, HTTP and admin listeners, maintenance (node
// snapshots, rebuilds, snapshot publishing) and one shutdown path.
//
// Its Config is every setting of `jwtguard serve`, with one default and one
// validation each; Load fills it from flags, JWTGUARD_* variables and a
// YAML file. The binary, the tests and the load generator run nodes
// through New and Run.
package node

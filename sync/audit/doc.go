// Package audit is jwtguard's audit trail: an append-only, hash-chained
// log of every revocation, lift, block, key-set change and admin
// authentication failure, kept with the revocation source (the embedded
// store's data file, or a Redis Stream) so that it survives restarts and is
// shared by every node of a mesh.
//
// Each Entry carries the hash of the entry before it: its own Hash is the
// SHA-256 of a canonical encoding of its fields and of Prev (see
// Entry.Sum). A Store appends entries atomically with respect to every
// other writer, so that concurrent nodes form one chain. Log.Verify walks
// the chain and names the first entry that was edited, removed, reordered
// or inserted.
//
// What the chain proves: that nobody changed the trail without also
// recomputing every later hash and the stored head. Someone with write
// access to the store can do that; keep a copy of the head (jwtguard audit
// verify prints it) elsewhere to detect it. Under retention (Redis MAXLEN
// or MINID) verification starts at the oldest entry kept.
package audit

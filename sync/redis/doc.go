// Package redis is the revocation source for a mesh of jwtguard nodes: Redis
// (or Valkey; standalone, Sentinel or Cluster) holds the revocation records,
// their ordered feed and the published filter snapshot, and every node
// follows it. Import it as, say, redissource: it is named for what it
// serves, and go-redis is imported here as goredis.
//
// # Keys
//
// Every key starts with Options.Prefix, "{jwtguard}:" by default. The prefix
// must hold a Redis Cluster hash tag ("{...}") so that all keys live in one
// slot: the Put script and the pipelines below touch several at once.
//
//	seq             the feed position: the position of the newest record
//	epoch           a random ID the first Put writes, once: it names this
//	                Redis's data, so that a loss is seen (below)
//	rec:<id>        a record's JSON, expiring (PXAT) at its ExpiresAt
//	idx:<key>       sorted set of the IDs stored under one lookup key, scored
//	                by expiry (ms), expiring with its longest-lived record;
//	                <key> is kind:issuer:value, issuer and value query-escaped
//	live:<kind>     sorted set of the IDs of one kind, scored by expiry (ms):
//	                Stats counts it (ZCOUNT) and Range walks it (ZSCAN)
//	feed            a stream with IDs 0-<position>: a Put's records, up to
//	                500 an entry, column by column (field b, see batchEntry;
//	                f its first position, the ID its last), or one record's
//	                JSON (field r: a lift, or an entry of an earlier
//	                version), each with the epoch (field e); trimmed to about
//	                the last Options.FeedRetention positions (MINID ~)
//	lifted:<id>     the lift entry of lifted record <id>, expiring when the
//	                record would have (see Source.Lift)
//	node:<id>       a node's status report (JSON, see source.NodeStatus),
//	                expiring when the node stops reporting
//	nodes           sorted set of the reporting node IDs, scored by expiry (ms)
//	snapshot        the published filter snapshot (bloom snapshot format)
//	snapshot:pos    the position that snapshot reflects
//	lease           the publisher lease: the holder's random ID, with a TTL
//	audit           the audit trail (see Source.Audit): a stream of entry
//	                JSON (field e) with Redis-assigned IDs, trimmed by
//	                MAXLEN ~ or MINID ~ (AuditRetention)
//	audit:head      "<seq> <hash>" of the newest audit entry; a script
//	                appends to audit only if the writer sealed its entry
//	                after this head, so that every writer extends one chain
//
// One Lua script stores a whole Put batch: for each record it writes rec
// and idx (three commands), then the batch's members of live (one ZADD per
// kind and thousand records, one trim), its feed entries and seq. Redis runs a
// script alone, so no reader ever sees a record without its feed entry or
// the reverse, and positions are contiguous. Record IDs are chosen by the
// client, which makes the script idempotent: a retry of a batch that was
// already applied returns its positions instead of storing it twice.
//
// A lift (one script too) deletes the record's rec key and its members of
// idx and live, keeps its lift entry under lifted, and appends that entry
// to the feed; List skips lift entries and records that are gone.
//
// Expired records disappear on their own (key expiry); expired members of
// the sorted sets are removed by later Puts and skipped by every read.
//
// # Durability
//
// Put is acknowledged once Redis has run the script. That the records then
// survive a crash of Redis depends on its persistence: run it with
// appendonly yes and appendfsync always (or replicas and a failover policy
// you trust) if nothing acknowledged may be lost.
//
// # A Redis that lost its data
//
// A Redis restarted without persistence, flushed, failed over to a replica
// that missed writes, or swapped for another, has lost revocations that
// nodes still enforce. A node must not take its silence for "not revoked".
// So every Lookup reads epoch and seq after its data, in the same round
// trip (one MGET), and fails with ErrPositionAhead when the epoch changed or
// vanished or seq is behind a position the Source has seen or holds (Hold:
// the follower's own position, which may come from its snapshot on disk).
// Feed holds its entries to the same rule at the cost of the one blocking
// XREAD that brings them: every feed entry carries the epoch it was written
// under, and entries after the caller's position show that Redis holds it;
// it reads the guard itself when that is not enough (entries of an older
// writer, without epoch; a position seen past the caller's; a source that
// has seen no epoch yet) and at the end of every idle wait.
// The checker then denies what it cannot confirm (revocation_unavailable),
// the follower reports the source diverged at once (a failed Lookup wakes
// its waiting feed read), and the node keeps enforcing its own state until
// an operator restores the data or, having accepted the loss, restarts the
// nodes without their snapshots.
//
// # Down Redis
//
// New does not contact Redis, so a node starts while Redis is down and runs
// from its own snapshot; Open also pings. Every call carries a deadline
// (the caller's, or Options.Timeout) and fails rather than hangs.
package redis

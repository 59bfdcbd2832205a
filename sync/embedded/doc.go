// Package embedded is the default revocation source: the serving process owns
// the revocation records and keeps them durably in one bbolt file,
// revocations.db, under the data directory.
//
// A Store implements source.Source for a single node (and for development and
// tests). Every Put is one bbolt transaction, synced to disk before it is
// acknowledged; positions come from a bucket sequence, so they only grow and
// are never reused, even across restarts.
//
// The file holds these buckets:
//
//	meta     schema version and per-kind record counts
//	records  record ID (32 hex digits) -> record JSON
//	feed     position (big-endian uint64) -> record ID; its sequence is the store position
//	index    LookupKey.String() -> entries of record ID + expiry, so Lookup and
//	         Snapshot need no record decoding to skip expired records
//	expiry   expiry (sortable uint64) + record ID -> nothing, so Prune visits only expired records
//	audit    position (big-endian uint64) -> audit entry JSON (see Store.Audit); its head is in meta
//	lifts    lifted record ID -> the ID of its lift entry
//
// A lift (Store.Lift) deletes the lifted record from every bucket, as
// Prune would, and stores its lift entry in records, feed, expiry (with the
// lifted record's expiry, so that Prune drops it then) and lifts, but not
// in index: Lookup and Snapshot never see it, Range, List and Stats skip
// it, and only Feed returns it. Schema version 2 added the lifts bucket;
// Open upgrades a version 1 file by creating it.
//
// A file that is not a bbolt database, a truncated one, or a record that does
// not decode yields an error wrapping ErrCorrupt and naming the file, never an
// empty store or a crash.
package embedded

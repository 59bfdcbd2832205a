// Package embedded is the default revocation source: the serving process owns
// the revocation records and keeps them durably in one bbolt file,
// revocations.db, under the data directory.
//
// A Store implements source.Source for a single node (and for development and
// tests). Every Put is one bbolt transaction, synced to disk before it is
// acknowledged; positions come from a bucket sequence, so they only grow and
// are never reused, even across restarts.
//
// The file (schema 3, pages of 16 KiB) holds these buckets:
//
//	meta         schema version and per-kind record counts
//	records      record ID (32 hex digits) -> record JSON
//	feedpacks    first position (big-endian uint64) -> a pack of record ID +
//	             position entries; its sequence is the store position
//	index        LookupKey.String() -> entries of record ID + expiry, so Lookup and
//	             Snapshot need no record decoding to skip expired records
//	expirypacks  earliest expiry (sortable uint64) + pack number -> a pack of
//	             record ID + expiry entries, so Prune visits only expired records
//	audit        position (big-endian uint64) -> audit entry JSON (see Store.Audit); its head is in meta
//	lifts        lifted record ID -> the ID of its lift entry
//
// A pack holds the feed or expiry entries of up to 1,024 records of one
// Put in one value (see pack.go): a bulk load writes a bbolt key a record
// in records, one a key in index, and one a thousand records in the
// packs.
//
// A lift (Store.Lift) deletes the lifted record from records, index and
// the feed, as Prune would, and stores its lift entry in records, the feed,
// the expiry packs (with the lifted record's expiry, so that Prune drops
// it then) and lifts, but not in index: Lookup and Snapshot never see it,
// Range, List and Stats skip it, and only Feed returns it. The lifted
// record's expiry entry stays until Prune reaches it and finds no record.
//
// Open upgrades a file of an earlier schema in place: schema 1 (before
// lifts) gains the lifts bucket; schema 2 (one feed and one expiry key a
// record, in buckets feed and expiry) has those entries moved into packs,
// a bounded number a transaction, so that an upgrade stopped part way
// goes on at the next Open. A file keeps the page size it was made with.
// An older release does not open a schema 3 file, nor one whose upgrade
// is under way (its version says so until the last step).
//
// A file that is not a bbolt database, a truncated one, or a record that does
// not decode yields an error wrapping ErrCorrupt and naming the file, never an
// empty store or a crash.
package embedded

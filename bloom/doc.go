// Package bloom holds the revocation filter: a Bloom filter sized from an
// expected number of entries and a target false-positive rate, built on
// bits-and-blooms/bloom/v3.
//
// Reads are lock-free and allocation-free while revocations keep arriving:
// the filter is an immutable base plus a small, atomically updated set of
// additions since the base, both reached through one atomic pointer. Rebuilds
// (to drop expired entries, to grow, or to fold the additions into the base)
// run off the hot path and are swapped in whole.
//
// Keys are 128-bit hashes computed once per revocation key (Key, KeyOf), so
// a check never hashes strings: callers keep the Key of a verified token.
// The filter relies on keys being uniformly distributed, as KeyOf's are;
// hand-made keys such as Key{1, 2} collide with each other.
//
// # Base and delta
//
// The base is sized by Config.Entries and Config.FPRate with
// bloom.EstimateParameters (about 1.44·log2(1/p) bits per entry, k probes).
// The delta is a second filter sized for Config.DeltaEntries at FPRate/8,
// written with atomic OR; a key is reported present when the base or the
// delta says so, so a full delta adds at most an eighth of the target rate.
// When the delta holds DeltaEntries keys, Add folds it into a copy of the
// base in the background (one goroutine at a time; the copy doubles the
// base's memory while it runs). Additions keep landing in the delta
// meanwhile, and the delta's false-positive rate rises until the fold ends.
//
// Writers (Add, Compact, Rebuild, Replace) are serialized by a mutex that
// is never held while user code runs; Compact, Rebuild and Replace also
// wait for each other.
//
// # Probes
//
// Probe i (0 <= i < k) of key (H1, H2) in an array of m bits is bit
//
//	x_i   = H1 + i·D + (i³ − i)/6   (mod 2⁶⁴), with D = H2 | 1
//	loc_i = ⌊x_i · m / 2⁶⁴⌋
//
// enhanced double hashing, reduced to [0, m) by a multiply-high instead of
// a modulo. Bit b lives in 64-bit word b/64 at bit b%64. The scheme is part
// of the snapshot format: changing it needs a new format version.
//
// # Snapshot format, version 1
//
// All integers are little-endian.
//
//	offset size  field
//	     0    8  magic "JWGBLOOM"
//	     8    4  version (1)
//	    12    8  Config.Entries
//	    20    8  Config.FPRate (IEEE 754 bits)
//	    28    8  Config.DeltaEntries
//	    36    8  position
//	    44    8  keys in the base (duplicates included)
//	    52    8  m, bits of the base (must match the config)
//	    60    4  k, probes of the base (must match the config)
//	    64    8  n, keys in the delta
//	    72    4  CRC-32C (Castagnoli) of bytes 0..71
//	    76       base: ⌈m/64⌉ 64-bit words
//	             delta: n keys, each H1 then H2 (the delta's bits are rebuilt)
//	             CRC-32C of everything before it
//
// The header checksum is verified before any size in it is trusted. A
// snapshot that fails a check is rejected with ErrCorruptSnapshot; one of
// another version with ErrUnsupportedVersion.
package bloom

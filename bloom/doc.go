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
package bloom

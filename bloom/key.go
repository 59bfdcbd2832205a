package bloom

import (
	"crypto/sha256"
	"encoding/binary"
)

// Key is the 128-bit hash of one revocation key. It is stable across
// processes and versions (snapshots carry filters built from it), so its
// derivation never changes within a snapshot format version.
type Key struct {
	H1, H2 uint64
}

// KeyOf hashes b into a Key: the first 128 bits of its SHA-256.
func KeyOf(b []byte) Key {
	sum := sha256.Sum256(b)
	return Key{
		H1: binary.LittleEndian.Uint64(sum[0:8]),
		H2: binary.LittleEndian.Uint64(sum[8:16]),
	}
}

// KeyOfString is KeyOf for a string.
func KeyOfString(s string) Key {
	return KeyOf([]byte(s))
}

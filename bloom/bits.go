package bloom

import (
	"math/bits"
	"sync/atomic"

	"github.com/bits-and-blooms/bloom/v3"
)

// add and has of base and delta walk the probes described in the package
// documentation ("Probes"); they are part of the snapshot format.

// base is the large, immutable part of a filter. Its words are never written
// once the base is published.
type base struct {
	bf      *bloom.BloomFilter // owns words; sized by bloom.EstimateParameters
	words   []uint64
	m       uint64
	k       uint
	entries uint64 // keys added, duplicates included
}

// newBase returns an empty base sized by cfg.
func newBase(cfg Config) *base {
	return baseFrom(bloom.NewWithEstimates(cfg.Entries, cfg.FPRate), 0)
}

// baseFrom wraps bf, which holds entries keys.
func baseFrom(bf *bloom.BloomFilter, entries uint64) *base {
	return &base{bf: bf, words: bf.BitSet().Words(), m: uint64(bf.Cap()), k: bf.K(), entries: entries}
}

// add sets the bits of key. Only for a base not yet published.
func (b *base) add(key Key) {
	x, d := key.H1, key.H2|1
	for i := uint(0); i < b.k; i++ {
		loc, _ := bits.Mul64(x, b.m)
		b.words[loc>>6] |= 1 << (loc & 63)
		x += d
		d += uint64(i) + 1
	}
}

// has reports whether every bit of key is set.
func (b *base) has(key Key) bool {
	x, d := key.H1, key.H2|1
	for i := uint(0); i < b.k; i++ {
		loc, _ := bits.Mul64(x, b.m)
		if b.words[loc>>6]&(1<<(loc&63)) == 0 {
			return false
		}
		x += d
		d += uint64(i) + 1
	}
	return true
}

// clone returns a copy that can be written before it is published.
func (b *base) clone() *base {
	return baseFrom(b.bf.Copy(), b.entries)
}

// setBits counts the bits set.
func (b *base) setBits() uint64 {
	var n int
	for _, w := range b.words {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// delta is the small filter of additions since the base. Its words are set
// with atomic OR while readers load them, so neither side locks.
type delta struct {
	words []atomic.Uint64
	m     uint64
	k     uint
}

// newDelta returns an empty delta sized by cfg.
func newDelta(cfg Config) *delta {
	m, k := cfg.deltaParams()
	return &delta{words: make([]atomic.Uint64, (m+63)/64), m: uint64(m), k: k}
}

// add sets the bits of key; safe with concurrent has.
func (d *delta) add(key Key) {
	x, s := key.H1, key.H2|1
	for i := uint(0); i < d.k; i++ {
		loc, _ := bits.Mul64(x, d.m)
		d.words[loc>>6].Or(1 << (loc & 63))
		x += s
		s += uint64(i) + 1
	}
}

// has reports whether every bit of key is set; safe with concurrent add.
func (d *delta) has(key Key) bool {
	x, s := key.H1, key.H2|1
	for i := uint(0); i < d.k; i++ {
		loc, _ := bits.Mul64(x, d.m)
		if d.words[loc>>6].Load()&(1<<(loc&63)) == 0 {
			return false
		}
		x += s
		s += uint64(i) + 1
	}
	return true
}

// setBits counts the bits set.
func (d *delta) setBits() uint64 {
	var n int
	for i := range d.words {
		n += bits.OnesCount64(d.words[i].Load())
	}
	return uint64(n)
}

package scope

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
)

// Sketch estimates how many distinct addresses a token was used from, in
// 64 bytes whatever the number: a linear-counting bitmap of 512 bits,
// accurate to a few percent up to about a thousand addresses and
// saturating (Estimate reports at least SketchSaturated) beyond. Two
// sketches merge by OR, so nodes' sketches of one token combine into the
// mesh-wide count. The hash is fixed (FNV-1a, then a mixer), not seeded
// per process, for that reason.
type Sketch [8]uint64

const sketchBits = 512

// SketchSaturated is the estimate of a sketch with every bit set.
const SketchSaturated = 3000

// Add notes addr.
func (s *Sketch) Add(addr netip.Addr) {
	b := addr.As16()
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	// FNV mixes near addresses poorly: finish with splitmix64's mixer.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	i := h % sketchBits
	s[i/64] |= 1 << (i % 64)
}

// Merge adds the addresses of o.
func (s *Sketch) Merge(o *Sketch) {
	for i := range s {
		s[i] |= o[i]
	}
}

// Estimate returns the estimated number of distinct addresses added.
func (s *Sketch) Estimate() int {
	set := 0
	for _, w := range s {
		set += bits.OnesCount64(w)
	}
	zero := sketchBits - set
	if zero == 0 {
		return SketchSaturated
	}
	return int(math.Round(-sketchBits * math.Log(float64(zero)/sketchBits)))
}

// MarshalJSON encodes the sketch as hex.
func (s Sketch) MarshalJSON() ([]byte, error) {
	var b [64]byte
	for i, w := range s {
		for j := range 8 {
			b[i*8+j] = byte(w >> (8 * j))
		}
	}
	return json.Marshal(hex.EncodeToString(b[:]))
}

// UnmarshalJSON decodes the hex of MarshalJSON.
func (s *Sketch) UnmarshalJSON(data []byte) error {
	var h string
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("sketch: %w", err)
	}
	if h == "" {
		*s = Sketch{}
		return nil
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return fmt.Errorf("sketch: %w", err)
	}
	if len(b) != 64 {
		return errors.New("sketch: want 64 bytes")
	}
	for i := range s {
		var w uint64
		for j := range 8 {
			w |= uint64(b[i*8+j]) << (8 * j)
		}
		s[i] = w
	}
	return nil
}

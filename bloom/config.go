package bloom

import (
	"fmt"
	"math"

	"github.com/bits-and-blooms/bloom/v3"
)

// Limits on Config: they keep a filter, and any snapshot a reader accepts,
// to a size a node can hold.
const (
	maxEntries      = 1 << 32
	maxDeltaEntries = 1 << 24
	minFPRate       = 1e-12
	maxFPRate       = 0.5
)

// deltaFPDivisor sizes the delta for FPRate/deltaFPDivisor, so that a full
// delta adds at most an eighth of the target to the filter's false-positive
// rate (the base and the delta are probed one after the other).
const deltaFPDivisor = 8

// Config sizes a filter.
type Config struct {
	// Entries is the expected number of entries of the base filter. Past it
	// the false-positive rate rises: rebuild with a larger value.
	Entries uint
	// FPRate is the target false-positive rate of the filter, in (0, 0.5].
	FPRate float64
	// DeltaEntries is how many additions are kept beside the base before
	// they are folded into it in the background.
	DeltaEntries uint
}

// DefaultConfig returns the default sizing: one million entries at a 0.1 %
// false-positive rate, folding additions in every 65,536.
func DefaultConfig() Config {
	return Config{Entries: 1_000_000, FPRate: 0.001, DeltaEntries: 65_536}
}

// Validate reports the first field of c that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Entries == 0 || c.Entries > maxEntries:
		return fmt.Errorf("bloom: Entries = %d, want 1..%d", c.Entries, uint64(maxEntries))
	case math.IsNaN(c.FPRate) || c.FPRate < minFPRate || c.FPRate > maxFPRate:
		return fmt.Errorf("bloom: FPRate = %g, want %g..%g", c.FPRate, minFPRate, maxFPRate)
	case c.DeltaEntries == 0 || c.DeltaEntries > maxDeltaEntries:
		return fmt.Errorf("bloom: DeltaEntries = %d, want 1..%d", c.DeltaEntries, maxDeltaEntries)
	}
	return nil
}

// baseParams returns the bits and probes of the base filter sized by c.
func (c Config) baseParams() (m, k uint) {
	return bloom.EstimateParameters(c.Entries, c.FPRate)
}

// deltaParams returns the bits and probes of the delta filter sized by c.
func (c Config) deltaParams() (m, k uint) {
	return bloom.EstimateParameters(c.DeltaEntries, c.FPRate/deltaFPDivisor)
}

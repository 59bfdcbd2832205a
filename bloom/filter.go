package bloom

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Filter is a revocation filter: an immutable base plus a small delta of
// additions since the base, both reached through one atomic pointer.
// MayContain never locks; writers are serialized among themselves. Make
// one with New, ReadSnapshot or LoadFile: the zero Filter is not usable.
type Filter struct {
	cur atomic.Pointer[state]

	// rebuildMu serializes Compact, Rebuild and Replace: the writers that
	// swap in a new base. It is taken before mu.
	rebuildMu sync.Mutex
	// mu serializes Add and every swap of cur. It is never held across a
	// call into user code.
	mu sync.Mutex
	// addedMax is the highest position passed to Add since the running
	// Rebuild started. Guarded by mu.
	addedMax uint64

	compacting atomic.Bool // a background Compact is running
}

// state is one version of the filter. Only delta's bits (atomic), keys and
// pos (both written under Filter.mu) change after it is published; a prefix
// of keys never changes, so it may be read after mu is released.
type state struct {
	cfg   Config
	base  *base
	delta *delta
	keys  []Key // the keys of delta, in order of addition
	pos   atomic.Uint64
}

// newState returns a state over b with a fresh delta d holding keys.
func newState(cfg Config, b *base, d *delta, keys []Key, pos uint64) *state {
	for _, k := range keys {
		d.add(k)
	}
	s := &state{cfg: cfg, base: b, delta: d, keys: slices.Clone(keys)}
	s.pos.Store(pos)
	return s
}

// New returns an empty filter sized by cfg, at position 0.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Filter{}
	f.cur.Store(newState(cfg, newBase(cfg), newDelta(cfg), nil, 0))
	return f, nil
}

// MayContain reports whether k may have been added: false means it was not.
// It does not lock or allocate and is safe with every other method.
func (f *Filter) MayContain(k Key) bool {
	s := f.cur.Load()
	return s.base.has(k) || s.delta.has(k)
}

// Add adds k, seen at feed position pos. MayContain(k) is true once Add
// returns, and Position becomes at least pos. When the delta is full, Add
// starts a background Compact and keeps accepting additions meanwhile.
func (f *Filter) Add(k Key, pos uint64) {
	f.mu.Lock()
	s := f.cur.Load()
	s.delta.add(k)
	s.keys = append(s.keys, k)
	if pos > s.pos.Load() {
		s.pos.Store(pos)
	}
	f.addedMax = max(f.addedMax, pos)
	full := uint(len(s.keys)) >= s.cfg.DeltaEntries
	f.mu.Unlock()
	if full {
		f.compactInBackground()
	}
}

// Advance moves the position to pos, when that is ahead, without adding a
// key: for a feed entry that holds nothing to add (one that does not
// decode, skipped), so that the feed goes on after it.
func (f *Filter) Advance(pos uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.cur.Load(); pos > s.pos.Load() {
		s.pos.Store(pos)
	}
	f.addedMax = max(f.addedMax, pos)
}

// compactInBackground starts one goroutine, unless one runs already, that
// compacts until the delta is no longer full.
func (f *Filter) compactInBackground() {
	if !f.compacting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			_ = f.Compact() // cannot fail: it only copies memory
			f.compacting.Store(false)
			// An Add that filled the delta while this goroutine ran saw
			// compacting set and left the work to it.
			if !f.deltaFull() || !f.compacting.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// deltaFull reports whether the delta holds DeltaEntries keys or more.
func (f *Filter) deltaFull() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.cur.Load()
	return uint(len(s.keys)) >= s.cfg.DeltaEntries
}

// Position returns the feed position the filter reflects.
func (f *Filter) Position() uint64 {
	return f.cur.Load().pos.Load()
}

// Config returns the sizing of the current base.
func (f *Filter) Config() Config {
	return f.cur.Load().cfg
}

// Compact folds the delta into a copy of the base and swaps it in, leaving
// an empty delta (or one holding the additions made meanwhile). It needs
// memory for a second base while it runs.
func (f *Filter) Compact() error {
	f.rebuildMu.Lock()
	defer f.rebuildMu.Unlock()

	f.mu.Lock()
	s := f.cur.Load()
	folded := s.keys
	f.mu.Unlock()
	if len(folded) == 0 {
		return nil
	}

	b := s.base.clone()
	for _, k := range folded {
		b.add(k)
	}
	b.entries += uint64(len(folded))
	d := newDelta(s.cfg)

	f.mu.Lock()
	defer f.mu.Unlock()
	// s is still current: only holders of rebuildMu swap it.
	f.cur.Store(newState(s.cfg, b, d, s.keys[len(folded):], s.pos.Load()))
	return nil
}

// Rebuild builds a new base sized by cfg from the keys that keys passes to
// add (for example the live records of a source, expired ones left out),
// then swaps it in. Keys added before Rebuild and not passed to add are
// dropped. Additions made while it runs are kept, in the new delta, and the
// position becomes the larger of pos and theirs.
//
// keys runs without any lock held, on the calling goroutine; add must be
// called only from keys, before it returns. If keys fails, the filter is
// unchanged and its error is returned wrapped. keys must not call Compact,
// Rebuild or Replace on f.
func (f *Filter) Rebuild(cfg Config, pos uint64, keys func(add func(Key)) error) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bloom: rebuild: %w", err)
	}
	f.rebuildMu.Lock()
	defer f.rebuildMu.Unlock()

	f.mu.Lock()
	s := f.cur.Load()
	mark := len(s.keys)
	f.addedMax = 0
	f.mu.Unlock()

	b := newBase(cfg)
	done := false
	err := keys(func(k Key) {
		if done {
			panic("bloom: Rebuild add called after keys returned")
		}
		b.add(k)
		b.entries++
	})
	done = true
	if err != nil {
		return fmt.Errorf("bloom: rebuild: %w", err)
	}
	d := newDelta(cfg)

	f.mu.Lock()
	ns := newState(cfg, b, d, s.keys[mark:], max(pos, f.addedMax))
	f.cur.Store(ns)
	full := uint(len(ns.keys)) >= cfg.DeltaEntries
	f.mu.Unlock()
	if full {
		f.compactInBackground()
	}
	return nil
}

// Replace makes f hold g's whole state (config, base, delta, position) in
// one step, as a follower does when it reloads a snapshot. f and g stay
// independent afterwards. Replace waits for a running Compact or Rebuild of
// f to finish.
func (f *Filter) Replace(g *Filter) {
	if f == g {
		return
	}
	g.mu.Lock()
	gs := g.cur.Load()
	keys, pos := gs.keys, gs.pos.Load()
	g.mu.Unlock()
	ns := newState(gs.cfg, gs.base, newDelta(gs.cfg), keys, pos)

	f.rebuildMu.Lock()
	defer f.rebuildMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur.Store(ns)
}

// Stats describes a filter's size and fill.
type Stats struct {
	Entries      uint64 // BaseEntries + DeltaEntries
	BaseEntries  uint64 // keys in the base, duplicates included
	DeltaEntries uint64 // keys in the delta, not yet folded into the base
	Bits         uint64 // bits of the base and the delta
	K            uint   // probes per key in the base
	Bytes        uint64 // memory of the bit arrays

	FillRatio       float64 // share of Bits set
	EstimatedFPRate float64 // false-positive rate estimated from the fill of base and delta
	Position        uint64
}

// Stats returns the filter's statistics. It counts every bit, so it costs
// time in proportion to the filter's size: call it for metrics, not per
// request.
func (f *Filter) Stats() Stats {
	f.mu.Lock()
	s := f.cur.Load()
	nDelta := uint64(len(s.keys))
	pos := s.pos.Load()
	f.mu.Unlock()

	b, d := s.base, s.delta
	bSet, dSet := b.setBits(), d.setBits()
	bFP := math.Pow(float64(bSet)/float64(b.m), float64(b.k))
	dFP := math.Pow(float64(dSet)/float64(d.m), float64(d.k))
	return Stats{
		Entries:         b.entries + nDelta,
		BaseEntries:     b.entries,
		DeltaEntries:    nDelta,
		Bits:            b.m + d.m,
		K:               b.k,
		Bytes:           8 * uint64(len(b.words)+len(d.words)),
		FillRatio:       float64(bSet+dSet) / float64(b.m+d.m),
		EstimatedFPRate: bFP + dFP - bFP*dFP, // a key passes base or delta
		Position:        pos,
	}
}

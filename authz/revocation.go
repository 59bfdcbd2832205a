package authz

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/jwtguard/jwtguard/bloom"
)

// The revocation checks run on every request, in this order; a verified
// token carries the filter key of each.
const (
	checkToken = iota
	checkSubject
	checkSession
	checkKey
	checkIssuerBefore
	numChecks
)

var checkKinds = [numChecks]Kind{KindToken, KindSubject, KindSession, KindKey, KindIssuerBefore}

// RevocationConfig tunes the revocation check.
type RevocationConfig struct {
	// ConfirmCacheSize bounds the LRU of confirmed answers.
	ConfirmCacheSize int `json:"confirm-cache-size"`
	// ConfirmTimeout bounds one exact lookup at the source.
	ConfirmTimeout time.Duration `json:"confirm-timeout"`
	// AllowUnconfirmed lets a request through when the filter says "maybe"
	// and the source cannot confirm. Off by default: such requests are denied.
	AllowUnconfirmed bool `json:"allow-unconfirmed"`
}

// DefaultRevocationConfig returns the defaults.
func DefaultRevocationConfig() RevocationConfig {
	return RevocationConfig{ConfirmCacheSize: 100_000, ConfirmTimeout: 100 * time.Millisecond}
}

// Validate says which field is wrong.
func (c RevocationConfig) Validate() error {
	if c.ConfirmCacheSize < 1 {
		return fmt.Errorf("confirm-cache-size: %d, want at least 1", c.ConfirmCacheSize)
	}
	if c.ConfirmTimeout <= 0 {
		return fmt.Errorf("confirm-timeout: %s, want a positive duration", c.ConfirmTimeout)
	}
	return nil
}

// Revocations is a node's revocation state: the Bloom filter, the confirm
// cache and the exact lookup behind them. It is safe for concurrent use; the
// check never locks unless the filter says "maybe".
type Revocations struct {
	cfg     RevocationConfig
	filter  *bloom.Filter
	lookup  Lookup
	confirm *lru.Cache[bloom.Key, *confirmAnswer]

	// mu orders Apply against confirm-cache fills; gen counts applies so a
	// lookup answered before a revocation is never cached after it.
	mu    sync.Mutex
	gen   atomic.Uint64
	ready atomic.Bool
	// next, while ReplaceWith catches a new filter up, receives every
	// record applied meanwhile too, so the swap loses none.
	next atomic.Pointer[bloom.Filter]

	maybes, confirmHits, lookups, lookupErrors, lookupNanos atomic.Uint64
}

// confirmAnswer is the immutable, exact answer for one filter key: the
// revocation rules stored under it (none: a false positive).
type confirmAnswer struct {
	rules []revocationRule
}

type revocationRule struct {
	issuer string // "" matches every issuer
	// before is the latest issue time (unix seconds) the rule covers;
	// math.MaxInt64 when the record has no Before.
	before int64
}

// rule is what r enforces on the tokens under its lookup key.
func (r *Record) rule() revocationRule {
	before := int64(math.MaxInt64)
	if !r.Before.IsZero() {
		before = r.Before.Unix()
	}
	return revocationRule{issuer: r.Issuer, before: before}
}

// NewRevocations returns the state over filter, confirmed through lookup.
// It is not ready until SetReady(true): until then every check is denied.
func NewRevocations(filter *bloom.Filter, lookup Lookup, cfg RevocationConfig) (*Revocations, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("revocation config: %w", err)
	}
	if filter == nil || lookup == nil {
		return nil, errors.New("revocations need a filter and a lookup")
	}
	cache, err := lru.New[bloom.Key, *confirmAnswer](cfg.ConfirmCacheSize)
	if err != nil {
		return nil, fmt.Errorf("confirm cache: %w", err)
	}
	return &Revocations{cfg: cfg, filter: filter, lookup: lookup, confirm: cache}, nil
}

// Filter returns the live filter.
func (r *Revocations) Filter() *bloom.Filter { return r.filter }

// SetReady marks the state loaded (or not).
func (r *Revocations) SetReady(ok bool) { r.ready.Store(ok) }

// Ready reports whether revocation state has been loaded.
func (r *Revocations) Ready() bool { return r.ready.Load() }

// Enforce enforces recs at once without moving the filter's feed position:
// for a server that has just written them to the source, before the feed
// brings them (Apply will then see them again, harmlessly).
func (r *Revocations) Enforce(recs ...Record) {
	for _, rec := range recs {
		rec.Position = 0
		r.Apply(rec)
	}
}

// Apply enforces recs read from the feed, in feed order: it adds them to
// the filter (whose position follows theirs) and brings any cached answer
// for their keys up to date at once. Applying a record twice is harmless.
func (r *Revocations) Apply(recs ...Record) {
	for i := range recs {
		rec := &recs[i]
		k := rec.LookupKey().FilterKey()
		rule := rec.rule()
		r.mu.Lock()
		// Under mu, so a ReplaceWith swap sees the record in both filters
		// or in neither (and then it is in the live one).
		r.filter.Add(k, rec.Position)
		if next := r.next.Load(); next != nil {
			next.Add(k, rec.Position)
		}
		r.gen.Add(1)
		if old, ok := r.confirm.Peek(k); ok {
			rules := append(append(make([]revocationRule, 0, len(old.rules)+1), old.rules...), rule)
			r.confirm.Add(k, &confirmAnswer{rules: rules})
		} else if rec.coversEveryToken() {
			r.confirm.Add(k, &confirmAnswer{rules: []revocationRule{rule}})
		}
		r.mu.Unlock()
	}
}

// coversEveryToken reports whether rec alone decides every token under its
// lookup key, so it can be cached as the whole answer.
func (r *Record) coversEveryToken() bool {
	// Subject and key records are looked up without their issuer, so one
	// that names an issuer leaves the other issuers' tokens to other records.
	issuerInKey := r.Kind != KindSubject && r.Kind != KindKey
	return r.Before.IsZero() && (r.Issuer == "" || issuerInKey)
}

// Replace swaps in a whole new filter (a reloaded snapshot) and forgets
// every cached answer, since records may have arrived that were never
// applied one by one.
func (r *Revocations) Replace(f *bloom.Filter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filter.Replace(f)
	r.gen.Add(1)
	r.confirm.Purge()
}

// ReplaceWith swaps in f (a snapshot, typically older than the live
// filter) once catchUp has brought it up to date, without a moment in which
// a revocation already enforced is not: records applied while catchUp runs
// go to both filters. The live filter's position never goes backwards: if
// f ends behind it, nothing is swapped and an error says so.
func (r *Revocations) ReplaceWith(f *bloom.Filter, catchUp func(*bloom.Filter) error) error {
	if !r.next.CompareAndSwap(nil, f) {
		return errors.New("a filter replacement is already running")
	}
	defer r.next.Store(nil)
	if err := catchUp(f); err != nil {
		return fmt.Errorf("catch up the new filter: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.Position() < r.filter.Position() {
		return fmt.Errorf("new filter at position %d is behind the live one at %d", f.Position(), r.filter.Position())
	}
	r.filter.Replace(f)
	r.gen.Add(1)
	r.confirm.Purge()
	return nil
}

// RevocationStats counts the work of the revocation check.
type RevocationStats struct {
	Maybes       uint64        // filter answers "maybe"
	ConfirmHits  uint64        // maybes answered by the confirm cache
	Lookups      uint64        // exact lookups at the source
	LookupErrors uint64        // lookups that failed or timed out
	LookupTime   time.Duration // total time spent in lookups
	ConfirmSize  int           // answers in the confirm cache
}

// Stats reports counters since start.
func (r *Revocations) Stats() RevocationStats {
	return RevocationStats{
		Maybes:       r.maybes.Load(),
		ConfirmHits:  r.confirmHits.Load(),
		Lookups:      r.lookups.Load(),
		LookupErrors: r.lookupErrors.Load(),
		LookupTime:   time.Duration(r.lookupNanos.Load()),
		ConfirmSize:  r.confirm.Len(),
	}
}

// check returns ReasonOK, or ReasonRevoked with the kind of record that
// matched, or ReasonUnavailable when a "maybe" could not be confirmed.
func (r *Revocations) check(ctx context.Context, v *verified) (Reason, Kind) {
	for i := 0; i < numChecks; i++ {
		if !v.applies(i) || !r.filter.MayContain(v.keys[i]) {
			continue
		}
		r.maybes.Add(1)
		a, err := r.answer(ctx, i, v)
		if err != nil {
			if r.cfg.AllowUnconfirmed {
				continue
			}
			return ReasonUnavailable, checkKinds[i]
		}
		if a.revokes(i, v) {
			return ReasonRevoked, checkKinds[i]
		}
	}
	return ReasonOK, ""
}

// answer returns the exact answer for check i of v, from the confirm cache
// or, on a miss, from the source (and caches it).
func (r *Revocations) answer(ctx context.Context, i int, v *verified) (*confirmAnswer, error) {
	k := v.keys[i]
	if a, ok := r.confirm.Get(k); ok {
		r.confirmHits.Add(1)
		return a, nil
	}
	gen := r.gen.Load()
	lk := v.lookupKey(i)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConfirmTimeout)
	start := time.Now()
	recs, err := r.lookup.Lookup(ctx, lk)
	cancel()
	r.lookups.Add(1)
	r.lookupNanos.Add(uint64(time.Since(start)))
	if err != nil {
		r.lookupErrors.Add(1)
		return nil, fmt.Errorf("confirm %s: %w", lk.Kind, err)
	}
	a := &confirmAnswer{}
	for _, rec := range recs {
		if rec.LookupKey() == lk {
			a.rules = append(a.rules, rec.rule())
		}
	}
	r.mu.Lock()
	if r.gen.Load() == gen {
		r.confirm.Add(k, a)
	}
	r.mu.Unlock()
	return a, nil
}

// revokes reports whether any rule of a revokes v under check i: a rule of
// its issuer (or of every issuer) whose Before, when it has one, is at or
// after the token's issue time.
func (a *confirmAnswer) revokes(i int, v *verified) bool {
	for _, rule := range a.rules {
		if rule.issuer != "" && rule.issuer != v.claims.Issuer {
			continue
		}
		if v.claims.IssuedAt <= rule.before {
			return true
		}
	}
	return false
}

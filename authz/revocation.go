package authz

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/jwtguard/jwtguard/bloom"
)

// The revocation checks run on every request, in this order; a verified
// token carries the filter key of each.
const (
	checkToken = iota
	checkSubject
	checkSession
	checkKey
	checkIssuerBefore // and clamps, stored under the same key (see Record.LookupKey)
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

	// mu orders Apply and Replace against confirm-cache fills.
	mu sync.Mutex
	// gens holds a generation per key slot (see slotOf): Apply of a key
	// bumps its slot's, a Replace bumps all. A lookup caches its answer only
	// if its slot's generation is still the one read before it asked the
	// source, so an answer that may predate a revocation of its key is never
	// cached after it, while revocations of other keys leave it be.
	gens [numSlots]atomic.Uint64
	// changes counts the changes of the revocation state (a record
	// applied, a filter replaced; a lift must bump it too), each bumped
	// once the change is in force in the filter and the confirm cache: a
	// token cached as revoked is checked again after one, so that the
	// cached answer (and the kind it names) is always the check's (see
	// stillRevoked).
	changes atomic.Uint64
	// ahead holds the records Enforce added before the feed brought
	// them, under mu: runs of consecutive feed positions, with a hash of
	// each record's ID, aheadCount of them in all.
	ahead      []aheadRun
	aheadCount int
	// flights merges the source lookups of one key from one generation
	// of its slot.
	flights singleflight.Group
	ready   atomic.Bool
	// next, while ReplaceWith catches a new filter up, receives every
	// record applied meanwhile too, so the swap loses none.
	next atomic.Pointer[bloom.Filter]

	maybes, confirmHits, lookups, sharedLookups, lookupErrors, lookupNanos, lifts atomic.Uint64
	waiting                                                                       atomic.Int64
}

// numSlots is the number of key slots with a generation of their own: a
// revocation costs the in-flight lookups of 1/numSlots of the keys their
// cache fill, instead of all of them.
const numSlots = 4096

// slotOf is the generation slot of k.
func slotOf(k bloom.Key) uint64 { return k.H1 % numSlots }

// confirmAnswer is the immutable, exact answer for one filter key: the
// revocation rules stored under it (none: a false positive).
type confirmAnswer struct {
	rules []revocationRule
}

// add adds rec's rule to a, which is not shared yet.
func (a *confirmAnswer) add(rec *Record) {
	a.rules = append(a.rules, rec.rule())
}

// with returns a copy of a (nil: no rule) with rec's rule added.
func (a *confirmAnswer) with(rec *Record) *confirmAnswer {
	b := &confirmAnswer{}
	if a != nil {
		b.rules = append(make([]revocationRule, 0, len(a.rules)+1), a.rules...)
	}
	b.add(rec)
	return b
}

type revocationRule struct {
	issuer string // "" matches every issuer
	// before is the latest issue time (unix seconds) the rule covers;
	// math.MaxInt64 when the record has no Before.
	before int64
	// maxAge, when positive (a clamp), replaces before: the rule covers
	// the tokens issued more than maxAge seconds before the request.
	maxAge int64
}

// rule is what r enforces on the tokens under its lookup key.
func (r *Record) rule() revocationRule {
	before := int64(math.MaxInt64)
	if !r.Before.IsZero() {
		before = r.Before.Unix()
	}
	return revocationRule{issuer: r.Issuer, before: before, maxAge: r.MaxAgeSeconds}
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
// for a server that has just written them to the source (so they carry
// their ID and Position), before the feed brings them.
//
// A batch of more than maxFilledEnforce records (a bulk import's chunk)
// updates the cached answers of its keys but caches none for a key that
// has none: a lookup finds the records in the source, which holds them
// before Enforce is called, so no decision changes; a bulk load would
// otherwise spend half of its enforcing on filling the confirm cache and
// evict the answers of the keys in use with answers nobody asked for.
func (r *Revocations) Enforce(recs ...Record) {
	fill := len(recs) <= maxFilledEnforce
	for i := range recs {
		r.mu.Lock()
		r.apply(&recs[i], true, fill)
		r.mu.Unlock()
	}
}

// maxFilledEnforce is the largest batch whose Enforce caches answers for
// keys without one: the admin API's largest batch (see sync/admin).
const maxFilledEnforce = 10_000

// maxEnforcedAhead bounds the records remembered as enforced ahead of the
// feed (8 bytes each), and maxAheadRuns the runs of consecutive positions
// they are kept in; past either, the feed's copy is added to the filter
// again (counted twice, never missed). A bulk import enforces runs of
// 250,000 records.
const (
	maxEnforcedAhead = 2_000_000
	maxAheadRuns     = 1024
)

// aheadRun is a run of records Enforce added before the feed, at the
// consecutive feed positions from first: the hash of each one's ID, so
// that the feed's copy of the very record only moves the position (a
// record the source holds at that position under another ID, as after a
// loss of data, is added).
type aheadRun struct {
	first uint64
	ids   []uint64
}

// idSeed keys the hashes of record IDs in aheadRun.
var idSeed = maphash.MakeSeed()

// noteAhead remembers rec, just enforced ahead of the feed. Under mu.
func (r *Revocations) noteAhead(rec *Record) {
	if rec.ID == "" || rec.Position == 0 || r.aheadCount >= maxEnforcedAhead {
		return
	}
	h := maphash.String(idSeed, rec.ID)
	if n := len(r.ahead); n > 0 {
		if run := &r.ahead[n-1]; run.first+uint64(len(run.ids)) == rec.Position {
			run.ids = append(run.ids, h)
			r.aheadCount++
			return
		}
	}
	if len(r.ahead) >= maxAheadRuns {
		return
	}
	r.ahead = append(r.ahead, aheadRun{first: rec.Position, ids: []uint64{h}})
	r.aheadCount++
}

// EnforcedAhead reports whether the record with ID id at feed position
// pos is one Enforce added ahead of the feed and still remembers: a feed
// reader may then give Apply its AheadCopy instead of decoding it. It is
// false while a filter replacement runs (see ReplaceWith), whose catch-up
// needs every record whole.
func (r *Revocations) EnforcedAhead(pos uint64, id []byte) bool {
	if r.next.Load() != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.aheadAt(pos, maphash.Bytes(idSeed, id))
	return ok
}

// AheadCopy is the feed's copy of a record this node enforced ahead of the
// feed (EnforcedAhead), made without decoding it: only its ID and
// position. Apply only moves the position past it, and stops before it
// (leaving it to be read again whole) when the node no longer remembers
// that record there.
func AheadCopy(id string, pos uint64) Record {
	return Record{ID: id, Position: pos, aheadCopy: true}
}

// IsAheadCopy reports whether r is an AheadCopy: a feed record without its
// contents, which only Apply takes.
func (r *Record) IsAheadCopy() bool { return r.aheadCopy }

// aheadAt returns the run holding position pos, if it holds the ID of hash
// h there. Under mu.
func (r *Revocations) aheadAt(pos, h uint64) (*aheadRun, bool) {
	for i := range r.ahead {
		run := &r.ahead[i]
		if pos >= run.first && pos < run.first+uint64(len(run.ids)) {
			return run, run.ids[pos-run.first] == h
		}
	}
	return nil, false
}

// forgetAhead forgets the records enforced ahead of the feed. Under mu.
func (r *Revocations) forgetAhead() {
	r.ahead, r.aheadCount = nil, 0
}

// takeAhead reports whether rec, brought by the feed, is a record Enforce
// added already, and forgets the runs whose last position the feed has
// reached (it brings records in position order). Under mu.
func (r *Revocations) takeAhead(rec *Record) bool {
	p, found := rec.Position, false
	kept := r.ahead[:0]
	for _, run := range r.ahead {
		end := run.first + uint64(len(run.ids)) // one past its last position
		if !found && p >= run.first && p < end && run.ids[p-run.first] == maphash.String(idSeed, rec.ID) {
			found = true
		}
		if p+1 >= end {
			r.aheadCount -= len(run.ids)
			continue
		}
		kept = append(kept, run)
	}
	clear(r.ahead[len(kept):])
	r.ahead = kept
	return found
}

// Apply enforces recs read from the feed, in feed order: it adds them to
// the filter (whose position follows theirs) and brings any cached answer
// for their keys up to date at once. Applying a record twice is harmless.
// It stops before an AheadCopy of a record no longer remembered as
// enforced ahead (the filter's position stays before it, so that a
// follower reads it again, whole), and returns how many it applied.
func (r *Revocations) Apply(recs ...Record) int {
	for i := range recs {
		r.mu.Lock()
		ok := r.applyFeed(&recs[i])
		r.mu.Unlock()
		if !ok {
			return i
		}
	}
	return len(recs)
}

// applyFeed applies rec, read from the feed, under mu; false for an
// AheadCopy it cannot apply.
func (r *Revocations) applyFeed(rec *Record) bool {
	if !rec.aheadCopy {
		r.apply(rec, false, true)
		return true
	}
	// Only a record still remembered is in the live filter for sure (a
	// replacement forgets them all), and none while a replacement runs:
	// its new filter would not get the key.
	if rec.Position == 0 || len(r.ahead) == 0 || r.next.Load() != nil || !r.takeAhead(rec) {
		return false
	}
	r.filter.Advance(rec.Position)
	return true
}

// apply enforces rec, under mu (so a ReplaceWith swap sees it in both
// filters or in neither, and then it is in the live one). A record the
// server enforces ahead of the feed is added once: Enforce skips one the
// feed has brought already, and the feed's copy of one Enforce added only
// moves the position. A cached answer for rec's key gets rec's rule; a key
// without one gets an answer of rec alone when fill is set and rec decides
// every token under it.
func (r *Revocations) apply(rec *Record, ahead, fill bool) {
	k := rec.LookupKey().FilterKey()
	pos := rec.Position
	if ahead {
		pos = 0 // the feed moves positions, in order
	}
	if rec.IsLift() {
		r.lift(k, pos)
		return
	}
	if next := r.next.Load(); next != nil {
		next.Add(k, pos)
	}
	switch {
	case ahead && rec.Position != 0 && r.filter.Position() >= rec.Position:
		return // the feed brought it first
	case ahead:
		r.filter.Add(k, 0)
		r.noteAhead(rec)
	default:
		if rec.Position != 0 && len(r.ahead) > 0 && r.takeAhead(rec) {
			r.filter.Advance(rec.Position)
			return
		}
		r.filter.Add(k, rec.Position)
	}
	r.gens[slotOf(k)].Add(1)
	if old, ok := r.confirm.Peek(k); ok {
		r.confirm.Add(k, old.with(rec))
	} else if fill && rec.coversEveryToken() {
		r.confirm.Add(k, (*confirmAnswer)(nil).with(rec))
	}
	r.changes.Add(1)
}

// lift applies the lift of a record under filter key k, at feed position
// pos (0: ahead of the feed). A filter cannot delete, so k stays in it; the
// source no longer has the record, so the answer of a lookup no longer
// holds it. What must go is every answer that may still hold it: the
// cached one is dropped and the slot's generation bumped, so that a lookup
// running across the lift caches nothing and its callers ask again. Other
// records under k stay enforced: the next lookup finds them.
//
// The position moves last, so that whoever sees it (a mesh status report,
// revoke --wait) sees the lift in force.
func (r *Revocations) lift(k bloom.Key, pos uint64) {
	r.gens[slotOf(k)].Add(1)
	r.confirm.Remove(k)
	r.lifts.Add(1)
	r.changes.Add(1) // in force: a token cached as revoked is checked again
	if pos != 0 {
		if next := r.next.Load(); next != nil {
			next.Advance(pos)
		}
		r.filter.Advance(pos)
	}
}

// coversEveryToken reports whether rec alone decides every token under its
// lookup key, so it can be cached as the whole answer. A clamp never does:
// which tokens it covers moves with the clock.
func (r *Record) coversEveryToken() bool {
	if r.MaxAgeSeconds > 0 {
		return false
	}
	// Subject and key records are looked up without their issuer, so one
	// that names an issuer leaves the other issuers' tokens to other records.
	issuerInKey := r.Kind != KindSubject && r.Kind != KindKey
	return r.Before.IsZero() && (r.Issuer == "" || issuerInKey)
}

// Replace swaps in a whole new filter (a reloaded snapshot) and forgets
// the cached answers that records in it may change (see forgetReplaced).
func (r *Revocations) Replace(f *bloom.Filter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filter.Replace(f)
	r.forgetReplaced()
	r.forgetAhead() // f may lack them: the feed's copies are added again
}

// forgetReplaced drops every cached answer once a new filter is swapped
// in. Called with mu held, after the swap.
//
// A new filter may reflect feed entries this node never applied one by
// one: a snapshot is loaded whole, and ReplaceWith's catch-up adds the feed
// after the snapshot straight to the new filter, up to a position the live
// filter may not have reached (a follower that fell behind, or simply one a
// few records behind the source when a rebuild ends). Such an entry may be
// a revocation that reached the source after the lookup behind a cached
// answer for its key, or the lift of a record a cached answer holds: no
// cached answer can be trusted, whether it allows or revokes. The price is
// one lookup per flagged key after a reload or a rebuild.
//
// Every slot's generation is bumped, so a lookup that ran across the swap
// caches nothing and joins nothing started before it.
func (r *Revocations) forgetReplaced() {
	for i := range r.gens {
		r.gens[i].Add(1)
	}
	r.confirm.Purge()
	r.changes.Add(1)
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
	r.forgetReplaced()
	r.forgetAhead() // f may lack them: the feed's copies are added again
	return nil
}

// RevocationStats counts the work of the revocation check.
type RevocationStats struct {
	Maybes      uint64 // filter answers "maybe"
	ConfirmHits uint64 // maybes answered by the confirm cache
	Lookups     uint64 // exact lookups at the source
	// SharedLookups counts the maybes answered by a lookup that served
	// more than one check of the same key.
	SharedLookups uint64
	// Waiting is the number of checks waiting for a source lookup now.
	Waiting      int64
	LookupErrors uint64        // lookups that failed or timed out
	LookupTime   time.Duration // total time spent in lookups
	ConfirmSize  int           // answers in the confirm cache
	Lifts        uint64        // lifts applied
}

// Stats reports counters since start.
func (r *Revocations) Stats() RevocationStats {
	return RevocationStats{
		Maybes:        r.maybes.Load(),
		ConfirmHits:   r.confirmHits.Load(),
		Lookups:       r.lookups.Load(),
		SharedLookups: r.sharedLookups.Load(),
		Waiting:       r.waiting.Load(),
		LookupErrors:  r.lookupErrors.Load(),
		LookupTime:    time.Duration(r.lookupNanos.Load()),
		ConfirmSize:   r.confirm.Len(),
		Lifts:         r.lifts.Load(),
	}
}

// check returns ReasonOK, or ReasonRevoked (ReasonClamped for a clamp) with
// the kind of record that matched, or ReasonUnavailable when a "maybe"
// could not be confirmed. now is the time of the request (unix seconds).
func (r *Revocations) check(ctx context.Context, v *verified, now int64) (Reason, Kind) {
	reason, i, _ := r.decide(ctx, v, now)
	switch reason {
	case ReasonOK:
		return reason, ""
	case ReasonClamped:
		return reason, KindClamp
	}
	return reason, checkKinds[i]
}

// decide is check, returning the index of the check behind a deny and, on
// ReasonRevoked, the generation of that key's slot its answer is from (see
// stillRevoked).
func (r *Revocations) decide(ctx context.Context, v *verified, now int64) (Reason, int, uint64) {
	for i := 0; i < numChecks; i++ {
		if !v.applies(i) || !r.filter.MayContain(v.keys[i]) {
			continue
		}
		r.maybes.Add(1)
		a, g, err := r.answer(ctx, i, v)
		if err != nil {
			if r.cfg.AllowUnconfirmed {
				continue
			}
			return ReasonUnavailable, i, 0
		}
		switch revoked, clamped := a.revokes(v, now); {
		case revoked:
			return ReasonRevoked, i, g
		case clamped:
			return ReasonClamped, i, 0
		}
	}
	return ReasonOK, 0, 0
}

// answer returns the exact answer for check i of v, from the confirm cache
// or, on a miss, from the source (and caches it), with the generation of
// the key's slot it is from. Concurrent misses of one key share one lookup.
func (r *Revocations) answer(ctx context.Context, i int, v *verified) (*confirmAnswer, uint64, error) {
	k := v.keys[i]
	gen := &r.gens[slotOf(k)]
	lk := v.lookupKey(i)
	for retried := false; ; retried = true {
		// The generation is read before the cache: a lookup that starts
		// from it sees every revocation of the key applied before.
		g := gen.Load()
		if a, ok := r.confirm.Peek(k); ok {
			// Peek takes the cache's lock shared; Get takes it exclusively
			// to move the key to the front. Every promoteEvery-th hit does
			// that, so a key hit often stays recent at a fraction of the
			// cost. Which answer is cached never depends on it.
			if r.confirmHits.Add(1)%promoteEvery == 0 {
				r.confirm.Get(k)
			}
			return a, g, nil
		}
		// Callers share a lookup only when they read the same generation
		// of the key's slot: one that read a later generation never joins
		// a lookup that may have read the source before a revocation it
		// must see. The lookup serves every caller that joins it, so a
		// caller that gives up does not cancel it; ConfirmTimeout bounds it.
		flight := r.flights.DoChan(flightKey(k, lk, g), func() (any, error) {
			// A lookup that ended between this caller's cache miss and
			// now has cached its answer: no need to ask again.
			if a, ok := r.confirm.Peek(k); ok {
				return a, nil
			}
			a, err := r.lookupAnswer(context.WithoutCancel(ctx), lk)
			if err == nil {
				r.mu.Lock()
				if gen.Load() == g {
					r.confirm.Add(k, a)
				}
				r.mu.Unlock()
			}
			return a, err
		})
		r.waiting.Add(1)
		var res singleflight.Result
		select {
		case res = <-flight:
			r.waiting.Add(-1)
		case <-ctx.Done():
			r.waiting.Add(-1)
			return nil, 0, fmt.Errorf("confirm %s: %w", lk.Kind, ctx.Err())
		}
		if res.Shared {
			r.sharedLookups.Add(1)
		}
		// A revocation of the key's slot applied while the lookup ran may
		// be missing from its answer: ask once more, from a generation
		// that includes it. (Returning the answer would not be wrong, the
		// check having run alongside the revocation, but a fresh one is
		// cheap: such a revocation is rare.)
		if res.Err != nil || retried || gen.Load() == g {
			a, _ := res.Val.(*confirmAnswer)
			return a, g, res.Err
		}
	}
}

// stillRevoked reports whether v, found revoked by check v.revokedBy-1
// from generation v.revokedGen of that key's slot, with v.revokedChanges
// read before that check, is revoked still, without asking the filter or
// the confirm cache again: nothing has changed the revocation state since
// (changes is bumped once a change is in force, so a check that read the
// count before a change may have seen the old state, and its count no
// longer matches), nor the key's slot (whose generation a lift moves too).
func (r *Revocations) stillRevoked(v *verified) bool {
	i := int(v.revokedBy) - 1
	return i >= 0 && i < numChecks && r.changes.Load() == v.revokedChanges &&
		r.gens[slotOf(v.keys[i])].Load() == v.revokedGen
}

// changeCount is the count of revocation state changes, to read before a
// check whose revoked answer is to be kept (see stillRevoked).
func (r *Revocations) changeCount() uint64 { return r.changes.Load() }

// promoteEvery is how many confirm-cache hits make one recency update.
const promoteEvery = 16

// flightKey names the lookup of lk from generation g of its slot.
func flightKey(k bloom.Key, lk LookupKey, g uint64) string {
	return fmt.Sprintf("%x/%x/%d/%s", k.H1, k.H2, g, lk)
}

// lookupAnswer asks the source for the records under lk.
func (r *Revocations) lookupAnswer(ctx context.Context, lk LookupKey) (*confirmAnswer, error) {
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
	for i := range recs {
		if recs[i].LookupKey() == lk {
			a.add(&recs[i])
		}
	}
	return a, nil
}

// revokes reports whether a rule of a revokes v at now: a rule of its
// issuer (or of every issuer) whose Before, when it has one, is at or
// after the token's issue time; and, failing that, whether a clamp of its
// issuer denies it: one whose max age the token's issue time lies beyond.
func (a *confirmAnswer) revokes(v *verified, now int64) (revoked, clamped bool) {
	for _, rule := range a.rules {
		if rule.issuer != "" && rule.issuer != v.claims.Issuer {
			continue
		}
		if rule.maxAge > 0 {
			clamped = clamped || v.claims.IssuedAt < now-rule.maxAge
			continue
		}
		if v.claims.IssuedAt <= rule.before {
			return true, false
		}
	}
	return false, clamped
}

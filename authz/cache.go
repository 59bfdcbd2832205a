package authz

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jwtguard/jwtguard/bloom"
)

// tokenCache remembers tokens that passed verification, keyed by the exact
// token string, so a repeated token skips parsing and signature checks.
//
// It is laid out for the garbage collector: the index maps a 64-bit hash to
// a slot (no pointers to scan), and each slot holds one string (the token
// followed by its claim values) plus plain numbers. A hash collision only
// costs a miss: a hit requires the stored token to equal the presented one
// byte for byte, so a collision can never skip verification. Eviction is
// first-in first-out per shard; entries past their exp are never served,
// nor those whose key has left its issuer's key set (Checker.keyCurrent).
type tokenCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards     = 64
	cacheShardShift = 64 - 6 // top 6 bits of the hash pick the shard
)

type cacheShard struct {
	mu    sync.RWMutex
	index map[uint64]uint32
	slots []cacheEntry
	limit int
	hand  int // the slot the next insert overwrites once the shard is full
	_     [64]byte
}

// cacheEntry is one verified token. data holds the token followed by the
// claim strings; ends[i] is where field i ends (field 0 is the token).
type cacheEntry struct {
	hash   uint64
	data   string
	ends   [numFields]uint32
	exp    int64
	iat    int64
	nbf    int64 // of a forwarded token only (putForwarded)
	keys   [numChecks]bloom.Key
	keyGen uint64 // keyRef of the key that verified the token
	keyID  uint64
	flags  uint8
	// revokedBy, revokedGen and revokedChanges: the token was found
	// revoked (see verified); a cache hit then needs no revocation check
	// while the revocation state has not changed.
	revokedBy                  uint8
	revokedGen, revokedChanges uint64
	// verdicts are the token's rule verdicts (rules.go).
	verdicts ruleVerdicts
}

const (
	fieldToken = iota
	fieldIssuer
	fieldSubject
	fieldTokenID
	fieldJTI
	fieldSession
	fieldKeyID
	fieldExtra                                   // MaxClaimHeaders fields follow
	fieldRuleVals = fieldExtra + MaxClaimHeaders // MaxHeaderClaims fields follow
	numFields     = fieldRuleVals + MaxHeaderClaims
)

const (
	flagKeyNamed = 1 << iota
	flagHasIat   // a forwarded token's
	flagHasNbf   // a forwarded token's
)

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed: maphash.MakeSeed()}
	per := (size + cacheShards - 1) / cacheShards
	if per < 1 {
		per = 1
	}
	for i := range c.shards {
		c.shards[i].index = make(map[uint64]uint32, per)
		c.shards[i].limit = per
	}
	return c
}

// get returns the verified token for tok, if cached.
func (c *tokenCache) get(tok string, v *verified) bool {
	h := maphash.String(c.seed, tok)
	s := &c.shards[h>>cacheShardShift]
	s.mu.RLock()
	i, ok := s.index[h]
	var e cacheEntry
	if ok {
		e = s.slots[i]
	}
	s.mu.RUnlock()
	if !ok || e.data[:e.ends[fieldToken]] != tok {
		return false
	}
	e.load(v)
	return true
}

// getClaims finds the entry hashed h whose claims are want's, the Extra
// of each bit set in extra included (a verified payload, cached by
// putClaims), and returns its filter keys. Like get, a hash collision only
// costs a miss: every field is compared, under the read lock (a few short
// strings), so that only the keys are copied out.
func (c *tokenCache) getClaims(h uint64, want *Claims, extra uint8) ([numChecks]bloom.Key, bool) {
	s := &c.shards[h>>cacheShardShift]
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.index[h]
	if !ok || !s.slots[i].holds(want, extra) {
		return [numChecks]bloom.Key{}, false
	}
	return s.slots[i].keys, true
}

// claimsHash is the hash of a verified payload's claims for getClaims and
// putClaims: of its identity and expiry only, which tell tokens apart; a
// hit compares every other field.
func (c *tokenCache) claimsHash(cl *Claims) uint64 {
	return maphash.String(c.seed, cl.TokenID) ^ uint64(cl.Expiry)*0x9e3779b97f4a7c15
}

// holds reports whether e is the entry of a verified payload (no token)
// with the claims of want, the Extra of each bit set in extra included.
func (e *cacheEntry) holds(want *Claims, extra uint8) bool {
	if e.ends[fieldToken] != 0 || e.exp != want.Expiry || e.iat != want.IssuedAt {
		return false
	}
	field := func(i int) string { return e.data[e.ends[i-1]:e.ends[i]] }
	if field(fieldIssuer) != want.Issuer || field(fieldSubject) != want.Subject || field(fieldTokenID) != want.TokenID ||
		field(fieldJTI) != want.JTI || field(fieldSession) != want.Session || field(fieldKeyID) != want.KeyID {
		return false
	}
	for i := 0; extra != 0; i, extra = i+1, extra>>1 {
		if extra&1 != 0 && field(fieldExtra+i) != want.Extra[i] {
			return false
		}
	}
	return true
}

// forwardedToken is what revocation-only mode reads of the token a proxy
// forwarded with a verified payload: the claims it compares with the
// payload's (sameClaims; Aud and Extra are not kept), its kid and its
// identity (tokenID).
type forwardedToken struct {
	claims  tokenClaims
	kid, id string
}

// getForwarded fills ft with what putForwarded kept of the forwarded
// token tok, if cached. Like get, a hit needs tok itself, byte for byte.
// The entries of forwarded tokens and of payloads share a cache without
// ever matching each other: a payload's entry has no token.
func (c *tokenCache) getForwarded(tok string, ft *forwardedToken) bool {
	h := maphash.String(c.seed, tok)
	s := &c.shards[h>>cacheShardShift]
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.index[h]
	if !ok {
		return false
	}
	e := &s.slots[i]
	field := func(i int) string { return e.data[e.ends[i-1]:e.ends[i]] }
	if tok == "" || e.data[:e.ends[fieldToken]] != tok {
		return false
	}
	ft.claims = tokenClaims{Iss: field(fieldIssuer), Sub: field(fieldSubject), Jti: field(fieldJTI), Sid: field(fieldSession),
		Exp: e.exp, Iat: e.iat, Nbf: e.nbf, HasIat: e.flags&flagHasIat != 0, HasNbf: e.flags&flagHasNbf != 0}
	ft.kid, ft.id = field(fieldKeyID), field(fieldTokenID)
	return true
}

// putForwarded caches ft as what parsing the forwarded token tok gave,
// unless retired (as putUnless).
func (c *tokenCache) putForwarded(tok string, ft *forwardedToken, retired *atomic.Bool) {
	var v verified
	v.claims = Claims{Issuer: ft.claims.Iss, Subject: ft.claims.Sub, JTI: ft.claims.Jti, Session: ft.claims.Sid,
		TokenID: ft.id, KeyID: ft.kid, Expiry: ft.claims.Exp, IssuedAt: ft.claims.Iat}
	h := maphash.String(c.seed, tok)
	e := newCacheEntry(h, tok, &v)
	e.nbf = ft.claims.Nbf
	if ft.claims.HasIat {
		e.flags |= flagHasIat
	}
	if ft.claims.HasNbf {
		e.flags |= flagHasNbf
	}
	c.insert(h, e, retired)
}

// holds takes a bit of extra for each claim header.
const _ = uint8(1<<MaxClaimHeaders - 1)

// putClaims caches v, a verified payload, under hash h (see getClaims),
// unless retired (as putUnless).
func (c *tokenCache) putClaims(h uint64, v *verified, retired *atomic.Bool) {
	c.insert(h, newCacheEntry(h, "", v), retired)
}

// put caches v as the verification of tok.
func (c *tokenCache) put(tok string, v *verified) { c.putUnless(tok, v, nil) }

// putUnless is put, skipped when retired (read under the shard's lock) is
// set: a checker that was replaced stops filling a cache it shared.
func (c *tokenCache) putUnless(tok string, v *verified, retired *atomic.Bool) {
	h := maphash.String(c.seed, tok)
	c.insert(h, newCacheEntry(h, tok, v), retired)
}

// insert puts e, hashed h, in its shard unless retired is set.
func (c *tokenCache) insert(h uint64, e cacheEntry, retired *atomic.Bool) {
	s := &c.shards[h>>cacheShardShift]
	s.mu.Lock()
	defer s.mu.Unlock()
	if retired != nil && retired.Load() {
		return
	}
	if i, ok := s.index[h]; ok {
		s.slots[i] = e
		return
	}
	if len(s.slots) < s.limit {
		s.index[h] = uint32(len(s.slots))
		s.slots = append(s.slots, e)
		return
	}
	old := &s.slots[s.hand]
	if j, ok := s.index[old.hash]; ok && j == uint32(s.hand) { // a dropped slot is no longer indexed
		delete(s.index, old.hash)
	}
	*old = e
	s.index[h] = uint32(s.hand)
	s.hand = (s.hand + 1) % s.limit
}

// markRevoked notes in the cached tok that v's revocation check found it
// revoked (v.revokedBy, v.revokedGen, v.revokedChanges).
func (c *tokenCache) markRevoked(tok string, v *verified) {
	s, i, ok := c.lockFind(tok)
	if ok && s.slots[i].keyGen == v.key.gen {
		e := &s.slots[i]
		e.revokedBy, e.revokedGen, e.revokedChanges = v.revokedBy, v.revokedGen, v.revokedChanges
	}
	s.mu.Unlock()
}

// renew records that the cached tok, verified under key generation old,
// is still valid under gen.
func (c *tokenCache) renew(tok string, old, gen uint64) {
	s, i, ok := c.lockFind(tok)
	if ok && s.slots[i].keyGen == old {
		s.slots[i].keyGen = gen
	}
	s.mu.Unlock()
}

// drop removes tok, verified under key generation old, from the cache
// (unless it was verified again meanwhile).
func (c *tokenCache) drop(tok string, old uint64) {
	s, i, ok := c.lockFind(tok)
	if ok && s.slots[i].keyGen == old {
		delete(s.index, s.slots[i].hash)
		s.slots[i] = cacheEntry{hash: s.slots[i].hash}
	}
	s.mu.Unlock()
}

// lockFind write-locks the shard of tok and finds its slot; the caller
// unlocks.
func (c *tokenCache) lockFind(tok string) (*cacheShard, uint32, bool) {
	h := maphash.String(c.seed, tok)
	s := &c.shards[h>>cacheShardShift]
	s.mu.Lock()
	i, ok := s.index[h]
	if ok {
		e := &s.slots[i]
		ok = e.data[:e.ends[fieldToken]] == tok
	}
	return s, i, ok
}

// len counts the cached tokens.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.index)
		s.mu.RUnlock()
	}
	return n
}

func newCacheEntry(h uint64, tok string, v *verified) cacheEntry {
	fields := [numFields]string{
		fieldToken:   tok,
		fieldIssuer:  v.claims.Issuer,
		fieldSubject: v.claims.Subject,
		fieldTokenID: v.claims.TokenID,
		fieldJTI:     v.claims.JTI,
		fieldSession: v.claims.Session,
		fieldKeyID:   v.claims.KeyID,
	}
	copy(fields[fieldExtra:], v.claims.Extra[:])
	copy(fields[fieldRuleVals:], v.ruleVals[:])
	n := 0
	for _, f := range fields {
		n += len(f)
	}
	var b strings.Builder
	b.Grow(n)
	e := cacheEntry{hash: h, exp: v.claims.Expiry, iat: v.claims.IssuedAt, keys: v.keys, keyGen: v.key.gen, keyID: v.key.id, verdicts: v.verdicts}
	for i, f := range fields {
		b.WriteString(f)
		e.ends[i] = uint32(b.Len())
	}
	e.data = b.String()
	if v.key.named {
		e.flags |= flagKeyNamed
	}
	return e
}

// load fills v from e without allocating: the claim strings are slices of
// e.data.
func (e *cacheEntry) load(v *verified) {
	field := func(i int) string {
		start := uint32(0)
		if i > 0 {
			start = e.ends[i-1]
		}
		return e.data[start:e.ends[i]]
	}
	v.claims.Issuer = field(fieldIssuer)
	v.claims.Subject = field(fieldSubject)
	v.claims.TokenID = field(fieldTokenID)
	v.claims.JTI = field(fieldJTI)
	v.claims.Session = field(fieldSession)
	v.claims.KeyID = field(fieldKeyID)
	for i := range v.claims.Extra {
		v.claims.Extra[i] = field(fieldExtra + i)
	}
	for i := range v.ruleVals {
		v.ruleVals[i] = field(fieldRuleVals + i)
	}
	v.verdicts = e.verdicts
	v.claims.Expiry = e.exp
	v.claims.IssuedAt = e.iat
	v.keys = e.keys
	v.key = keyRef{gen: e.keyGen, id: e.keyID, named: e.flags&flagKeyNamed != 0}
	v.revokedBy, v.revokedGen, v.revokedChanges = e.revokedBy, e.revokedGen, e.revokedChanges
}

package authz

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// maxGoneKeys bounds the keys a key set remembers after they left it.
const maxGoneKeys = 16

// KeyInfo is one key of an issuer's set as this process knows it.
type KeyInfo struct {
	KID string
	Alg string
	// FirstSeen is when this process first loaded the key: its age is
	// counted from there.
	FirstSeen time.Time
}

// GoneKey is a key that left an issuer's set.
type GoneKey struct {
	KID       string
	FirstSeen time.Time
	GoneAt    time.Time
	// Uses counts the tokens that named it since it left: tokens signed
	// by a key that is no longer published (denied retired_key when the
	// signature verifies against it, else bad_signature).
	Uses uint64
}

// KeySetInfo is the state of one issuer's key set, for the key-rotation
// watch: its keys and their ages, the keys that left it, and how its
// refreshes go.
type KeySetInfo struct {
	Issuer string
	// Remote is set when the keys are loaded (a JWKS URL or file); an
	// issuer with only an HMAC secret has nothing to rotate.
	Remote bool
	Keys   []KeyInfo
	Gone   []GoneKey
	// LastRefresh is the last successful load, LastFailure the last
	// failed one; FailingSince is the first failure since the last
	// success (zero while loads succeed), LastError its message.
	LastRefresh, LastFailure, FailingSince time.Time
	LastError                              string
	Refreshes, Failures                    uint64
}

// KeySets returns the state of every issuer's key set, sorted by issuer.
// It is read-only and safe for concurrent use; nothing on it is on the
// hot path.
func (c *Checker) KeySets() []KeySetInfo {
	out := make([]KeySetInfo, 0, len(c.issuers))
	for _, is := range c.issuers {
		out = append(out, is.keys.info())
	}
	slices.SortFunc(out, func(a, b KeySetInfo) int {
		switch {
		case a.Issuer < b.Issuer:
			return -1
		case a.Issuer > b.Issuer:
			return 1
		}
		return 0
	})
	return out
}

func (ks *keySet) info() KeySetInfo {
	inf := KeySetInfo{Issuer: ks.issuer, Remote: ks.load != nil}
	if m := ks.keys.Load(); m != nil {
		for _, k := range m.all {
			inf.Keys = append(inf.Keys, KeyInfo{KID: k.kid, Alg: k.alg, FirstSeen: k.firstSeen})
		}
	}
	if g := ks.gone.Load(); g != nil {
		for _, k := range g.keys {
			inf.Gone = append(inf.Gone, GoneKey{KID: k.kid, FirstSeen: k.firstSeen, GoneAt: k.goneAt, Uses: k.uses.Load()})
		}
	}
	ks.health.mu.Lock()
	h := &ks.health
	inf.LastRefresh, inf.LastFailure, inf.FailingSince, inf.LastError = h.lastOK, h.lastFail, h.failingSince, h.lastErr
	inf.Refreshes, inf.Failures = h.oks, h.fails
	ks.health.mu.Unlock()
	return inf
}

// goneKeys is an immutable list of keys that left a set, swapped whole;
// only their use counters change.
type goneKeys struct{ keys []*goneKey }

type goneKey struct {
	kid               string
	firstSeen, goneAt time.Time
	uses              atomic.Uint64
	// key still verifies the tokens that name it, so that they are denied
	// retired_key with claims the detectors can trust; never to allow.
	key *verificationKey
}

// use counts a token naming kid when kid is a gone key, and returns the
// key that left (nil when kid is not one).
func (g *goneKeys) use(kid string) *verificationKey {
	for _, k := range g.keys {
		if k.kid == kid {
			k.uses.Add(1)
			return k.key
		}
	}
	return nil
}

// noteGone records the named keys of prev that next no longer holds, and
// forgets a gone key that is back. Calls are serialised by fetchMu.
func (ks *keySet) noteGone(prev, next *keyMap, now time.Time) {
	var keys []*goneKey
	if g := ks.gone.Load(); g != nil {
		for _, k := range g.keys {
			if _, back := next.byKID[k.kid]; !back {
				keys = append(keys, k)
			}
		}
	}
	if prev != nil {
		for kid, k := range prev.byKID {
			if _, kept := next.byKID[kid]; !kept {
				keys = append(keys, &goneKey{kid: kid, firstSeen: k.firstSeen, goneAt: now, key: k})
			}
		}
	}
	if len(keys) > maxGoneKeys {
		keys = keys[len(keys)-maxGoneKeys:]
	}
	ks.gone.Store(&goneKeys{keys: keys})
}

// refreshHealth is how a key set's loads go.
type refreshHealth struct {
	mu                             sync.Mutex
	lastOK, lastFail, failingSince time.Time
	lastErr                        string
	oks, fails                     uint64
}

func (h *refreshHealth) succeeded(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastOK, h.failingSince = now, time.Time{}
	h.oks++
}

func (h *refreshHealth) failed(now time.Time, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastFail, h.lastErr = now, err.Error()
	if h.failingSince.IsZero() {
		h.failingSince = now
	}
	h.fails++
}

package authz

import (
	"bytes"
	"reflect"
	"slices"
)

// WithPrevious makes a new checker take over what stays valid of prev, the
// checker it replaces when the configuration is reloaded: the key sets of
// issuers configured as before (their keys keep their identity, so the
// tokens they verified need no second verification), and the caches, when
// the settings their entries were checked against are the same, less the
// entries of issuers that changed or left; with other route rules, no
// cache is taken over. The new checker's LoadKeys then
// reloads every key set, inherited or not.
func WithPrevious(prev *Checker) Option { return func(o *options) { o.prev = prev } }

// inherit takes over what stays valid of prev (see WithPrevious).
func (c *Checker) inherit(prev *Checker) {
	changed := map[string]bool{}
	for iss, is := range c.issuers {
		old, ok := prev.issuers[iss]
		if ok && reflect.DeepEqual(old.cfg, is.cfg) && sameSecret(old.keys, is.keys) {
			is.keys = old.keys
			continue
		}
		changed[iss] = true
	}
	for iss := range prev.issuers {
		if _, ok := c.issuers[iss]; !ok {
			changed[iss] = true
		}
	}
	a, b := &prev.cfg, &c.cfg
	if a.Leeway != b.Leeway || a.CacheSize != b.CacheSize || a.MaxTokenBytes != b.MaxTokenBytes || a.MaxTokenLifetime != b.MaxTokenLifetime ||
		!slices.Equal(a.Types, b.Types) || !slices.Equal(a.ClaimHeaders, b.ClaimHeaders) ||
		!reflect.DeepEqual(a.Rules, b.Rules) {
		// Every entry was checked against other settings; a cached
		// token's rule verdicts are indexed by the rules it was judged by.
		return
	}
	c.prev, c.changed = prev, changed
	prev.cache.dropIssuers(changed)
	c.cache = prev.cache
	if c.payloadCache != nil && prev.payloadCache != nil {
		prev.payloadCache.dropIssuers(changed)
		c.payloadCache = prev.payloadCache
	}
}

// Activate is called once c, made WithPrevious of another checker, decides
// in its place: the previous checker stops filling the caches they share,
// and the entries it added meanwhile for issuers that changed are dropped.
func (c *Checker) Activate() {
	if c.prev == nil {
		return
	}
	// Every put after a shard's drop below reads retired under that
	// shard's lock, after this store: none of the old checker's entries
	// of a changed issuer survives.
	c.prev.retired.Store(true)
	if c.cache == c.prev.cache {
		c.cache.dropIssuers(c.changed)
	}
	if c.payloadCache != nil && c.payloadCache == c.prev.payloadCache {
		c.payloadCache.dropIssuers(c.changed)
	}
	c.prev = nil // let it go
}

// sameSecret reports whether two key sets hold the same HMAC secret (a
// secret file rewritten in place changes it).
func sameSecret(a, b *keySet) bool {
	if (a.hmac == nil) != (b.hmac == nil) {
		return false
	}
	if a.hmac == nil {
		return true
	}
	ra, _ := a.hmac.raw.([]byte)
	rb, _ := b.hmac.raw.([]byte)
	return ra != nil && bytes.Equal(ra, rb)
}

// dropIssuers removes the entries of the issuers in iss.
func (c *tokenCache) dropIssuers(iss map[string]bool) {
	if len(iss) == 0 {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for j := range s.slots {
			e := &s.slots[j]
			if e.data == "" || !iss[e.data[e.ends[fieldToken]:e.ends[fieldIssuer]]] {
				continue
			}
			if k, ok := s.index[e.hash]; ok && k == uint32(j) {
				delete(s.index, e.hash)
			}
			*e = cacheEntry{hash: e.hash}
		}
		s.mu.Unlock()
	}
}

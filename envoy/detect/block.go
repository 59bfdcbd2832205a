package detect

import (
	"maps"
	"net/netip"
	"time"
)

// blockBytes is the most one block holds: a map slot with its key's
// strings bounded by the token size.
const blockBytes = 64 + 2*256

// The kinds of token blocks.
const (
	kindToken byte = iota + 1
	kindSession
	kindSubject
)

type blockKey struct {
	kind   byte
	iss, v string
}

// blockSet is what this node blocks, each until a time in unix
// nanoseconds. It is immutable once published: readers load it lock-free,
// the worker builds a new one to change it.
type blockSet struct {
	addrs  map[netip.Addr]int64
	tokens map[blockKey]int64
}

// BlockedAddr reports whether addr is blocked at now (envoy.Blocker).
func (e *Engine) BlockedAddr(addr netip.Addr, now time.Time) bool {
	bs := e.blocks.Load()
	if bs == nil || len(bs.addrs) == 0 {
		return false
	}
	until, ok := bs.addrs[addr]
	return ok && now.UnixNano() < until
}

// BlockedToken reports whether the token, its session or its subject is
// blocked at now (envoy.Blocker).
func (e *Engine) BlockedToken(issuer, tokenID, session, subject string, now time.Time) bool {
	bs := e.blocks.Load()
	if bs == nil || len(bs.tokens) == 0 {
		return false
	}
	t := now.UnixNano()
	if until, ok := bs.tokens[blockKey{kindToken, issuer, tokenID}]; ok && t < until {
		return true
	}
	if session != "" {
		if until, ok := bs.tokens[blockKey{kindSession, issuer, session}]; ok && t < until {
			return true
		}
	}
	if subject != "" {
		if until, ok := bs.tokens[blockKey{kindSubject, issuer, subject}]; ok && t < until {
			return true
		}
	}
	return false
}

// addBlock publishes a set with addr (when valid) or bk blocked until
// until, dropping expired blocks; false when MaxBlocks are held.
func (e *Engine) addBlock(now int64, addr netip.Addr, bk blockKey, until int64) bool {
	old := e.blocks.Load()
	next := &blockSet{addrs: map[netip.Addr]int64{}, tokens: map[blockKey]int64{}}
	if old != nil {
		maps.Copy(next.addrs, old.addrs)
		maps.Copy(next.tokens, old.tokens)
	}
	next.prune(now)
	if len(next.addrs)+len(next.tokens) >= e.cfg.MaxBlocks {
		return false
	}
	if addr.IsValid() {
		next.addrs[addr] = until
	} else {
		bk.iss, bk.v = cloneString(bk.iss), cloneString(bk.v)
		next.tokens[bk] = until
	}
	e.blocks.Store(next)
	e.m.blocks.Set(float64(len(next.addrs) + len(next.tokens)))
	return true
}

// pruneBlocks publishes a set without the blocks expired at now, when
// there are any.
func (e *Engine) pruneBlocks(now int64) {
	old := e.blocks.Load()
	if old == nil || !old.anyExpired(now) {
		return
	}
	next := &blockSet{addrs: maps.Clone(old.addrs), tokens: maps.Clone(old.tokens)}
	next.prune(now)
	e.blocks.Store(next)
	e.m.blocks.Set(float64(len(next.addrs) + len(next.tokens)))
}

func (bs *blockSet) anyExpired(now int64) bool {
	for _, u := range bs.addrs {
		if u <= now {
			return true
		}
	}
	for _, u := range bs.tokens {
		if u <= now {
			return true
		}
	}
	return false
}

func (bs *blockSet) prune(now int64) {
	maps.DeleteFunc(bs.addrs, func(_ netip.Addr, u int64) bool { return u <= now })
	maps.DeleteFunc(bs.tokens, func(_ blockKey, u int64) bool { return u <= now })
}

// cloneString copies s so that a block does not keep a request alive.
func cloneString(s string) string { return string(append([]byte(nil), s...)) }

// BlockInForce is one block in force, as the admin API lists it.
type BlockInForce struct {
	// Kind is address, token, session or subject.
	Kind   string    `json:"kind"`
	Issuer string    `json:"issuer,omitempty"`
	Value  string    `json:"value"`
	Until  time.Time `json:"until"`
}

// Blocks returns the blocks in force at now.
func (e *Engine) Blocks(now time.Time) []BlockInForce {
	bs := e.blocks.Load()
	if bs == nil {
		return nil
	}
	t := now.UnixNano()
	var out []BlockInForce
	for a, until := range bs.addrs {
		if t < until {
			out = append(out, BlockInForce{Kind: "address", Value: a.String(), Until: time.Unix(0, until).UTC()})
		}
	}
	names := map[byte]string{kindToken: "token", kindSession: "session", kindSubject: "subject"}
	for k, until := range bs.tokens {
		if t < until {
			out = append(out, BlockInForce{Kind: names[k.kind], Issuer: k.iss, Value: k.v, Until: time.Unix(0, until).UTC()})
		}
	}
	return out
}

package idp

import "sync"

// replayState is what the replay cache knows of a jti.
type replayState int

const (
	replayNew     replayState = iota // never seen (now reserved by the caller)
	replayPending                    // being applied by another request
	replayDone                       // applied
)

// replayCache remembers the jti values of accepted tokens until the
// verifier would refuse them anyway (authz.EventToken.AcceptedUntil),
// at most max of them: when full it forgets the oldest first. Forgetting
// is safe because every applied token also leaves its jti in its records
// at the source (see Provider.applied), which the cache only spares a
// lookup of.
type replayCache struct {
	mu    sync.Mutex
	max   int
	byJTI map[string]replayEntry
	order []orderEntry // insertion order; entries may be gone from byJTI
}

type orderEntry struct {
	jti   string
	until int64
}

type replayEntry struct {
	until int64 // unix seconds
	done  bool
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, byJTI: map[string]replayEntry{}}
}

// reserve returns replayNew and reserves jti until until when it is not
// remembered at now; otherwise it says what is known.
func (c *replayCache) reserve(jti string, until, now int64) replayState {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byJTI[jti]; ok && e.until > now {
		if e.done {
			return replayDone
		}
		return replayPending
	}
	c.evict(now)
	c.byJTI[jti] = replayEntry{until: until}
	c.order = append(c.order, orderEntry{jti, until})
	return replayNew
}

// finish marks a reserved jti applied (ok) or forgets it (the caller
// failed; a retry must be able to apply it).
func (c *replayCache) finish(jti string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.byJTI[jti]
	switch {
	case !found:
	case ok:
		e.done = true
		c.byJTI[jti] = e
	default:
		delete(c.byJTI, jti)
	}
}

// evict drops expired entries from the front of the order, and the oldest
// ones while the cache is full. Called with mu held.
func (c *replayCache) evict(now int64) {
	i := 0
	for ; i < len(c.order); i++ {
		o := c.order[i]
		e, ok := c.byJTI[o.jti]
		if !ok || e.until != o.until {
			continue // forgotten, or reserved again since: a later place in order is its own
		}
		if e.until > now && len(c.byJTI) < c.max {
			break
		}
		delete(c.byJTI, o.jti)
	}
	c.order = c.order[i:]
}

// len counts the remembered jti values.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byJTI)
}

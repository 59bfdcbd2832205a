package decisionlog

import (
	"sync/atomic"
	"time"
)

// perSecond admits at most limit events a second (0: every event).
// Lock-free: the second and the events admitted in it share one word.
type perSecond struct {
	limit uint64
	state atomic.Uint64 // unix second << 32 | events admitted in it
}

// allow reports whether an event at now is admitted.
func (l *perSecond) allow(now time.Time) bool {
	if l.limit == 0 {
		return true
	}
	sec := uint64(now.Unix()) & 0xffffffff
	for {
		old := l.state.Load()
		// Only a later second opens a new window: a request that started
		// in an earlier one but ends now counts against the current one.
		if sec > old>>32 {
			if l.state.CompareAndSwap(old, sec<<32|1) {
				return true
			}
			continue
		}
		if old&0xffffffff >= l.limit {
			return false
		}
		if l.state.CompareAndSwap(old, old+1) {
			return true
		}
	}
}

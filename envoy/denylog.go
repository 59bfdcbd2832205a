package envoy

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultDenyLogLimit is how many deny lines a second are logged by default.
const DefaultDenyLogLimit = 20

// denyLog bounds the deny lines logged per second: a flood of garbage must
// not turn into a flood of log lines (metrics still count every deny). The
// denies left out are reported, with their count, by one line at the first
// deny of a later second. Lock-free: the second and the lines logged in it
// share one word.
type denyLog struct {
	limit      uint64
	state      atomic.Uint64 // unix second << 32 | lines logged in it
	suppressed atomic.Int64  // denies not logged since the last report
}

// allow reports whether a deny at now may be logged; the first deny of a
// new second also logs how many were suppressed before it.
func (l *denyLog) allow(log *slog.Logger, now time.Time) bool {
	if l.limit == 0 {
		return true
	}
	sec := uint64(now.Unix()) & 0xffffffff
	for {
		old := l.state.Load()
		// Only a later second opens a new window: a request that started
		// in an earlier one but ends now counts against the current one.
		if sec > old>>32 {
			if !l.state.CompareAndSwap(old, sec<<32|1) {
				continue
			}
			if n := l.suppressed.Swap(0); n > 0 {
				log.Warn("deny log lines suppressed", "count", n, "limit_per_second", l.limit)
			}
			return true
		}
		if old&0xffffffff >= l.limit {
			l.suppressed.Add(1)
			return false
		}
		if l.state.CompareAndSwap(old, old+1) {
			return true
		}
	}
}

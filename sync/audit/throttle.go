package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Throttle records at most Burst entries per Window through a Recorder and
// aggregates the rest: it counts them, with a sample of their addresses,
// and records one summary entry (Count = how many) when the window ends
// (at the next Record or Flush). Whatever the flood, the trail grows by at
// most Burst + 1 entries per window, and the Throttle holds a fixed amount
// of memory. It is safe for concurrent use.
type Throttle struct {
	rec    Recorder
	burst  int
	window time.Duration
	now    func() time.Time

	mu        sync.Mutex
	start     time.Time // of the current window
	used      int       // entries recorded in it
	held      uint64    // entries aggregated in it
	last      Entry     // the last one aggregated, for the summary's kind and target
	addrs     []string  // up to maxSampleAddrs distinct addresses of them
	moreAddrs bool
}

// maxSampleAddrs bounds the addresses a summary names.
const maxSampleAddrs = 8

// NewThrottle returns a Throttle over rec. burst < 1 is 1; window <= 0 is
// one minute.
func NewThrottle(rec Recorder, burst int, window time.Duration) *Throttle {
	if burst < 1 {
		burst = 1
	}
	if window <= 0 {
		window = time.Minute
	}
	return &Throttle{rec: rec, burst: burst, window: window, now: time.Now}
}

// Record records e at once while the window has room, else aggregates it.
func (t *Throttle) Record(ctx context.Context, e Entry) error {
	t.mu.Lock()
	summary, ok := t.roll()
	record := t.used < t.burst
	if record {
		t.used++
	} else {
		t.held++
		t.last = e
		if e.Source != "" && !slices.Contains(t.addrs, e.Source) {
			if len(t.addrs) < maxSampleAddrs {
				t.addrs = append(t.addrs, e.Source)
			} else {
				t.moreAddrs = true
			}
		}
	}
	t.mu.Unlock()
	var err error
	if ok {
		err = t.rec.Record(ctx, summary)
	}
	if record {
		if rerr := t.rec.Record(ctx, e); rerr != nil {
			err = rerr
		}
	}
	return err
}

// Flush records the summary of a window that has ended; the node calls it
// every window so that the last burst of a flood is recorded too.
func (t *Throttle) Flush(ctx context.Context) error {
	t.mu.Lock()
	summary, ok := t.roll()
	t.mu.Unlock()
	if !ok {
		return nil
	}
	return t.rec.Record(ctx, summary)
}

// roll starts a new window when the current one has ended, returning the
// summary of what it aggregated. t.mu is held.
func (t *Throttle) roll() (Entry, bool) {
	now := t.now()
	if now.Sub(t.start) < t.window {
		return Entry{}, false
	}
	var summary Entry
	ok := t.held > 0
	if ok {
		addrs := strings.Join(t.addrs, ", ")
		if t.moreAddrs {
			addrs += ", ..."
		}
		summary = Entry{
			Time:   now,
			Kind:   t.last.Kind,
			Actor:  t.last.Actor,
			Source: addrs,
			Target: t.last.Target,
			Count:  t.held,
			Reason: fmt.Sprintf("%d more %s events from %s to %s, beyond %d recorded one by one per %v (last: %s)",
				t.held, t.last.Kind, t.start.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), t.burst, t.window, t.last.Reason),
		}
	}
	t.start, t.used, t.held, t.addrs, t.moreAddrs = now, 0, 0, nil, false
	return summary, ok
}

package scope

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// Config sizes a Table.
type Config struct {
	// MaxEntries bounds the tokens kept.
	MaxEntries int
	// MaxBytes bounds the accounted memory of the tokens kept (strings,
	// lists and per-entry overhead): the least recently seen go first.
	MaxBytes int64
	// QueueSize bounds the events waiting for the worker; a full queue
	// drops (and counts) what arrives.
	QueueSize int
	// RouteDepth is how many path segments a route keeps.
	RouteDepth int
	// ShareInterval is how often, at most, a token's summary is written to
	// the Shared store (a mesh's bound on the write rate per token).
	ShareInterval time.Duration
	// MaxShare bounds the summaries written per ShareInterval.
	MaxShare int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxEntries:    20_000,
		MaxBytes:      32 << 20,
		QueueSize:     4096,
		RouteDepth:    2,
		ShareInterval: 10 * time.Second,
		MaxShare:      10_000,
	}
}

// Validate names the first setting that is wrong.
func (c *Config) Validate() error {
	switch {
	case c.MaxEntries < 1 || c.MaxEntries > 10_000_000:
		return fmt.Errorf("scope-entries: %d, want 1 to 10000000", c.MaxEntries)
	case c.MaxBytes < 1<<20:
		return fmt.Errorf("scope-bytes: %d, want at least 1 MiB", c.MaxBytes)
	case c.QueueSize < 1:
		return fmt.Errorf("scope-queue: %d, want at least 1", c.QueueSize)
	case c.RouteDepth < 1 || c.RouteDepth > 16:
		return fmt.Errorf("scope-route-depth: %d, want 1 to 16", c.RouteDepth)
	case c.ShareInterval < time.Second:
		return fmt.Errorf("scope-share-interval: %s, want at least 1s", c.ShareInterval)
	case c.MaxShare < 1:
		return fmt.Errorf("scope-max-share: %d, want at least 1", c.MaxShare)
	}
	return nil
}

// sighting is one event as the queue holds it: a value, so that a send
// does not allocate. Its strings may point into the request; the worker
// copies what it keeps.
type sighting struct {
	at      time.Time
	claims  authz.Claims
	reason  authz.Reason
	method  string
	path    string
	ua      string
	source  netip.Addr
	allowed bool
}

// record is a kept entry and whether it changed since it was last shared.
type record struct {
	Entry
	dirty bool
}

// Table is a node's scope. It is safe for concurrent use.
type Table struct {
	cfg   Config
	node  string
	now   func() time.Time
	log   *slog.Logger
	queue chan sighting

	mu    sync.Mutex
	lru   *simplelru.LRU[string, *record]
	bytes int64

	dropped, evicted atomic.Uint64
	shared           Shared
}

// Option configures a Table.
type Option func(*Table)

// WithClock sets the clock that decides expiry (tests). Default time.Now.
func WithClock(now func() time.Time) Option { return func(t *Table) { t.now = now } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(t *Table) { t.log = l } }

// WithShared shares the table's summaries through s, under node's name,
// and makes Answer cover every node that shares there.
func WithShared(s Shared) Option { return func(t *Table) { t.shared = s } }

// New returns an empty table named node (its name in mesh answers).
func New(cfg Config, node string, opts ...Option) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Table{cfg: cfg, node: node, now: time.Now, log: slog.Default(), queue: make(chan sighting, cfg.QueueSize)}
	for _, o := range opts {
		o(t)
	}
	lru, err := simplelru.NewLRU(cfg.MaxEntries, func(_ string, r *record) {
		t.bytes -= r.size()
	})
	if err != nil {
		return nil, fmt.Errorf("scope table: %w", err)
	}
	t.lru = lru
	return t, nil
}

var _ envoy.Observer = (*Table)(nil)

// Observe queues e for the worker; decisions without a verified token
// (nothing to name it by) are not kept. It never blocks or allocates.
func (t *Table) Observe(e *envoy.Event) {
	if e.Claims.TokenID == "" {
		return
	}
	select {
	case t.queue <- sighting{
		at: e.Time, claims: e.Claims, reason: e.Reason, allowed: e.Reason == authz.ReasonOK,
		method: e.Request.Method, path: e.Request.Path, ua: e.Request.UserAgent, source: e.Request.Source,
	}:
	default:
		t.dropped.Add(1)
	}
}

// Stats are a table's counters.
type Stats struct {
	Entries int
	Bytes   int64
	// Dropped counts events lost to a full queue, Evicted the tokens
	// pushed out to make room (not those that expired).
	Dropped, Evicted uint64
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Entries: t.lru.Len(), Bytes: t.bytes, Dropped: t.dropped.Load(), Evicted: t.evicted.Load()}
}

// Run applies queued events until ctx ends, drops expired tokens, and,
// with a Shared store, writes the changed summaries every ShareInterval.
func (t *Table) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.ShareInterval)
	defer tick.Stop()
	poll := time.NewTicker(envoy.PollInterval) // see PollInterval: no wake-up per request
	defer poll.Stop()
	var sharing sync.WaitGroup
	defer sharing.Wait()
	busy := false
	done := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			t.drain(cap(t.queue))
		case <-done:
			busy = false
		case <-tick.C:
			t.sweep()
			if t.shared == nil || busy {
				continue // one write at a time: a slow store delays sharing, never the table
			}
			batch := t.changed()
			if len(batch) == 0 {
				continue
			}
			busy = true
			sharing.Add(1)
			go func() {
				defer sharing.Done()
				t.share(ctx, batch)
				done <- struct{}{}
			}()
		}
	}
}

// Flush applies every queued event now (tests, and before a query that
// must see what was just observed).
func (t *Table) Flush() { t.drain(-1) }

// drain applies at most max queued events (-1: until the queue is empty).
func (t *Table) drain(max int) {
	for ; max != 0; max-- {
		select {
		case s := <-t.queue:
			t.apply(&s)
		default:
			return
		}
	}
}

// apply notes one sighting.
func (t *Table) apply(s *sighting) {
	c := &s.claims
	k := key(c.Issuer, c.TokenID)
	route := ""
	if s.method != "" || s.path != "" {
		route = clip(Route(s.method, s.path, t.cfg.RouteDepth), maxText)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.lru.Get(k)
	if !ok {
		r = &record{Entry: Entry{
			TokenID: clip(c.TokenID, maxID), Issuer: clip(c.Issuer, maxID), Subject: clip(c.Subject, maxID),
			Session: clip(c.Session, maxID), KeyID: clip(c.KeyID, maxID),
			Expiry: time.Unix(c.Expiry, 0).UTC(), FirstSeen: s.at,
		}}
		if c.IssuedAt != 0 {
			r.IssuedAt = time.Unix(c.IssuedAt, 0).UTC()
		}
		if t.lru.Add(k, r) {
			t.evicted.Add(1)
		}
	} else {
		t.bytes -= r.size()
	}
	e := &r.Entry
	e.Requests++
	if !s.allowed {
		e.Denied++
	}
	if !s.at.Before(e.LastSeen) {
		e.LastSeen, e.LastReason = s.at, s.reason
	}
	if s.source.IsValid() {
		e.Addrs.Add(s.source)
		if len(e.AddrExamples) < MaxAddrExamples && !slices.Contains(e.AddrExamples, s.source) {
			if e.AddrExamples == nil {
				e.AddrExamples = make([]netip.Addr, 0, MaxAddrExamples)
			}
			e.AddrExamples = append(e.AddrExamples, s.source)
		}
	}
	if s.ua != "" && len(e.UserAgents) < MaxUserAgents && !slices.Contains(e.UserAgents, s.ua) {
		e.UserAgents = append(e.UserAgents, clip(s.ua, maxText))
	}
	if route != "" {
		e.Routes = addText(e.Routes, route, MaxRoutes)
	}
	r.dirty = true
	t.bytes += r.size()
	for t.bytes > t.cfg.MaxBytes && t.lru.Len() > 1 {
		t.lru.RemoveOldest()
		t.evicted.Add(1)
	}
}

// sweep drops the tokens that have expired.
func (t *Table) sweep() {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range t.lru.Keys() {
		if r, ok := t.lru.Peek(k); ok && !now.Before(r.Expiry) {
			t.lru.Remove(k)
		}
	}
}

// Query returns the live tokens of this node that q selects, the most
// recently seen first, and whether more matched than q's limit.
func (t *Table) Query(q Query) ([]Entry, bool) {
	now := t.now()
	limit := q.limit()
	var out []Entry
	t.mu.Lock()
	for _, r := range t.lru.Values() {
		if q.Match(&r.Entry, now) {
			e := r.clone()
			e.Nodes = []string{t.node}
			out = append(out, e)
		}
	}
	t.mu.Unlock()
	sortEntries(out)
	if len(out) > limit {
		return out[:limit], true
	}
	return out, false
}

// sortEntries orders entries the most recently seen first.
func sortEntries(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int {
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Compare(a.Key(), b.Key())
	})
}

package detect

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// Revoker writes an automatic revocation to the source, completing it
// (expiry, creation time) as every writer's records are.
type Revoker interface {
	Revoke(ctx context.Context, rec authz.Record) (authz.Record, error)
}

// Auditor records a block or an automatic revocation in the audit trail.
type Auditor interface {
	Audit(ctx context.Context, e AuditEntry)
}

// AuditEntry is one action of a detector, as the audit trail keeps it.
type AuditEntry struct {
	Time time.Time
	Node string
	// Actor is jwtguard/auto:<detector>.
	Actor string
	// Action is the policy carried out: block or revoke-*.
	Action Policy
	// Target names what was blocked or revoked: "address 192.0.2.7",
	// "token <iss> <token id>", a record's kind and value.
	Target string
	// Reason is the evidence.
	Reason string
	// Address is the source address of the request that fired it.
	Address netip.Addr
	// Record is the stored revocation (revoke policies only).
	Record *authz.Record
}

// Actor is the actor of the records and audit entries of detector n.
func Actor(n Name) string { return "jwtguard/auto:" + string(n) }

// event is what the worker needs of one decision: the hot path copies it
// into the queue.
type event struct {
	t                       int64 // unix nanoseconds
	reason                  authz.Reason
	src                     netip.Addr
	ua                      string
	iss, sub, tid, sid, kid string
	keyAge                  int64 // nanoseconds; set by the worker (retired-key)
}

// eventBytes is the size of a queued event with its strings (they point
// into requests the queue keeps alive: a token's claims, a user agent).
const eventBytes = 160 + 8192

// Engine runs the configured detectors and holds the blocks they set. It
// is an envoy.Observer and an envoy.Blocker.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	revoker Revoker
	auditor Auditor
	shared  Shared
	queue   chan event
	want    [inClasses]bool
	keySets func() []authz.KeySetInfo
	// keyBorn is when this node first loaded each key, by issuer and kid
	// (the worker's, refreshed every second from keySets).
	keyBorn map[string]map[string]int64
	dets    []*detector
	blocks  atomic.Pointer[blockSet]
	m       metrics
	seed    [2]maphash.Seed

	// Worker state.
	share     shareState
	recent    *simplelru.LRU[firedKey, int64]
	capMinute int64
	capCount  int
	inflight  sync.WaitGroup
}

// Option configures an Engine.
type Option func(*Engine)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithRevoker writes revocations through r (without one, a revoke policy
// observes and says so).
func WithRevoker(r Revoker) Option { return func(e *Engine) { e.revoker = r } }

// WithAuditor records blocks and revocations with a.
func WithAuditor(a Auditor) Option { return func(e *Engine) { e.auditor = a } }

// WithRegisterer registers the detector metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(e *Engine) { e.m.register(reg) }
}

// New validates cfg and returns an Engine; Run starts its worker.
func New(cfg Config, opts ...Option) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: slog.Default(), queue: make(chan event, cfg.QueueSize)}
	e.m.init()
	e.seed = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	for _, o := range opts {
		o(e)
	}
	for _, n := range Names {
		dc, ok := cfg.Detectors[n]
		if !ok {
			continue
		}
		d, err := newDetector(n, dc)
		if err != nil {
			return nil, err
		}
		e.dets = append(e.dets, d)
		for in := range inClasses {
			e.want[in] = e.want[in] || d.reads(in)
		}
		if dc.MaxKeyAge > 0 && e.keySets == nil {
			return nil, fmt.Errorf("detectors: %s: max-key-age needs the key sets (WithKeySets)", n)
		}
	}
	var err error
	if e.recent, err = simplelru.NewLRU[firedKey, int64](recentSize, nil); err != nil {
		return nil, fmt.Errorf("detectors: %w", err)
	}
	return e, nil
}

// Running reports whether any detector runs.
func (e *Engine) Running() bool { return len(e.dets) > 0 }

// input classes of decisions.
const (
	inAllowed = iota
	inBad
	inRevoked
	inExpired
	inRetired
	inClasses // how many
)

// classify returns the input class of a decision, or -1 when no detector
// reads it.
func classify(r authz.Reason) int {
	switch r {
	case authz.ReasonOK:
		return inAllowed
	case authz.ReasonBadSignature, authz.ReasonMalformed, authz.ReasonUnknownKey, authz.ReasonBadAlgorithm,
		authz.ReasonUnsupported, authz.ReasonTooLarge:
		return inBad
	case authz.ReasonRevoked:
		return inRevoked
	case authz.ReasonExpired:
		return inExpired
	case authz.ReasonRetiredKey:
		return inRetired
	}
	return -1
}

// Observe hands the decision to the worker without blocking or
// allocating: decisions no detector reads are skipped, and a full queue
// drops the event and counts it.
func (e *Engine) Observe(ev *envoy.Event) {
	in := classify(ev.Reason)
	if in < 0 || !e.want[in] {
		return
	}
	c := &ev.Claims
	if in == inBad && !ev.Request.Source.IsValid() || in != inBad && c.TokenID == "" {
		return
	}
	select {
	case e.queue <- event{t: ev.Time.UnixNano(), reason: ev.Reason, src: ev.Request.Source, ua: ev.Request.UserAgent,
		iss: c.Issuer, sub: c.Subject, tid: c.TokenID, sid: c.Session, kid: c.KeyID}:
	default:
		e.m.dropped.Inc()
	}
}

// pollInterval is how often the worker drains the queue (see
// envoy.PollInterval: polling spares every request a wake-up).
const pollInterval = envoy.PollInterval

// Run works the queue until ctx ends, then waits for the revocations in
// flight.
func (e *Engine) Run(ctx context.Context) {
	defer e.inflight.Wait()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	var shareTick <-chan time.Time
	if e.shared != nil {
		t := time.NewTicker(e.cfg.ShareInterval)
		defer t.Stop()
		shareTick = t.C
		e.share.start(ctx, e)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			e.drain(ctx)
		case now := <-tick.C:
			e.pruneBlocks(now.UnixNano())
			e.loadKeyAges()
		case <-shareTick:
			e.share.flush(e)
		case res := <-e.share.done:
			e.share.busy = false
			e.meshFindings(ctx, res)
		}
	}
}

// drain processes the events queued, at most a queue's worth.
func (e *Engine) drain(ctx context.Context) {
	for range cap(e.queue) {
		select {
		case ev := <-e.queue:
			e.process(ctx, &ev)
		default:
			return
		}
	}
}

// process runs every detector over one event.
func (e *Engine) process(ctx context.Context, ev *event) {
	e.m.events.Inc()
	if e.allowed(ev) {
		return
	}
	in := classify(ev.reason)
	for _, d := range e.dets {
		if !d.reads(in) || d.name == RetiredKey && in == inAllowed && !e.oldKey(d, ev) {
			continue
		}
		k := d.key(e, ev)
		c, evidence, fired := d.see(k, ev)
		if fired {
			e.fire(ctx, d, k, ev, evidence)
		} else if d.name == TokenAddresses && e.shared != nil {
			e.share.offer(e, d, k, c, ev)
		}
	}
}

// allowed reports whether the allowlist exempts ev.
func (e *Engine) allowed(ev *event) bool {
	a := &e.cfg.Allow
	if ev.sub != "" && slices.Contains(a.Subjects, ev.sub) || ev.iss != "" && slices.Contains(a.Issuers, ev.iss) {
		return true
	}
	if ev.src.IsValid() {
		for _, p := range a.Addresses {
			if p.Contains(ev.src) {
				return true
			}
		}
	}
	return false
}

// hkey is a 128-bit keyed hash of a candidate's identity: never the
// strings themselves, so a table's size does not depend on what an
// attacker puts in a token, and with random seeds no one can aim two
// identities at one key.
type hkey struct{ a, b uint64 }

func (e *Engine) hash(tag byte, a, b string, addr netip.Addr) hkey {
	var k hkey
	for i, dst := range [2]*uint64{&k.a, &k.b} {
		var h maphash.Hash
		h.SetSeed(e.seed[i])
		h.WriteByte(tag)
		h.WriteString(a)
		h.WriteByte(0)
		h.WriteString(b)
		if addr.IsValid() {
			a16 := addr.As16()
			h.Write(a16[:])
		}
		*dst = h.Sum64()
	}
	return k
}

// WithKeySets gives the retired-key detector the issuers' key sets (the
// checker's KeySets), for the age of the key of each allowed token.
func WithKeySets(fn func() []authz.KeySetInfo) Option { return func(e *Engine) { e.keySets = fn } }

// loadKeyAges refreshes keyBorn from the key sets, when a detector reads
// key ages.
func (e *Engine) loadKeyAges() {
	if e.keySets == nil || !e.want[inAllowed] {
		return
	}
	born := map[string]map[string]int64{}
	for _, ks := range e.keySets() {
		m := make(map[string]int64, len(ks.Keys))
		for _, k := range ks.Keys {
			if k.KID != "" {
				m[k.KID] = k.FirstSeen.UnixNano()
			}
		}
		born[ks.Issuer] = m
	}
	e.keyBorn = born
}

// oldKey reports whether the key that verified ev, an allowed token, was
// first loaded longer than d's MaxKeyAge before it, and notes its age.
func (e *Engine) oldKey(d *detector, ev *event) bool {
	if e.keyBorn == nil {
		e.loadKeyAges()
	}
	born, ok := e.keyBorn[ev.iss][ev.kid]
	if !ok {
		return false
	}
	ev.keyAge = ev.t - born
	return ev.keyAge > int64(d.cfg.MaxKeyAge)
}

// Shared counts distinct source addresses of one token across the mesh,
// for the token-addresses detector: each node adds what it saw, and reads
// how many distinct addresses every node together saw (the Redis source
// implements it).
type Shared interface {
	// AddSightings adds each sighting's members to the mesh-wide set of
	// its key, kept TTL, and returns the distinct members of each set.
	AddSightings(ctx context.Context, batch []Sighting) ([]int64, error)
	// Claim takes name for ttl unless a node holds it already: one node
	// acts on a mesh-wide finding.
	Claim(ctx context.Context, name string, ttl time.Duration) (bool, error)
}

// Sighting is what one node adds to a mesh-wide set.
type Sighting struct {
	Key     string
	Members []string
	TTL     time.Duration
}

// WithShared shares the token-addresses detector's candidates through s.
func WithShared(s Shared) Option { return func(e *Engine) { e.shared = s } }

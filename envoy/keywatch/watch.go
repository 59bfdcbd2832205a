package keywatch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// IssuerPolicy is the watch's setting for one issuer.
type IssuerPolicy struct {
	// MaxKeyAge raises the missed-rotation alarm when the newest key of
	// the issuer is older than this; 0 turns the alarm off.
	MaxKeyAge time.Duration
	// Purge turns on "rotate, then purge" for the issuer.
	Purge bool
	// PurgeGrace is how long after a new key appears the previous keys'
	// tokens are revoked.
	PurgeGrace time.Duration
}

// Config configures a Watch.
type Config struct {
	// Issuers are the per-issuer policies; an issuer not listed takes
	// Default.
	Issuers map[string]IssuerPolicy
	Default IssuerPolicy
	// RefreshAlarm raises the refresh alarm when an issuer's key set has
	// failed to load for longer than this.
	RefreshAlarm time.Duration
	// Interval is how often the watch looks (Run).
	Interval time.Duration
}

// DefaultRefreshAlarm is the default Config.RefreshAlarm.
const DefaultRefreshAlarm = time.Hour

// Validate names the first setting that is wrong.
func (c *Config) Validate() error {
	if c.RefreshAlarm <= 0 {
		return fmt.Errorf("key-refresh-alarm: %s, want more than 0", c.RefreshAlarm)
	}
	if c.Interval <= 0 {
		return fmt.Errorf("key watch interval: %s, want more than 0", c.Interval)
	}
	for iss, p := range c.Issuers {
		if err := p.validate(); err != nil {
			return fmt.Errorf("issuer %s: %w", iss, err)
		}
	}
	return c.Default.validate()
}

func (p IssuerPolicy) validate() error {
	switch {
	case p.MaxKeyAge < 0:
		return fmt.Errorf("max-key-age: %s, want 0 (off) or more", p.MaxKeyAge)
	case p.PurgeGrace < 0:
		return fmt.Errorf("purge-grace: %s, want 0 or more", p.PurgeGrace)
	case !p.Purge && p.PurgeGrace > 0:
		return fmt.Errorf("purge-grace: %s is set but purge-on-rotation is off", p.PurgeGrace)
	}
	return nil
}

// KeySets is the read-only view of the key sets the watch needs
// (authz.Checker).
type KeySets interface {
	KeySets() []authz.KeySetInfo
}

// Revoker stores the purge's records, completed and enforced as any
// revocation, and lists those already stored (so that nodes that purged
// first are not repeated).
type Revoker interface {
	Revoke(ctx context.Context, recs []authz.Record) ([]authz.Record, error)
	KeyRecords(ctx context.Context, issuer, kid string) ([]authz.Record, error)
}

// Kind names an alarm.
type Kind string

// Alarms.
const (
	// MissedRotation: no new key within MaxKeyAge.
	MissedRotation Kind = "missed_rotation"
	// GoneKeyInUse: tokens still name a key that left the set.
	GoneKeyInUse Kind = "gone_key_in_use"
	// RefreshFailing: the key set has not loaded for longer than
	// RefreshAlarm.
	RefreshFailing Kind = "refresh_failing"
	// Purged: the previous keys' tokens were revoked after a rotation.
	Purged Kind = "purged"
)

// Alarm is one alarm raised (or purge done).
type Alarm struct {
	Time    time.Time
	Kind    Kind
	Issuer  string
	KID     string
	Message string
	// Records are the revocations a purge stored.
	Records []authz.Record
}

// Option configures a Watch.
type Option func(*Watch)

// WithClock sets the clock (tests). Default time.Now.
func WithClock(now func() time.Time) Option { return func(w *Watch) { w.now = now } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(w *Watch) { w.log = l } }

// WithAlarm calls fn with every alarm raised and every purge done (the
// node's audit trail, say). fn runs on the watch's goroutine.
func WithAlarm(fn func(Alarm)) Option { return func(w *Watch) { w.alarm = fn } }

// WithRevoker lets the watch purge; without it a purge policy only logs
// what it would revoke.
func WithRevoker(r Revoker) Option { return func(w *Watch) { w.revoker = r } }

// seen is a kid of verified tokens, as the queue holds it.
type seen struct{ issuer, kid string }

// maxKIDs bounds the kids counted per issuer.
const maxKIDs = 64

// Watch is the key-rotation watch. It is safe for concurrent use.
type Watch struct {
	cfg     Config
	sets    KeySets
	now     func() time.Time
	log     *slog.Logger
	alarm   func(Alarm)
	revoker Revoker
	queue   chan seen
	dropped atomic.Uint64

	mu      sync.Mutex
	used    map[string]map[string]*kidUse // issuer -> kid -> use
	state   map[string]*issuerState
	started time.Time
}

// kidUse counts verified tokens of one kid.
type kidUse struct {
	count    uint64
	lastSeen time.Time
}

// issuerState is what the watch remembers of one issuer between looks.
type issuerState struct {
	kids     map[string]time.Time // kid -> first seen, as of the last look
	active   map[Kind]bool        // alarms raised and not yet cleared
	goneUses map[string]uint64    // gone kid -> uses at the last look
	pending  []purge              // purges waiting for their grace
}

// purge is a rotation waiting for its grace period.
type purge struct {
	newKID   string
	appeared time.Time
	oldKIDs  []string
}

// New returns a watch over sets.
func New(cfg Config, sets KeySets, opts ...Option) (*Watch, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Watch{cfg: cfg, sets: sets, now: time.Now, log: slog.Default(), queue: make(chan seen, 1024),
		used: map[string]map[string]*kidUse{}, state: map[string]*issuerState{}}
	for _, o := range opts {
		o(w)
	}
	w.started = w.now()
	return w, nil
}

var _ envoy.Observer = (*Watch)(nil)

// Observe notes the kid of a verified token. It never blocks or
// allocates; a full queue drops and counts.
func (w *Watch) Observe(e *envoy.Event) {
	if e.Claims.KeyID == "" {
		return
	}
	select {
	case w.queue <- seen{e.Claims.Issuer, e.Claims.KeyID}:
	default:
		w.dropped.Add(1)
	}
}

// policy is the policy of issuer.
func (w *Watch) policy(issuer string) IssuerPolicy {
	if p, ok := w.cfg.Issuers[issuer]; ok {
		return p
	}
	return w.cfg.Default
}

// Run counts the observed kids and looks at the key sets every Interval
// until ctx ends.
func (w *Watch) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	poll := time.NewTicker(envoy.PollInterval) // see PollInterval: no wake-up per request
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			w.drain()
		case <-t.C:
			w.Check(ctx)
		}
	}
}

// drain counts every queued kid.
func (w *Watch) drain() {
	for {
		select {
		case s := <-w.queue:
			w.count(s)
		default:
			return
		}
	}
}

func (w *Watch) count(s seen) {
	w.mu.Lock()
	defer w.mu.Unlock()
	kids := w.used[s.issuer]
	if kids == nil {
		if len(w.used) >= maxKIDs {
			return
		}
		kids = map[string]*kidUse{}
		w.used[s.issuer] = kids
	}
	u := kids[s.kid]
	if u == nil {
		if len(kids) >= maxKIDs {
			return
		}
		u = &kidUse{}
		kids[s.kid] = u
	}
	u.count++
	u.lastSeen = w.now()
}

// Check looks at every key set once: it raises and clears alarms and
// performs the purges whose grace has passed. Run calls it every
// Interval; tests call it directly.
func (w *Watch) Check(ctx context.Context) {
	w.drain()
	now := w.now()
	for _, ks := range w.sets.KeySets() {
		if !ks.Remote {
			continue
		}
		w.checkIssuer(ctx, &ks, now)
	}
}

func (w *Watch) checkIssuer(ctx context.Context, ks *authz.KeySetInfo, now time.Time) {
	p := w.policy(ks.Issuer)
	w.mu.Lock()
	st := w.state[ks.Issuer]
	first := st == nil
	if first {
		st = &issuerState{kids: map[string]time.Time{}, active: map[Kind]bool{}, goneUses: map[string]uint64{}}
		w.state[ks.Issuer] = st
	}
	w.mu.Unlock()

	// Missed rotation: the newest key is older than MaxKeyAge.
	if p.MaxKeyAge > 0 && len(ks.Keys) > 0 {
		newest := ks.Keys[0]
		for _, k := range ks.Keys[1:] {
			if k.FirstSeen.After(newest.FirstSeen) {
				newest = k
			}
		}
		age := now.Sub(newest.FirstSeen)
		w.set(st, MissedRotation, age > p.MaxKeyAge, Alarm{Time: now, Kind: MissedRotation, Issuer: ks.Issuer, KID: newest.KID,
			Message: fmt.Sprintf("no new signing key for %s (max-key-age %s): the newest, kid %q, was first seen %s", age.Round(time.Second), p.MaxKeyAge, newest.KID, newest.FirstSeen.UTC().Format(time.RFC3339))})
	}

	// Refresh failing for longer than the bound.
	failing := !ks.FailingSince.IsZero() && now.Sub(ks.FailingSince) > w.cfg.RefreshAlarm
	w.set(st, RefreshFailing, failing, Alarm{Time: now, Kind: RefreshFailing, Issuer: ks.Issuer,
		Message: fmt.Sprintf("key set refresh failing since %s (%d failures, last: %s); the last good keys are still used", ks.FailingSince.UTC().Format(time.RFC3339), ks.Failures, ks.LastError)})

	// A gone key still in use: its use count rose since the last look.
	inUse := false
	for _, g := range ks.Gone {
		prev, known := st.goneUses[g.KID]
		st.goneUses[g.KID] = g.Uses
		if g.Uses > prev || (!known && g.Uses > 0) {
			inUse = true
			w.raise(Alarm{Time: now, Kind: GoneKeyInUse, Issuer: ks.Issuer, KID: g.KID,
				Message: fmt.Sprintf("key %q left the key set at %s but %d tokens naming it arrived since (denied retired_key, or bad_signature when forged): a client holds old tokens, or the issuer still signs with a key it no longer publishes", g.KID, g.GoneAt.UTC().Format(time.RFC3339), g.Uses-prev)})
		}
	}
	w.mu.Lock()
	st.active[GoneKeyInUse] = inUse
	w.mu.Unlock()

	// Rotation: keys that appeared since the last look.
	var appeared []authz.KeyInfo
	for _, k := range ks.Keys {
		if _, ok := st.kids[k.KID]; !ok && !first {
			appeared = append(appeared, k)
		}
	}
	if p.Purge && len(appeared) > 0 && len(st.kids) > 0 {
		var old []string
		for kid := range st.kids {
			if !slices.ContainsFunc(appeared, func(k authz.KeyInfo) bool { return k.KID == kid }) {
				old = append(old, kid)
			}
		}
		slices.Sort(old)
		newest := appeared[0]
		for _, k := range appeared[1:] {
			if k.FirstSeen.After(newest.FirstSeen) {
				newest = k
			}
		}
		st.pending = append(st.pending, purge{newKID: newest.KID, appeared: newest.FirstSeen, oldKIDs: old})
		w.log.Info("key rotation seen: the previous keys' tokens will be revoked after the grace period",
			"issuer", ks.Issuer, "new_kid", newest.KID, "previous_kids", old, "purge_at", newest.FirstSeen.Add(p.PurgeGrace).UTC())
	}
	st.kids = map[string]time.Time{}
	for _, k := range ks.Keys {
		st.kids[k.KID] = k.FirstSeen
	}
	var keep []purge
	for _, pg := range st.pending {
		if now.Before(pg.appeared.Add(p.PurgeGrace)) || !w.purge(ctx, ks.Issuer, pg, now) {
			keep = append(keep, pg)
		}
	}
	st.pending = keep
}

// set raises a when on and the alarm is not active yet, and clears it
// (with a log line) when off.
func (w *Watch) set(st *issuerState, kind Kind, on bool, a Alarm) {
	w.mu.Lock()
	was := st.active[kind]
	st.active[kind] = on
	w.mu.Unlock()
	switch {
	case on && !was:
		w.raise(a)
	case !on && was:
		w.log.Info("key-rotation alarm cleared", "alarm", string(kind), "issuer", a.Issuer)
	}
}

func (w *Watch) raise(a Alarm) {
	w.log.Warn("key-rotation alarm: "+a.Message, "alarm", string(a.Kind), "issuer", a.Issuer, "kid", a.KID)
	if w.alarm != nil {
		w.alarm(a)
	}
}

// purge revokes the tokens of pg's old keys issued at or before the new
// key appeared; it reports whether the purge is done (false: try again
// at the next look).
func (w *Watch) purge(ctx context.Context, issuer string, pg purge, now time.Time) bool {
	reason := fmt.Sprintf("rotate, then purge: key %q appeared at %s", pg.newKID, pg.appeared.UTC().Format(time.RFC3339))
	var recs []authz.Record
	for _, kid := range pg.oldKIDs {
		rec := authz.Record{Kind: authz.KindKey, Issuer: issuer, Value: kid, Before: pg.appeared.UTC().Truncate(time.Second),
			Reason: reason, Actor: "jwtguard key-rotation watch"}
		if w.revoker != nil && w.covered(ctx, rec) {
			continue
		}
		recs = append(recs, rec)
	}
	a := Alarm{Time: now, Kind: Purged, Issuer: issuer, KID: pg.newKID}
	if w.revoker == nil {
		a.Message = fmt.Sprintf("would revoke the tokens of keys %v issued before key %q appeared, but this watch cannot revoke", pg.oldKIDs, pg.newKID)
		w.raise(a)
		return true
	}
	if len(recs) == 0 {
		return true // another node purged first
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stored, err := w.revoker.Revoke(cctx, recs)
	if err != nil {
		w.log.Error("rotate, then purge: storing the revocations failed; retrying at the next look", "issuer", issuer, "err", err)
		return false
	}
	a.Records = stored
	a.Message = fmt.Sprintf("revoked the tokens of keys %v issued at or before %s, when key %q appeared", pg.oldKIDs, pg.appeared.UTC().Format(time.RFC3339), pg.newKID)
	w.raise(a)
	return true
}

// covered reports whether a key record at least as wide as rec is stored
// already (another node of the mesh purged first).
func (w *Watch) covered(ctx context.Context, rec authz.Record) bool {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	have, err := w.revoker.KeyRecords(cctx, rec.Issuer, rec.Value)
	if err != nil {
		return false
	}
	for _, h := range have {
		if (h.Issuer == "" || h.Issuer == rec.Issuer) && (h.Before.IsZero() || !h.Before.Before(rec.Before)) {
			return true
		}
	}
	return false
}

// Active returns the alarms active now, per issuer (tests, status).
func (w *Watch) Active() map[string][]Kind {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]Kind{}
	for iss, st := range w.state {
		for k, on := range st.active {
			if on {
				out[iss] = append(out[iss], k)
			}
		}
		slices.Sort(out[iss])
	}
	return out
}

package keywatch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/keywatch"
)

const iss = "https://rotating.test"

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// jwksServer serves a key set the test changes; failing makes it answer 500.
type jwksServer struct {
	body    atomic.Pointer[[]byte]
	failing atomic.Bool
	*httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if s.failing.Load() {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(t *testing.T, keys ...*mint.Key) {
	t.Helper()
	b, err := mint.JWKS(keys...)
	if err != nil {
		t.Fatal(err)
	}
	s.body.Store(&b)
}

// purges records what the watch revokes.
type purges struct {
	mu   sync.Mutex
	recs []authz.Record
}

func (p *purges) Revoke(_ context.Context, recs []authz.Record) ([]authz.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recs = append(p.recs, recs...)
	return recs, nil
}

func (p *purges) KeyRecords(_ context.Context, issuer, kid string) ([]authz.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []authz.Record
	for _, r := range p.recs {
		if r.Issuer == issuer && r.Value == kid {
			out = append(out, r)
		}
	}
	return out, nil
}

type world struct {
	clk     *clock
	jwks    *jwksServer
	checker *authz.Checker
	authz   *envoy.Authorization
	watch   *keywatch.Watch
	purged  *purges
	alarms  []keywatch.Alarm
}

func newWorld(t *testing.T, k1 *mint.Key) *world {
	t.Helper()
	w := &world{clk: &clock{now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}, jwks: newJWKSServer(t), purged: &purges{}}
	w.jwks.serve(t, k1)
	f, err := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, noRecords{}, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev.SetReady(true)
	cfg := authz.DefaultConfig()
	ic := authz.DefaultIssuerConfig(iss)
	ic.JWKSURL, ic.Audiences = w.jwks.URL, []string{"api"}
	cfg.Issuers = []authz.IssuerConfig{ic}
	if w.checker, err = authz.NewChecker(cfg, rev, authz.WithClock(w.clk.Now)); err != nil {
		t.Fatal(err)
	}
	w.load(t)
	wcfg := keywatch.Config{RefreshAlarm: time.Hour, Interval: time.Minute,
		Issuers: map[string]keywatch.IssuerPolicy{iss: {MaxKeyAge: 24 * time.Hour, Purge: true, PurgeGrace: time.Hour}}}
	w.watch, err = keywatch.New(wcfg, w.checker, keywatch.WithClock(w.clk.Now), keywatch.WithRevoker(w.purged),
		keywatch.WithAlarm(func(a keywatch.Alarm) { w.alarms = append(w.alarms, a) }))
	if err != nil {
		t.Fatal(err)
	}
	w.authz = envoy.NewAuthorization(w.checker, envoy.WithObserver(w.watch))
	return w
}

type noRecords struct{}

func (noRecords) Lookup(context.Context, authz.LookupKey) ([]authz.Record, error) { return nil, nil }

func (w *world) load(t *testing.T) {
	t.Helper()
	if err := w.checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (w *world) check(t *testing.T, k *mint.Key, jti string) authz.Reason {
	t.Helper()
	now := w.clk.Now()
	tok, err := k.Sign(map[string]any{"iss": iss, "aud": "api", "sub": "u", "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.authz.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/", Headers: map[string]string{"authorization": "Bearer " + tok}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus().GetCode() == 0 {
		return authz.ReasonOK
	}
	return authz.Reason(resp.GetStatus().GetMessage())
}

func (w *world) active() []keywatch.Kind {
	w.watch.Check(context.Background())
	return w.watch.Active()[iss]
}

func (w *world) lastAlarm(kind keywatch.Kind) *keywatch.Alarm {
	for i := len(w.alarms) - 1; i >= 0; i-- {
		if w.alarms[i].Kind == kind {
			return &w.alarms[i]
		}
	}
	return nil
}

// TestRotationWatch: a key set that stops rotating raises the missed
// rotation alarm; a new key clears it and, after the grace period, purges
// the old key's tokens issued before it appeared; a key that leaves while
// its tokens still arrive raises its alarm; a refresh failing for longer
// than the bound raises one too, cleared by a success.
func TestRotationWatch(t *testing.T) {
	k1, err := mint.NewKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := mint.NewKey("ES256", "k2")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, k1)
	if r := w.check(t, k1, "a"); r != authz.ReasonOK {
		t.Fatalf("k1 token: %s", r)
	}
	if got := w.active(); len(got) != 0 {
		t.Fatalf("alarms at start: %v", got)
	}

	// No rotation for a day and an hour: the alarm rises, once.
	w.clk.Add(25 * time.Hour)
	w.load(t)
	if got := w.active(); !slices.Equal(got, []keywatch.Kind{keywatch.MissedRotation}) {
		t.Fatalf("after 25h without a new key: %v", got)
	}
	if a := w.lastAlarm(keywatch.MissedRotation); a == nil || a.KID != "k1" {
		t.Errorf("missed rotation alarm: %+v", a)
	}
	n := len(w.alarms)
	w.active()
	if len(w.alarms) != n {
		t.Error("an alarm still raised was raised again")
	}

	// The issuer rotates: the alarm clears, the purge waits for its grace.
	rotated := w.clk.Now()
	w.jwks.serve(t, k1, k2)
	w.load(t)
	if got := w.active(); len(got) != 0 {
		t.Fatalf("after the rotation: %v", got)
	}
	w.clk.Add(59 * time.Minute)
	w.active()
	if len(w.purged.recs) != 0 {
		t.Fatalf("purged before the grace period: %+v", w.purged.recs)
	}
	w.clk.Add(2 * time.Minute)
	w.active()
	want := authz.Record{Kind: authz.KindKey, Issuer: iss, Value: "k1", Before: rotated}
	if len(w.purged.recs) != 1 {
		t.Fatalf("purge: %+v", w.purged.recs)
	}
	if got := w.purged.recs[0]; got.Kind != want.Kind || got.Issuer != want.Issuer || got.Value != want.Value || !got.Before.Equal(want.Before) || got.Reason == "" {
		t.Errorf("purge record %+v, want %+v", got, want)
	}
	w.active()
	if len(w.purged.recs) != 1 {
		t.Errorf("purged twice: %+v", w.purged.recs)
	}

	// k1 leaves the set while its tokens still arrive.
	w.jwks.serve(t, k2)
	w.load(t)
	if got := w.active(); len(got) != 0 {
		t.Fatalf("a key left, nobody used it yet: %v", got)
	}
	if r := w.check(t, k1, "late"); r != authz.ReasonRetiredKey {
		t.Fatalf("token of the gone key: %s", r)
	}
	if got := w.active(); !slices.Equal(got, []keywatch.Kind{keywatch.GoneKeyInUse}) {
		t.Fatalf("after a token of the gone key: %v", got)
	}
	if a := w.lastAlarm(keywatch.GoneKeyInUse); a == nil || a.KID != "k1" {
		t.Errorf("gone key alarm: %+v", a)
	}
	if got := w.active(); len(got) != 0 {
		t.Errorf("no new use of the gone key, alarm still up: %v", got)
	}
	if r := w.check(t, k2, "b"); r != authz.ReasonOK {
		t.Fatalf("k2 token: %s", r)
	}

	// The key set stops loading: an alarm after the bound, cleared by a success.
	w.jwks.failing.Store(true)
	if err := w.checker.LoadKeys(context.Background()); err == nil {
		t.Fatal("a failing key set loaded")
	}
	w.clk.Add(30 * time.Minute)
	_ = w.checker.LoadKeys(context.Background())
	if got := w.active(); len(got) != 0 {
		t.Fatalf("failing for 30m: %v", got)
	}
	w.clk.Add(31 * time.Minute)
	_ = w.checker.LoadKeys(context.Background())
	if got := w.active(); !slices.Equal(got, []keywatch.Kind{keywatch.RefreshFailing}) {
		t.Fatalf("failing for 61m: %v", got)
	}
	w.jwks.failing.Store(false)
	w.load(t)
	if got := w.active(); len(got) != 0 {
		t.Fatalf("after a successful refresh: %v", got)
	}
	ks := w.checker.KeySets()[0]
	if ks.Failures < 2 || ks.Refreshes < 4 || !ks.FailingSince.IsZero() || len(ks.Keys) != 1 || len(ks.Gone) != 1 || ks.Gone[0].Uses != 1 {
		t.Errorf("key set info %+v", ks)
	}
}

// TestObserveDoesNotAllocate: the watch's part of a decision is a copy
// into its queue.
func TestObserveDoesNotAllocate(t *testing.T) {
	k1, err := mint.NewKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, k1)
	e := &envoy.Event{Claims: authz.Claims{Issuer: iss, KeyID: "k1"}}
	if n := testing.AllocsPerRun(2000, func() { w.watch.Observe(e) }); n != 0 {
		t.Errorf("Observe allocates %.1f times", n)
	}
}

// BenchmarkObserve is the watch's cost on the hot path.
func BenchmarkObserve(b *testing.B) {
	w, err := keywatch.New(keywatch.Config{RefreshAlarm: time.Hour, Interval: time.Minute}, noKeySets{})
	if err != nil {
		b.Fatal(err)
	}
	e := &envoy.Event{Claims: authz.Claims{Issuer: iss, KeyID: "k1"}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Observe(e)
		if i%512 == 511 {
			b.StopTimer()
			w.Check(context.Background())
			b.StartTimer()
		}
	}
}

type noKeySets struct{}

func (noKeySets) KeySets() []authz.KeySetInfo { return nil }

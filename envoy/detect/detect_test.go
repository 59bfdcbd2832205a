package detect

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// recorder is a Revoker and Auditor that keeps what it is given.
type recorder struct {
	mu     sync.Mutex
	recs   []authz.Record
	audits []AuditEntry
}

func (r *recorder) Revoke(_ context.Context, rec authz.Record) (authz.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.ID = fmt.Sprint(len(r.recs) + 1)
	rec.CreatedAt = time.Now()
	r.recs = append(r.recs, rec)
	return rec, nil
}

func (r *recorder) Audit(_ context.Context, a AuditEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.audits = append(r.audits, a)
}

func (r *recorder) records() []authz.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authz.Record(nil), r.recs...)
}

type fixture struct {
	e   *Engine
	rec *recorder
	reg *prometheus.Registry
	t0  time.Time
}

func newFixture(t *testing.T, mutate func(*Config), opts ...Option) *fixture {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Node = "node-a"
	cfg.Detectors = map[Name]DetectorConfig{}
	mutate(&cfg)
	f := &fixture{rec: &recorder{}, reg: prometheus.NewRegistry(), t0: time.Unix(1_800_000_000, 0)}
	var err error
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithRevoker(f.rec), WithAuditor(f.rec), WithRegisterer(f.reg)}, opts...)
	f.e, err = New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// see hands the engine one decision at t0+at, as the hot path does, and
// processes it.
func (f *fixture) see(t *testing.T, at time.Duration, reason authz.Reason, src string, c authz.Claims, ua string) {
	t.Helper()
	ev := envoy.Event{Time: f.t0.Add(at), Reason: reason, Claims: c}
	ev.Request.UserAgent = ua
	if src != "" {
		ev.Request.Source = netip.MustParseAddr(src)
	}
	f.e.Observe(&ev)
	select {
	case q := <-f.e.queue:
		f.e.process(context.Background(), &q)
	default:
	}
	f.e.Wait()
}

func (f *fixture) fired(n Name, p Policy, outcome string) float64 {
	return testutil.ToFloat64(f.e.m.actions.WithLabelValues(string(n), string(p), outcome))
}

func claims(tid string) authz.Claims {
	return authz.Claims{Issuer: "https://iss.test", Subject: "sub-" + tid, TokenID: tid, JTI: tid, Session: "sid-" + tid}
}

func with(n Name, mutate func(*DetectorConfig)) func(*Config) {
	return func(c *Config) {
		d := DefaultDetector(n)
		mutate(&d)
		c.Detectors[n] = d
	}
}

func TestTokenFromManyAddresses(t *testing.T) {
	for _, p := range []Policy{Observe, Block, RevokeToken, RevokeSession, RevokeSubject} {
		t.Run(string(p), func(t *testing.T) {
			f := newFixture(t, with(TokenAddresses, func(d *DetectorConfig) { d.Threshold, d.Policy = 3, p }))
			c := claims("stolen")
			for i := range 3 {
				f.see(t, time.Duration(i)*time.Second, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), c, "")
				f.see(t, time.Duration(i)*time.Second, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), c, "") // repeats count once
			}
			if got := f.fired(TokenAddresses, p, outcomeOf(p)); got != 0 {
				t.Fatalf("fired at 3 distinct addresses with threshold 3")
			}
			f.see(t, 4*time.Second, authz.ReasonOK, "198.51.100.9", c, "")
			if got := f.fired(TokenAddresses, p, outcomeOf(p)); got != 1 {
				t.Fatalf("%s: fired %v times at the 4th address, want once", p, got)
			}
			f.see(t, 5*time.Second, authz.ReasonOK, "198.51.100.10", c, "") // same window: no second action
			if got := f.fired(TokenAddresses, p, outcomeOf(p)); got != 1 {
				t.Fatalf("fired %v times within one window, want once", got)
			}
			recs := f.rec.records()
			switch p {
			case Block:
				if !f.e.BlockedToken(c.Issuer, c.TokenID, "", "", f.t0.Add(5*time.Second)) {
					t.Fatal("token not blocked")
				}
				if f.e.BlockedToken(c.Issuer, "other", "", "", f.t0.Add(5*time.Second)) {
					t.Fatal("another token blocked")
				}
				if f.e.BlockedToken(c.Issuer, c.TokenID, "", "", f.t0.Add(4*time.Second+DefaultDetector(TokenAddresses).BlockFor)) {
					t.Fatal("block outlived block-for")
				}
			case RevokeToken, RevokeSession, RevokeSubject:
				want := map[Policy]authz.Record{
					RevokeToken:   {Kind: authz.KindToken, Value: "stolen"},
					RevokeSession: {Kind: authz.KindSession, Value: "sid-stolen"},
					RevokeSubject: {Kind: authz.KindSubject, Value: "sub-stolen"},
				}[p]
				if len(recs) != 1 || recs[0].Kind != want.Kind || recs[0].Value != want.Value || recs[0].Issuer != c.Issuer ||
					recs[0].Actor != "jwtguard/auto:token-addresses" || !strings.Contains(recs[0].Reason, "node node-a") ||
					!strings.Contains(recs[0].Reason, "more than 3 distinct addresses") {
					t.Fatalf("records %+v, want one %s %s by jwtguard/auto:token-addresses", recs, want.Kind, want.Value)
				}
				if len(f.rec.audits) != 1 || f.rec.audits[0].Node != "node-a" || f.rec.audits[0].Record == nil {
					t.Fatalf("audit %+v, want the revocation", f.rec.audits)
				}
			}
			if p != RevokeToken && p != RevokeSession && p != RevokeSubject && len(recs) != 0 {
				t.Fatalf("%s wrote records %+v", p, recs)
			}
			// A new window starts afresh.
			f.see(t, 10*time.Minute, authz.ReasonOK, "203.0.113.1", c, "")
			if got := f.fired(TokenAddresses, p, outcomeOf(p)); got != 1 {
				t.Fatalf("fired again on the first address of a new window")
			}
		})
	}
}

func outcomeOf(p Policy) string {
	switch p {
	case Block:
		return "blocked"
	case Observe:
		return "observed"
	}
	return "revoked"
}

func TestEveryDetectorFires(t *testing.T) {
	c := claims("t1")
	tests := []struct {
		name   Name
		reason authz.Reason
		claims authz.Claims
		src    func(i int) string
		ua     func(i int) string
	}{
		{TokenUserAgents, authz.ReasonOK, c, func(int) string { return "192.0.2.1" }, func(i int) string { return fmt.Sprintf("agent/%d", i) }},
		{TokenRate, authz.ReasonOK, c, func(int) string { return "192.0.2.1" }, func(int) string { return "" }},
		{BadSignature, authz.ReasonBadSignature, authz.Claims{}, func(int) string { return "192.0.2.66" }, func(int) string { return "" }},
		{RevokedReuse, authz.ReasonRevoked, c, func(int) string { return "192.0.2.1" }, func(int) string { return "" }},
		{ExpiredReuse, authz.ReasonExpired, c, func(int) string { return "192.0.2.1" }, func(int) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(string(tt.name), func(t *testing.T) {
			f := newFixture(t, with(tt.name, func(d *DetectorConfig) { d.Threshold = 5 }))
			for i := range 5 {
				f.see(t, time.Duration(i)*time.Millisecond, tt.reason, tt.src(i), tt.claims, tt.ua(i))
			}
			if f.fired(tt.name, Observe, "observed") != 0 {
				t.Fatal("fired at the threshold")
			}
			f.see(t, 10*time.Millisecond, tt.reason, tt.src(5), tt.claims, tt.ua(5))
			if f.fired(tt.name, Observe, "observed") != 1 {
				t.Fatal("did not fire past the threshold")
			}
		})
	}
}

func TestForgeryFloodBlocksTheAddress(t *testing.T) {
	f := newFixture(t, with(BadSignature, func(d *DetectorConfig) { d.Threshold, d.Policy, d.BlockFor = 10, Block, time.Minute }))
	flood, other := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.8")
	for i := range 11 {
		f.see(t, time.Duration(i)*time.Millisecond, []authz.Reason{authz.ReasonBadSignature, authz.ReasonMalformed, authz.ReasonUnknownKey}[i%3], flood.String(), authz.Claims{}, "")
	}
	now := f.t0.Add(time.Second)
	if !f.e.BlockedAddr(flood, now) || f.e.BlockedAddr(other, now) {
		t.Fatal("the flooding address is not blocked, or another is")
	}
	f.e.pruneBlocks(f.t0.Add(2 * time.Minute).UnixNano())
	if f.e.BlockedAddr(flood, f.t0.Add(2*time.Minute)) || f.e.blocks.Load().addrs[flood] != 0 {
		t.Fatal("block outlived block-for, or was not pruned")
	}
	if len(f.rec.audits) != 1 || f.rec.audits[0].Action != Block || f.rec.audits[0].Address != flood {
		t.Fatalf("audit %+v, want the block", f.rec.audits)
	}
}

func TestDryRunDoesNothing(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.DryRun = true
		with(TokenAddresses, func(d *DetectorConfig) { d.Threshold, d.Policy = 1, RevokeToken })(c)
		with(BadSignature, func(d *DetectorConfig) { d.Threshold, d.Policy = 1, Block })(c)
	})
	for i := range 3 {
		f.see(t, 0, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), claims("t"), "")
		f.see(t, 0, authz.ReasonBadSignature, "203.0.113.7", authz.Claims{}, "")
	}
	if len(f.rec.records()) != 0 || f.e.BlockedAddr(netip.MustParseAddr("203.0.113.7"), f.t0) || len(f.rec.audits) != 0 {
		t.Fatal("dry run acted")
	}
	if f.fired(TokenAddresses, RevokeToken, "dry_run") != 1 || f.fired(BadSignature, Block, "dry_run") != 1 {
		t.Fatal("dry run did not say what it would do")
	}
}

func TestAllowlist(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Allow = Allowlist{Subjects: []string{"sub-svc"}, Issuers: []string{"https://internal.test"}, Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
		with(TokenAddresses, func(d *DetectorConfig) { d.Threshold, d.Policy = 1, RevokeToken })(c)
		with(BadSignature, func(d *DetectorConfig) { d.Threshold, d.Policy = 1, Block })(c)
	})
	svc := claims("svc")
	internal := claims("int")
	internal.Issuer = "https://internal.test"
	for i := range 5 {
		f.see(t, 0, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), svc, "")
		f.see(t, 0, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), internal, "")
		f.see(t, 0, authz.ReasonBadSignature, "10.1.2.3", authz.Claims{}, "")
	}
	if len(f.rec.records()) != 0 || f.e.BlockedAddr(netip.MustParseAddr("10.1.2.3"), f.t0) {
		t.Fatal("an allowlisted client was acted on")
	}
	f.see(t, 0, authz.ReasonOK, "192.0.2.1", claims("user"), "")
	f.see(t, 0, authz.ReasonOK, "192.0.2.2", claims("user"), "")
	if len(f.rec.records()) != 1 {
		t.Fatal("a client off the allowlist was not acted on")
	}
}

func TestRevocationCap(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MaxRevocationsPerMinute = 3
		with(TokenAddresses, func(d *DetectorConfig) { d.Threshold, d.Policy = 1, RevokeToken })(c)
	})
	for tok := range 10 {
		for i := range 2 {
			f.see(t, time.Duration(tok)*time.Second, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), claims(fmt.Sprint("t", tok)), "")
		}
	}
	if n := len(f.rec.records()); n != 3 {
		t.Fatalf("%d revocations in a minute, want the cap of 3", n)
	}
	if got := f.fired(TokenAddresses, RevokeToken, "capped"); got != 7 {
		t.Fatalf("%v capped, want 7", got)
	}
	// The next minute has room again.
	for i := range 2 {
		f.see(t, time.Minute+time.Second, authz.ReasonOK, fmt.Sprintf("192.0.2.%d", i+1), claims("late"), "")
	}
	if n := len(f.rec.records()); n != 4 {
		t.Fatalf("%d revocations, want 4 after the minute turned", n)
	}
}

func TestMaxBlocks(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.MaxBlocks = 2
		with(BadSignature, func(d *DetectorConfig) { d.Threshold, d.Policy = 1, Block })(c)
	})
	for a := range 4 {
		for range 2 {
			f.see(t, 0, authz.ReasonMalformed, fmt.Sprintf("203.0.113.%d", a+1), authz.Claims{}, "")
		}
	}
	if got := f.fired(BadSignature, Block, "block_full"); got != 2 {
		t.Fatalf("%v blocks refused, want 2 past max-blocks 2", got)
	}
}

// TestMemoryBound: a flood of one million distinct tokens and one million
// distinct addresses (every detector on, every event a new candidate)
// keeps the detectors' memory under Config.MemoryBound.
func TestMemoryBound(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 100_000 // the race detector makes each event ~10x dearer
	}
	f := newFixture(t, func(c *Config) {
		for _, name := range Names {
			with(name, func(d *DetectorConfig) { d.Candidates = 20000 })(c)
		}
	})
	bound := f.e.cfg.MemoryBound()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx := context.Background()
	t0 := f.t0.UnixNano()
	for i := range n {
		addr := netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		id := strconv.Itoa(i)
		for _, r := range []authz.Reason{authz.ReasonOK, authz.ReasonBadSignature, authz.ReasonRevoked, authz.ReasonExpired, authz.ReasonRetiredKey} {
			ev := event{t: t0 + int64(i), reason: r, src: addr, ua: id, iss: "https://iss.test", sub: id, tid: id, sid: id}
			f.e.process(ctx, &ev)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d distinct tokens and addresses: heap grew %d KiB; bound %d KiB", n, grew/1024, bound/1024)
	for _, d := range f.e.dets {
		if d.table.Len() > d.cfg.Candidates {
			t.Fatalf("%s holds %d candidates, more than %d", d.name, d.table.Len(), d.cfg.Candidates)
		}
	}
	if grew > bound {
		t.Fatalf("heap grew %d bytes, more than the bound of %d", grew, bound)
	}
}

// TestHotPathAllocations: handing a decision to the engine and asking it
// whether a request is blocked allocate nothing, blocks held or not.
func TestHotPathAllocations(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.QueueSize = 1
		for _, name := range Names {
			with(name, func(*DetectorConfig) {})(c)
		}
	})
	ev := envoy.Event{Time: f.t0, Reason: authz.ReasonOK, Claims: claims("t")}
	ev.Request.Source = netip.MustParseAddr("192.0.2.1")
	addr := ev.Request.Source
	c := ev.Claims
	check := func(name string) {
		t.Helper()
		if got := testing.AllocsPerRun(100, func() {
			f.e.Observe(&ev) // the queue is full after the first: drops
			f.e.BlockedAddr(addr, f.t0)
			f.e.BlockedToken(c.Issuer, c.TokenID, c.Session, c.Subject, f.t0)
		}); got != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, got)
		}
	}
	check("nothing blocked")
	f.e.addBlock(f.t0.UnixNano(), netip.MustParseAddr("203.0.113.1"), blockKey{}, f.t0.Add(time.Hour).UnixNano())
	f.e.addBlock(f.t0.UnixNano(), netip.Addr{}, blockKey{kindToken, c.Issuer, "other"}, f.t0.Add(time.Hour).UnixNano())
	check("blocks held")
	if testutil.ToFloat64(f.e.m.dropped) == 0 {
		t.Fatal("a full queue dropped nothing")
	}
}

func BenchmarkObserve(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Detectors = map[Name]DetectorConfig{}
	for _, n := range Names {
		cfg.Detectors[n] = DefaultDetector(n)
	}
	e, err := New(cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Run(ctx)
	ev := envoy.Event{Time: time.Now(), Reason: authz.ReasonOK, Claims: claims("t")}
	ev.Request.Source = netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(&ev)
	}
}

// TestRetiredKey: a token of a key that left its set fires at once (the
// default threshold 0), with every policy; with max-key-age, an allowed
// token of a key first loaded longer ago fires too, one of a younger key
// or a key the sets do not hold does not.
func TestRetiredKey(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	sets := func() []authz.KeySetInfo {
		return []authz.KeySetInfo{{Issuer: "https://iss.test", Keys: []authz.KeyInfo{
			{KID: "old", FirstSeen: t0.Add(-48 * time.Hour)}, {KID: "young", FirstSeen: t0.Add(-time.Hour)}}}}
	}
	signed := func(tid, kid string) authz.Claims { c := claims(tid); c.KeyID = kid; return c }
	tests := []struct {
		name     string
		reason   authz.Reason
		claims   authz.Claims
		fires    bool
		evidence string
	}{
		{"a key that left the set", authz.ReasonRetiredKey, signed("t-gone", "gone"), true, "which left the key set"},
		{"a key older than max-key-age", authz.ReasonOK, signed("t-old", "old"), true, "older than max-key-age 24h0m0s"},
		{"a younger key", authz.ReasonOK, signed("t-young", "young"), false, ""},
		{"a kid the sets do not hold", authz.ReasonOK, signed("t-what", "what"), false, ""},
		{"an expired token of an old key", authz.ReasonExpired, signed("t-exp", "old"), false, ""},
	}
	for _, p := range Policies {
		for _, tc := range tests {
			t.Run(string(p)+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, with(RetiredKey, func(d *DetectorConfig) { d.Policy, d.MaxKeyAge = p, 24*time.Hour }), WithKeySets(sets))
				f.see(t, 0, tc.reason, "192.0.2.1", tc.claims, "")
				f.see(t, time.Second, tc.reason, "192.0.2.2", tc.claims, "") // the same window: once
				want := 0.0
				if tc.fires {
					want = 1
				}
				if got := f.fired(RetiredKey, p, outcomeOf(p)); got != want {
					t.Fatalf("fired %v times, want %v", got, want)
				}
				recs := f.rec.records()
				switch {
				case !tc.fires || p == Observe:
					if len(recs) != 0 {
						t.Fatalf("records %+v, want none", recs)
					}
				case p == Block:
					if !f.e.BlockedToken(tc.claims.Issuer, tc.claims.TokenID, "", "", t0.Add(2*time.Second)) {
						t.Fatal("token not blocked")
					}
				default:
					want := map[Policy]authz.Record{
						RevokeToken:   {Kind: authz.KindToken, Value: tc.claims.TokenID},
						RevokeSession: {Kind: authz.KindSession, Value: tc.claims.Session},
						RevokeSubject: {Kind: authz.KindSubject, Value: tc.claims.Subject},
					}[p]
					if len(recs) != 1 || recs[0].Kind != want.Kind || recs[0].Value != want.Value || recs[0].Actor != Actor(RetiredKey) ||
						!strings.Contains(recs[0].Reason, tc.evidence) || !strings.Contains(recs[0].Reason, "key "+tc.claims.KeyID) {
						t.Fatalf("records %+v, want one %s %s by %s naming key %s and %q", recs, want.Kind, want.Value, Actor(RetiredKey), tc.claims.KeyID, tc.evidence)
					}
				}
			})
		}
	}
}

// TestRetiredKeyConfig: the settings only retired-key takes, and the key
// sets max-key-age needs.
func TestRetiredKeyConfig(t *testing.T) {
	if d := DefaultDetector(RetiredKey); d.Threshold != 0 || d.MaxKeyAge != 0 {
		t.Fatalf("defaults %+v: want threshold 0 (the first token) and no max-key-age", d)
	}
	tests := []struct {
		name   string
		det    Name
		mutate func(*DetectorConfig)
		want   string
	}{
		{"negative threshold", RetiredKey, func(d *DetectorConfig) { d.Threshold = -1 }, "threshold -1"},
		{"threshold 0 elsewhere", TokenRate, func(d *DetectorConfig) { d.Threshold = 0 }, "threshold 0, want 1 or more"},
		{"a tiny max-key-age", RetiredKey, func(d *DetectorConfig) { d.MaxKeyAge = time.Second }, "max-key-age 1s"},
		{"max-key-age elsewhere", TokenRate, func(d *DetectorConfig) { d.MaxKeyAge = time.Hour }, "only retired-key"},
		{"max-key-age without key sets", RetiredKey, func(d *DetectorConfig) { d.MaxKeyAge = time.Hour }, "needs the key sets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			d := DefaultDetector(tc.det)
			tc.mutate(&d)
			cfg.Detectors = map[Name]DetectorConfig{tc.det: d}
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

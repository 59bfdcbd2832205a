package decisionlog_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/decisionlog"
)

// buffer is a concurrency-safe io.Writer.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// gate is a writer that blocks every write until it is opened, and says
// when the writer first waits on it.
type gate struct {
	buffer
	entered  chan struct{}
	once     sync.Once
	open     chan struct{}
	openOnce sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	return g.buffer.Write(p)
}

func (g *gate) release() { g.openOnce.Do(func() { close(g.open) }) }

// lines are a log's output split into decision lines and summary lines.
type lines struct {
	decisions []map[string]any
	summaries []decisionlog.Stats
}

func parse(t *testing.T, text string) lines {
	t.Helper()
	var out lines
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if _, ok := m["summary"]; ok {
			var s struct{ Summary decisionlog.Stats }
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			out.summaries = append(out.summaries, s.Summary)
			continue
		}
		out.decisions = append(out.decisions, m)
	}
	return out
}

func newLog(t *testing.T, w *buffer, cfg decisionlog.Config, opts ...decisionlog.Option) *decisionlog.Log {
	t.Helper()
	l, err := decisionlog.New(w, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	return l
}

func closeLog(t *testing.T, l *decisionlog.Log) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 123456000, time.UTC)

func allowEvent() *envoy.Event {
	return &envoy.Event{
		Time: t0, Took: 1500 * time.Nanosecond, Reason: authz.ReasonOK,
		Request: envoy.Request{Transport: "grpc", Method: "GET", Host: "api.test", Path: "/v1/things?x=1",
			Source: netip.MustParseAddr("2001:db8::7"), RequestID: "req-1", UserAgent: "curl/8",
			ContextExtensions: map[string]string{"route": "things"}},
		Claims: authz.Claims{Issuer: "https://iss.test", Subject: "alice", JTI: "j-1", TokenID: "j-1",
			Session: "s-1", KeyID: "k-1", Expiry: 1, IssuedAt: 1, Extra: [authz.MaxClaimHeaders]string{"alice@example.com"}},
	}
}

func denyEvent() *envoy.Event {
	return &envoy.Event{
		Time: t0, Took: 2 * time.Microsecond, Reason: authz.ReasonRevoked, RevokedBy: authz.KindSession,
		Request: envoy.Request{Transport: "http", Method: "POST", Host: "app.test", Path: "/login",
			Source: netip.MustParseAddr("203.0.113.9")},
		Rule:   "login",
		Claims: authz.Claims{Issuer: "https://iss.test", Subject: "bob", TokenID: "sha256:ab", Session: "s-9", KeyID: "k-1"},
		Err:    errors.New("session revoked"),
	}
}

// TestLineContent: a line holds the decision, the request facts and the
// token's identity, and nothing else: no user agent, no claim header
// values, no context extensions.
func TestLineContent(t *testing.T) {
	w := &buffer{}
	cfg := decisionlog.DefaultConfig()
	cfg.Node, cfg.AllowSample = "node-1", 1
	l := newLog(t, w, cfg)
	l.Observe(allowEvent())
	l.Observe(denyEvent())
	closeLog(t, l)

	got := parse(t, w.String())
	want := []map[string]any{{
		"time": "2026-11-30T12:00:00.123456Z", "node": "node-1", "decision": "allow", "reason": "ok",
		"transport": "grpc", "method": "GET", "host": "api.test", "path": "/v1/things?x=1",
		"source": "2001:db8::7", "request_id": "req-1", "iss": "https://iss.test", "sub": "alice",
		"jti": "j-1", "sid": "s-1", "kid": "k-1", "token_id": "j-1", "took_ns": 1500.0,
	}, {
		"time": "2026-11-30T12:00:00.123456Z", "node": "node-1", "decision": "deny", "reason": "revoked",
		"revoked_by": "session", "rule": "login", "error": "session revoked", "transport": "http", "method": "POST",
		"host": "app.test", "path": "/login", "source": "203.0.113.9", "iss": "https://iss.test", "sub": "bob",
		"sid": "s-9", "kid": "k-1", "token_id": "sha256:ab", "took_ns": 2000.0,
	}}
	if !reflect.DeepEqual(got.decisions, want) {
		t.Errorf("lines\n got %v\nwant %v", got.decisions, want)
	}
	if len(got.summaries) != 0 {
		t.Errorf("summary %+v with nothing left out", got.summaries)
	}
}

// TestLongFieldsAreCut: an attacker's long path or odd bytes neither grow
// a line without bound nor break its JSON.
func TestLongFieldsAreCut(t *testing.T) {
	w := &buffer{}
	l := newLog(t, w, decisionlog.DefaultConfig())
	e := denyEvent()
	e.Request.Path = "/" + strings.Repeat("a", 100_000)
	e.Request.Host = "evil\"\n\x00\xff.test"
	e.Err = errors.New(strings.Repeat("e", 10_000))
	l.Observe(e)
	closeLog(t, l)
	got := parse(t, w.String()).decisions
	if len(got) != 1 {
		t.Fatalf("%d lines, want 1", len(got))
	}
	if p := got[0]["path"].(string); len(p) != 1024 {
		t.Errorf("path of %d bytes, want cut to 1024", len(p))
	}
	if got[0]["truncated"] != true {
		t.Error("a cut line is not marked truncated")
	}
	if e := got[0]["error"].(string); len(e) > 256 {
		t.Errorf("error of %d bytes, want at most 256", len(e))
	}
	if h := got[0]["host"].(string); h != "evil\"\n\x00\ufffd.test" {
		t.Errorf("host %q", h)
	}
	if n := len(w.String()); n > 4096 {
		t.Errorf("a line of %d bytes", n)
	}
}

// TestAllowSampling: with a fixed random source, the share of allows
// logged is the configured one within five standard deviations, and every
// allow is logged, counted as sampled out or (the writer being behind)
// counted as dropped.
func TestAllowSampling(t *testing.T) {
	const n = 20_000
	for _, rate := range []float64{0, 0.01, 0.1, 0.5, 1} {
		t.Run("", func(t *testing.T) {
			cfg := decisionlog.DefaultConfig()
			cfg.AllowSample = rate
			rng := rand.New(rand.NewPCG(1, 2))
			l, err := decisionlog.New(io.Discard, cfg, decisionlog.WithRandom(rng.Uint64))
			if err != nil {
				t.Fatal(err)
			}
			e := allowEvent()
			for range n {
				l.Observe(e)
			}
			closeLog(t, l)
			st := l.Stats()
			if st.AllowsLogged+st.SampledOut+st.QueueFull != n {
				t.Errorf("rate %v: %+v, want every one of %d allows accounted for", rate, st, n)
			}
			kept := float64(n - st.SampledOut)
			mean := rate * n
			sigma := 5 * sqrt(n*rate*(1-rate))
			if kept < mean-sigma || kept > mean+sigma {
				t.Errorf("rate %v: %v of %d allows sampled, want %v ± %v", rate, kept, n, mean, sigma)
			}
		})
	}
}

func sqrt(x float64) float64 {
	r := x
	for range 50 {
		if r == 0 {
			return 0
		}
		r = (r + x/r) / 2
	}
	return r
}

// TestDenyRateLimit: at most DenyRate denies a second are logged, the rest
// counted and reported; a request that started in an earlier second does
// not reopen that second's allowance.
func TestDenyRateLimit(t *testing.T) {
	w := &buffer{}
	cfg := decisionlog.DefaultConfig()
	cfg.DenyRate = 3
	l := newLog(t, w, cfg)
	e := denyEvent()
	t1 := t0.Add(time.Second)
	times := []time.Time{t0, t0, t0, t0, t0, t1, t1, t0, t1, t0, t1, t1}
	for _, at := range times {
		e.Time = at
		l.Observe(e)
	}
	closeLog(t, l)
	got := parse(t, w.String())
	if len(got.decisions) != 6 {
		t.Errorf("%d deny lines over two seconds at 3 a second, want 6", len(got.decisions))
	}
	want := decisionlog.Stats{DeniesLogged: 6, RateLimited: uint64(len(times) - 6)}
	if st := l.Stats(); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	if len(got.summaries) != 1 || got.summaries[0].RateLimited != want.RateLimited {
		t.Errorf("summaries %+v, want one reporting %d rate limited", got.summaries, want.RateLimited)
	}
}

// TestFullQueueDropsWithoutBlocking: with the writer stuck, Observe keeps
// returning; what does not fit in the queue is counted, and what does is
// written once the writer moves again.
func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	g := newGate()
	defer g.release()
	cfg := decisionlog.DefaultConfig()
	cfg.QueueSize, cfg.DenyRate = 8, 0
	l, err := decisionlog.New(g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := denyEvent()
	l.Observe(e)
	<-g.entered // the writer took the first and is stuck writing it
	const more = 50
	for range more {
		l.Observe(e)
	}
	if st := l.Stats(); st.QueueFull != more-uint64(cfg.QueueSize) {
		t.Errorf("queue_full %d, want %d", st.QueueFull, more-cfg.QueueSize)
	}
	g.release()
	closeLog(t, l)
	got := parse(t, g.String())
	if len(got.decisions) != 1+cfg.QueueSize {
		t.Errorf("%d lines, want %d", len(got.decisions), 1+cfg.QueueSize)
	}
	if len(got.summaries) != 1 || got.summaries[0].QueueFull != more-uint64(cfg.QueueSize) {
		t.Errorf("summaries %+v", got.summaries)
	}
}

// TestCloseFlushes: Close writes every queued line before it returns, and
// Observe after Close drops without blocking.
func TestCloseFlushes(t *testing.T) {
	g := newGate()
	cfg := decisionlog.DefaultConfig()
	cfg.DenyRate = 0
	l, err := decisionlog.New(g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := denyEvent()
	for range 100 {
		l.Observe(e)
	}
	g.release()
	closeLog(t, l)
	if n := len(parse(t, g.String()).decisions); n != 100 {
		t.Errorf("%d lines after Close, want 100", n)
	}
	l.Observe(e)
	if st := l.Stats(); st.QueueFull != 1 {
		t.Errorf("an event after Close: %+v, want it counted as dropped", st)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseGivesUp: a writer stuck for good does not hold shutdown past
// the context.
func TestCloseGivesUp(t *testing.T) {
	g := newGate()
	defer g.release()
	l, err := decisionlog.New(g, decisionlog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	l.Observe(denyEvent())
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a stuck writer: %v, want context.Canceled", err)
	}
}

// failing fails every write.
type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteErrorsAreCounted: a failing writer is counted, not fatal.
func TestWriteErrorsAreCounted(t *testing.T) {
	cfg := decisionlog.DefaultConfig()
	l, err := decisionlog.New(failing{}, cfg, decisionlog.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		l.Observe(denyEvent())
	}
	closeLog(t, l)
	if st := l.Stats(); st.WriteErrors == 0 || st.DeniesLogged+st.WriteErrors < 5 {
		t.Errorf("stats %+v, want write errors counted", st)
	}
}

// TestOpenAppendsPrivately: a file target is created 0600 and appended to.
func TestOpenAppendsPrivately(t *testing.T) {
	p := filepath.Join(t.TempDir(), "decisions.jsonl")
	for range 2 {
		l, err := decisionlog.Open(p, nil, decisionlog.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		l.Observe(denyEvent())
		closeLog(t, l)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(p)
	if n := len(parse(t, string(raw)).decisions); n != 2 {
		t.Errorf("%d lines after two opens, want 2 (appended)", n)
	}
	if _, err := decisionlog.Open(filepath.Join(p, "sub"), nil, decisionlog.DefaultConfig()); err == nil {
		t.Error("a path under a file opened")
	}
}

// TestMetrics: the counters Prometheus scrapes are the log's counts.
func TestMetrics(t *testing.T) {
	w := &buffer{}
	cfg := decisionlog.DefaultConfig()
	cfg.DenyRate = 1
	l := newLog(t, w, cfg)
	reg := prometheus.NewRegistry()
	if err := l.Register(reg); err != nil {
		t.Fatal(err)
	}
	l.Observe(allowEvent())
	l.Observe(denyEvent())
	l.Observe(denyEvent())
	closeLog(t, l)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := mf.GetName()
			for _, lp := range m.GetLabel() {
				k += "/" + lp.GetValue()
			}
			got[k] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"jwtguard_decision_log_lines_total/allow": 0, "jwtguard_decision_log_lines_total/deny": 1,
		"jwtguard_decision_log_dropped_total/sampled_out": 1, "jwtguard_decision_log_dropped_total/rate_limited": 1,
		"jwtguard_decision_log_dropped_total/queue_full": 0, "jwtguard_decision_log_write_errors_total": 0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metrics\n got %v\nwant %v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*decisionlog.Config)
		want string
	}{
		{"sample above 1", func(c *decisionlog.Config) { c.AllowSample = 1.5 }, "allow sample"},
		{"negative sample", func(c *decisionlog.Config) { c.AllowSample = -0.1 }, "allow sample"},
		{"negative deny rate", func(c *decisionlog.Config) { c.DenyRate = -1 }, "deny rate"},
		{"no queue", func(c *decisionlog.Config) { c.QueueSize = 0 }, "queue size"},
		{"no summary interval", func(c *decisionlog.Config) { c.SummaryInterval = 0 }, "summary interval"},
		{"long node", func(c *decisionlog.Config) { c.Node = strings.Repeat("n", 600) }, "node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := decisionlog.DefaultConfig()
			tc.set(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want it to name %q", err, tc.want)
			}
		})
	}
	if err := decisionlog.DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

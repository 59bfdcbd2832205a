package loadgen

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/jwtguard/jwtguard/authz"
)

// server is a server under test running in this process.
type server struct {
	info ServerInfo
	keys *Keys
}

// startServer runs Serve on loopback until the test ends.
func startServer(t *testing.T, cfg ServerConfig) *server {
	t.Helper()
	if cfg.KeysDir == "" {
		cfg.KeysDir = t.TempDir()
	}
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Log = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan ServerInfo, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, func(i ServerInfo) { ready <- i }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case info := <-ready:
		keys, err := LoadKeys(cfg.KeysDir)
		if err != nil {
			t.Fatal(err)
		}
		return &server{info: info, keys: keys}
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("server not ready after 20s")
	}
	return nil
}

// run makes a bounded run against s.
func (s *server) run(t *testing.T, mix string, mod func(*RunConfig)) *Result {
	t.Helper()
	m, err := ParseMix(mix)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultRunConfig()
	cfg.Target, cfg.Keys, cfg.Mix = s.info.GRPCAddr.String(), s.keys, m
	cfg.Conns, cfg.Streams, cfg.Requests, cfg.Duration, cfg.MaxDuration = 2, 8, 1000, 0, 20*time.Second
	cfg.Label = mix
	if mod != nil {
		mod(&cfg)
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("run %s: %v", mix, err)
	}
	return res
}

func (s *server) forwardAuthURL() string {
	return "http://" + s.info.HTTPAddr.String() + ForwardAuthPrefix
}

func TestRunMixes(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard, RevokeMix: true})
	tests := []struct {
		name string
		mix  string
		http bool
		want map[string]int64 // outcomes of the measured 1000 requests
	}{
		{"repeated", "repeated=1", false, map[string]int64{"ok": 1000}},
		{"fresh", "fresh=1", false, map[string]int64{"ok": 1000}},
		{"revoked", "revoked=1", false, map[string]int64{"revoked": 1000}},
		{"invalid", "invalid=1", false, nil},
		{"forged", "forged=1", false, map[string]int64{string(authz.ReasonBadSignature): 1000}},
		{"verified", "verified=1", false, map[string]int64{"ok": 1000}},
		{"all six", "repeated=6,fresh=1,revoked=1,invalid=1,forged=1,verified=2", false, nil},
		{"forward-auth", "repeated=6,fresh=1,revoked=1,invalid=1,forged=1", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.run(t, tt.mix, func(c *RunConfig) {
				if tt.http {
					c.HTTPTarget = s.forwardAuthURL()
				}
			})
			if err := res.Err(); err != nil {
				t.Fatalf("run failed: %v\n%v", err, res.WrongExamples)
			}
			if res.Requests != 1000 {
				t.Errorf("requests = %d, want 1000", res.Requests)
			}
			if tt.want != nil && !reflect.DeepEqual(res.Outcomes, tt.want) {
				t.Errorf("outcomes = %v, want %v", res.Outcomes, tt.want)
			}
			var sum int64
			for _, n := range res.Outcomes {
				sum += n
			}
			if sum != res.Requests {
				t.Errorf("outcomes add up to %d, want %d", sum, res.Requests)
			}
			if res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Latency.P99 > res.Latency.Max {
				t.Errorf("latency summary out of order: %+v", res.Latency)
			}
			checkCategories(t, res)
		})
	}
}

// checkCategories checks that res has a result for each category of its
// mix, in proportion to its weight, adding up to the whole run.
func checkCategories(t *testing.T, res *Result) {
	t.Helper()
	mix, err := ParseMix(res.Mix)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var rate float64
	for _, c := range Categories {
		cr, ok := res.Categories[string(c)]
		if mix[c] == 0 {
			if ok {
				t.Errorf("category %s not in the mix has a result: %+v", c, cr)
			}
			continue
		}
		want := res.Requests * int64(mix[c]) / int64(mix.total())
		if cr.Requests < want-int64(len(mix)) || cr.Requests > want+int64(len(mix)) {
			t.Errorf("%s: %d requests, want about %d (weight %d of %d)", c, cr.Requests, want, mix[c], mix.total())
		}
		if cr.Throughput <= 0 || cr.Latency.P50 <= 0 || cr.Latency.P99 < cr.Latency.P50 {
			t.Errorf("%s: throughput %.0f, latency %+v", c, cr.Throughput, cr.Latency)
		}
		n += cr.Requests
		rate += cr.Throughput
	}
	if n != res.Requests {
		t.Errorf("categories add up to %d requests, want %d", n, res.Requests)
	}
	if rate < res.Throughput*0.999 || rate > res.Throughput*1.001 {
		t.Errorf("categories add up to %.1f req/s, want %.1f", rate, res.Throughput)
	}
}

// TestForgedTokens: every forged token is distinct, carries the signing
// key's kid and valid claims, and has a signature of the right length that
// is not the key's: only the signature check can reject it.
func TestForgedTokens(t *testing.T) {
	keys, err := OpenKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ts, err := NewTokenSet(keys, TokenOptions{Forged: 2000, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Forged) != 2000 {
		t.Fatalf("%d forged tokens, want 2000", len(ts.Forged))
	}
	seen := map[string]bool{}
	for i, tok := range ts.Forged {
		if seen[tok.Value] {
			t.Fatalf("forged token %d repeats an earlier one", i)
		}
		seen[tok.Value] = true
		if tok.Category != Forged || tok.Expect.Reason != authz.ReasonBadSignature {
			t.Fatalf("token %d: category %s, expect %v", i, tok.Category, tok.Expect)
		}
		parts := strings.Split(tok.Value, ".")
		if len(parts) != 3 {
			t.Fatalf("token %d has %d parts", i, len(parts))
		}
		var head map[string]string
		var body claims
		decode(t, parts[0], &head)
		decode(t, parts[1], &body)
		if head["kid"] != SigningKID || head["alg"] != Alg {
			t.Fatalf("token %d header %v, want the signing key's", i, head)
		}
		if body.Iss != Issuer || body.Aud != Audience || body.Exp <= now.Unix() || body.Iat > now.Unix() {
			t.Fatalf("token %d claims %+v are not valid ones", i, body)
		}
		if sig, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || len(sig) != 64 {
			t.Fatalf("token %d signature: %d bytes, %v; want 64 (ES256)", i, len(sig), err)
		}
	}
}

func decode(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestForgedFlood: half the traffic forged, every decision checked, and
// the valid half reported on its own.
func TestForgedFlood(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard, RevokeMix: true})
	alone := s.run(t, "repeated=1", nil)
	mixed := s.run(t, "repeated=50,forged=50", nil)
	for _, r := range []*Result{alone, mixed} {
		if err := r.Err(); err != nil {
			t.Fatalf("%s: %v %v", r.Label, err, r.WrongExamples)
		}
	}
	want := map[string]int64{"ok": 500, string(authz.ReasonBadSignature): 500}
	if !reflect.DeepEqual(mixed.Outcomes, want) {
		t.Errorf("outcomes = %v, want %v", mixed.Outcomes, want)
	}
	if mixed.ForgedPreMinted < 500 || mixed.FreshExhausted {
		t.Errorf("forged pre-minted %d (exhausted %v), want at least 500", mixed.ForgedPreMinted, mixed.FreshExhausted)
	}
	cmp, err := CompareCategory(alone, mixed, Repeated)
	if err != nil {
		t.Fatal(err)
	}
	if cmp.ThroughputRatio <= 0 || cmp.Category != Repeated || !strings.Contains(cmp.String(), "repeated requests: throughput") {
		t.Errorf("comparison %+v: %s", cmp, cmp)
	}
	if _, err := CompareCategory(alone, mixed, Forged); err == nil {
		t.Error("CompareCategory with a category the baseline lacks: no error")
	}
}

func TestForgedPoolRunsOut(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard})
	res := s.run(t, "forged=1", func(c *RunConfig) {
		c.Requests, c.Duration, c.ForgedPool = 0, 10*time.Second, 150
	})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if !res.FreshExhausted || res.Requests != 150 || res.ForgedPreMinted != 150 {
		t.Errorf("exhausted %v, requests %d, pre-minted %d; want true, 150, 150", res.FreshExhausted, res.Requests, res.ForgedPreMinted)
	}
}

func TestInvalidTokensGetTheirReasons(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard, RevokeMix: true})
	res := s.run(t, "invalid=1", func(c *RunConfig) { c.Requests = 120 })
	want := map[string]int64{string(authz.ReasonBadSignature): 40, string(authz.ReasonExpired): 40, string(authz.ReasonMalformed): 40}
	if !reflect.DeepEqual(res.Outcomes, want) {
		t.Errorf("outcomes = %v, want %v", res.Outcomes, want)
	}
}

func TestWrongDecisionsAreDetected(t *testing.T) {
	base := startServer(t, ServerConfig{Mode: ModeBaseline})
	// jwtguard without the revoke mix: the "revoked" tokens are valid.
	unrevoked := startServer(t, ServerConfig{Mode: ModeJWTGuard})
	tests := []struct {
		name string
		srv  *server
		mix  string
	}{
		{"baseline allows revoked tokens", base, "revoked=1"},
		{"baseline allows invalid tokens", base, "invalid=1"},
		{"no revocations stored", unrevoked, "repeated=1,revoked=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.srv.run(t, tt.mix, func(c *RunConfig) { c.Requests = 200 })
			if !errors.Is(res.Err(), ErrWrongDecisions) {
				t.Fatalf("Err() = %v, want ErrWrongDecisions", res.Err())
			}
			if res.Wrong < 100 || len(res.WrongExamples) == 0 {
				t.Errorf("wrong = %d (examples %q), want at least 100 and examples", res.Wrong, res.WrongExamples)
			}
			if !strings.Contains(res.WrongExamples[0], "want revoked") && !strings.Contains(res.WrongExamples[0], "got ok") {
				t.Errorf("example %q does not say what was expected and got", res.WrongExamples[0])
			}
		})
	}
	t.Run("baseline without expectations", func(t *testing.T) {
		res := base.run(t, "repeated=8,revoked=1,invalid=1", func(c *RunConfig) { c.Expect = false })
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		if res.Outcomes["ok"] != res.Requests {
			t.Errorf("outcomes = %v, want all ok", res.Outcomes)
		}
	})
}

func TestFreshPoolRunsOut(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard})
	res := s.run(t, "fresh=1", func(c *RunConfig) {
		c.Requests, c.Duration, c.FreshPool = 0, 10*time.Second, 150
	})
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if !res.FreshExhausted || res.Requests != 150 || res.FreshPreMinted != 150 {
		t.Errorf("exhausted %v, requests %d, pre-minted %d; want true, 150, 150", res.FreshExhausted, res.Requests, res.FreshPreMinted)
	}
}

func TestWarmFreshFillsTheCache(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard, RevokeMix: true})
	const warm = 1500
	res := s.run(t, "repeated=1", func(c *RunConfig) { c.WarmFresh, c.Requests = warm, 300 })
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if res.WarmFresh != warm || res.Requests != 300 {
		t.Errorf("warm %d, requests %d; want %d, 300 (warm-up not measured)", res.WarmFresh, res.Requests, warm)
	}
	if got := metric(t, s, "jwtguard_cached_tokens"); got < warm {
		t.Errorf("server caches %v tokens, want at least %d", got, warm)
	}
}

func TestPreloadedRevocations(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard, RevokeMix: true, Revocations: 2500, FilterKeys: 20_000})
	joined := strings.Join(s.info.Notes, "\n")
	for _, want := range []string{"2500 random token revocations stored", "20000 random keys added to the node's filter snapshot only"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notes %q do not say %q", joined, want)
		}
	}
	res := s.run(t, "repeated=8,revoked=2", nil)
	if err := res.Err(); err != nil {
		t.Fatalf("%v: %v", err, res.WrongExamples)
	}
}

// metric reads one unlabeled value from the server's /metrics.
func metric(t *testing.T, s *server, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.info.HTTPAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("metric %s not served", name)
	return 0
}

func TestResultJSONRoundTrip(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard, RevokeMix: true})
	res := s.run(t, "repeated=9,revoked=1", nil)
	path := filepath.Join(t.TempDir(), "r.json")
	if err := res.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Started.Equal(res.Started) {
		t.Errorf("started %v, want %v", got.Started, res.Started)
	}
	got.Started = res.Started
	if !reflect.DeepEqual(got, res) {
		t.Errorf("round trip changed the result:\n got %+v\nwant %+v", got, res)
	}
	h, err := hdrhistogram.Decode([]byte(got.Histogram))
	if err != nil {
		t.Fatal(err)
	}
	if h.TotalCount() != res.Requests {
		t.Errorf("histogram counts %d, want %d", h.TotalCount(), res.Requests)
	}
	if p99 := float64(h.ValueAtQuantile(99)) / 1e3; p99 < res.Latency.P99*0.99 || p99 > res.Latency.P99*1.01 {
		t.Errorf("histogram p99 %.1fµs, summary says %.1fµs", p99, res.Latency.P99)
	}
}

func TestWriteSVG(t *testing.T) {
	results := []*Result{
		{Label: "baseline", Mix: "repeated=90,revoked=10", Throughput: 30000, Curve: []Point{{50, 100}, {99, 900}, {99.99, 3000}}, Latency: Latency{P99: 900}},
		{Label: `jwtguard <&">`, Mix: "repeated=90,revoked=10", Throughput: 28000, Curve: []Point{{50, 120}, {99, 1000}, {99.99, 4000}}, Latency: Latency{P99: 1000}},
	}
	var b strings.Builder
	if err := WriteSVG(&b, results); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(b.String()))
	var root string
	polylines, texts := 0, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, b.String())
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
				if el.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", el.Name.Space)
				}
			}
			if el.Name.Local == "polyline" {
				polylines++
			}
		case xml.CharData:
			texts += string(el)
		}
	}
	if root != "svg" || polylines != 2 {
		t.Errorf("root %q with %d polylines, want svg with 2", root, polylines)
	}
	for _, want := range []string{"baseline", `jwtguard <&">`, "p99.99", "latency (ms)"} {
		if !strings.Contains(texts, want) {
			t.Errorf("chart text lacks %q", want)
		}
	}
	if err := WriteSVG(io.Discard, nil); err == nil {
		t.Error("WriteSVG with no results: no error")
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in      string
		want    Mix
		wantErr bool
	}{
		{in: "repeated=90,fresh=0,revoked=10,invalid=0", want: Mix{Repeated: 90, Fresh: 0, Revoked: 10, Invalid: 0}},
		{in: "repeated=50,forged=50", want: Mix{Repeated: 50, Forged: 50}},
		{in: " fresh = 1 ", want: Mix{Fresh: 1}},
		{in: "repeated=90,unknown=10", wantErr: true},
		{in: "repeated=-1,fresh=2", wantErr: true},
		{in: "repeated=1,repeated=2", wantErr: true},
		{in: "repeated", wantErr: true},
		{in: "repeated=0", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMix(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadMix) {
					t.Errorf("err = %v, want ErrBadMix", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMix = %v, %v; want %v", got, err, tt.want)
			}
			if again, err := ParseMix(got.String()); err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("String() %q does not parse back: %v, %v", got.String(), again, err)
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		mix  Mix
		want string
	}{
		{Mix{Repeated: 90, Revoked: 10}, "repeated*9 revoked*1"},
		{Mix{Repeated: 2, Fresh: 1, Invalid: 1, Revoked: 0}, "repeated*2 fresh*1 invalid*1"},
		{Mix{Fresh: 5}, "fresh*1"},
		{Mix{Repeated: 50, Forged: 50}, "repeated*1 forged*1"},
	}
	for _, tt := range tests {
		t.Run(tt.mix.String(), func(t *testing.T) {
			s := tt.mix.schedule()
			counts := map[Category]int{}
			for _, c := range s {
				counts[c]++
			}
			var parts []string
			for _, c := range Categories {
				if counts[c] > 0 {
					parts = append(parts, fmt.Sprintf("%s*%d", c, counts[c]))
				}
			}
			if got := strings.Join(parts, " "); got != tt.want {
				t.Errorf("schedule %v counts %s, want %s", s, got, tt.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		name          string
		base, cand    Result
		want          string
		wantNoCPUText bool
	}{
		{
			name: "without CPU",
			base: Result{Label: "baseline", Throughput: 40000, Latency: Latency{P99: 1000}},
			cand: Result{Label: "jwtguard", Throughput: 36000, Latency: Latency{P99: 1100}},
			want: "jwtguard vs baseline: throughput 0.900x, p99 1.100x", wantNoCPUText: true,
		},
		{
			name: "with CPU",
			base: Result{Label: "b", Throughput: 10000, Latency: Latency{P99: 500}, ServerCPUPerRequest: 40},
			cand: Result{Label: "j", Throughput: 5000, Latency: Latency{P99: 1000}, ServerCPUPerRequest: 50},
			want: "j vs b: throughput 0.500x, p99 2.000x, server CPU per request 1.250x",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(&tt.base, &tt.cand).String()
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("Compare = %q, want %q", got, tt.want)
			}
			if tt.wantNoCPUText && strings.Contains(got, "CPU") {
				t.Errorf("Compare = %q mentions CPU it did not measure", got)
			}
		})
	}
}

func TestServerCPU(t *testing.T) {
	s := startServer(t, ServerConfig{Mode: ModeJWTGuard})
	// The server runs in this process, so its pid is ours.
	res := s.run(t, "fresh=1", func(c *RunConfig) { c.Requests, c.ServerPID = 300, os.Getpid() })
	if res.ServerCPUSeconds <= 0 || res.ServerCPUPerRequest <= 0 || res.ClientCPUSeconds <= 0 {
		t.Errorf("CPU: server %vs (%vµs/request), client %vs; want all positive",
			res.ServerCPUSeconds, res.ServerCPUPerRequest, res.ClientCPUSeconds)
	}
	if _, err := processCPU(-1); err == nil {
		t.Error("processCPU(-1): no error")
	}
}

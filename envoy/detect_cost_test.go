package envoy_test

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/detect"
)

// allDetectors is an engine with every detector on, observing, its worker
// running until the test ends when run is set.
func allDetectors(t testing.TB, run bool) *detect.Engine {
	t.Helper()
	cfg := detect.DefaultConfig()
	cfg.Detectors = map[detect.Name]detect.DetectorConfig{}
	for _, n := range detect.Names {
		cfg.Detectors[n] = detect.DefaultDetector(n)
	}
	eng, err := detect.New(cfg, detect.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if !run {
		return eng
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return eng
}

// fromAddr is req from source address addr.
func fromAddr(req *authv3.CheckRequest, addr string) *authv3.CheckRequest {
	req.Attributes.Source = &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: addr},
	}}}
	return req
}

// TestCheckAllocsWithDetectors: every detector on, as observer and
// blocker, adds no allocation to a cached Check, allowed or revoked. The
// worker does not run: what it allocates off the hot path (a new
// candidate, a log line when a detector fires) would be counted too; the
// hand-off fills the queue, then drops.
func TestCheckAllocsWithDetectors(t *testing.T) {
	e := newEnv(t)
	e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issA, Value: "revoked-1"})
	eng := allDetectors(t, false)
	a := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)), envoy.WithObserver(eng), envoy.WithBlocker(eng))
	for _, tt := range []struct {
		jti  string
		want authz.Reason
		max  float64
	}{{"ok-1", authz.ReasonOK, 6}, {"revoked-1", authz.ReasonRevoked, 3}} {
		req := fromAddr(bearerRequest(e.token(t, func(c map[string]any) { c["jti"] = tt.jti })), "192.0.2.1")
		if resp, err := a.Check(context.Background(), req); err != nil || outcomeOf(t, resp).allowed != (tt.want == authz.ReasonOK) {
			t.Fatalf("%s: %v %+v", tt.jti, err, resp)
		}
		if got := testing.AllocsPerRun(200, func() { _, _ = a.Check(context.Background(), req) }); got > tt.max {
			t.Errorf("%s: %.0f allocs per Check with every detector on, want at most %.0f", tt.jti, got, tt.max)
		}
	}
	if eng.BlockedAddr(netip.MustParseAddr("192.0.2.1"), time.Now()) {
		t.Fatal("blocked")
	}
}

// BenchmarkCheckDetectorsCost compares a cached, allowed gRPC Check
// (without the transport) with every detector on against none, in one
// run: slices of each alternate, so that a busy machine slows both alike.
// Reported: the median ratio of on to off over the slice pairs, and each
// side's median ns per Check.
func BenchmarkCheckDetectorsCost(b *testing.B) {
	e := newEnv(b)
	eng := allDetectors(b, true)
	off := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)))
	on := envoy.NewAuthorization(e.checker, envoy.WithLogger(slog.New(slog.DiscardHandler)), envoy.WithObserver(eng), envoy.WithBlocker(eng))
	req := fromAddr(bearerRequest(e.token(b, nil)), "192.0.2.1")
	_, _ = off.Check(context.Background(), req) // verified and cached
	slice := func(a *envoy.Authorization, n int) float64 {
		start := time.Now()
		for range n {
			_, _ = a.Check(context.Background(), req)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	const perSlice = 2000
	var ratios, onNs, offNs []float64
	b.ResetTimer()
	for i := 0; i < b.N; i += 2 * perSlice {
		var x, y float64
		if i%(4*perSlice) == 0 { // alternate which goes first
			x, y = slice(off, perSlice), slice(on, perSlice)
		} else {
			y, x = slice(on, perSlice), slice(off, perSlice)
		}
		ratios, onNs, offNs = append(ratios, y/x), append(onNs, y), append(offNs, x)
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	b.ReportMetric(med(ratios), "on/off")
	b.ReportMetric(med(onNs), "ns/check-on")
	b.ReportMetric(med(offNs), "ns/check-off")
}

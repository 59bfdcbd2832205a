package envoy_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/envoy/decisionlog"
)

// TestDecisionLogAddsNoAllocation: with the decision log on at its
// defaults, a Check of a cached, allowed token allocates what it does
// without it.
func TestDecisionLogAddsNoAllocation(t *testing.T) {
	e := newEnv(t)
	dl, err := decisionlog.New(io.Discard, decisionlog.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close(context.Background())
	quiet := slog.New(slog.DiscardHandler)
	off := envoy.NewAuthorization(e.checker, envoy.WithLogger(quiet))
	on := envoy.NewAuthorization(e.checker, envoy.WithLogger(quiet), envoy.WithObserver(dl))
	req := bearerRequest(e.token(t, nil))
	_, _ = off.Check(context.Background(), req) // verified and cached
	without := testing.AllocsPerRun(200, func() { _, _ = off.Check(context.Background(), req) })
	with := testing.AllocsPerRun(200, func() { _, _ = on.Check(context.Background(), req) })
	if with > without {
		t.Errorf("%v allocs per Check with the decision log, %v without", with, without)
	}
}

// BenchmarkCheckDecisionLog is a gRPC Check of a cached token (without the
// transport) with no decision log, with the decision log at its defaults
// (the allow sampled out), and logging every allow (written to io.Discard
// by the writer goroutine; what it cannot keep up with is dropped and
// reported as dropped/op).
func BenchmarkCheckDecisionLog(b *testing.B) {
	e := newEnv(b)
	req := bearerRequest(e.token(b, nil))
	quiet := slog.New(slog.DiscardHandler)
	for _, bc := range []struct {
		name   string
		sample float64
		on     bool
	}{{"off", 0, false}, {"defaults", 0, true}, {"every_allow", 1, true}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := []envoy.AuthorizationOption{envoy.WithLogger(quiet)}
			var dl *decisionlog.Log
			if bc.on {
				cfg := decisionlog.DefaultConfig()
				cfg.AllowSample = bc.sample
				var err error
				if dl, err = decisionlog.New(io.Discard, cfg); err != nil {
					b.Fatal(err)
				}
				opts = append(opts, envoy.WithObserver(dl))
			}
			a := envoy.NewAuthorization(e.checker, opts...)
			_, _ = a.Check(context.Background(), req)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = a.Check(context.Background(), req)
				}
			})
			b.StopTimer()
			if dl != nil {
				_ = dl.Close(context.Background())
				b.ReportMetric(float64(dl.Stats().QueueFull)/float64(b.N), "dropped/op")
			}
		})
	}
}

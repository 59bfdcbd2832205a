package decisionlog_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jwtguard/jwtguard/envoy/decisionlog"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestObserveAllocatesNothing pins the hot path side at zero allocations:
// an allow sampled out, a deny rate limited, an event queued, an event
// dropped on a full queue. The writer is held so that its own work (off
// the hot path) is not counted.
func TestObserveAllocatesNothing(t *testing.T) {
	g := newGate()
	defer g.release()
	cfg := decisionlog.DefaultConfig()
	cfg.AllowSample, cfg.DenyRate, cfg.QueueSize = 0.5, 0, 4096
	l, err := decisionlog.New(g, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { g.release(); _ = l.Close(context.Background()) }()
	allow, deny := allowEvent(), denyEvent()
	l.Observe(deny)
	<-g.entered
	// 2 x 1001 events queue at most 4096 - 1: the last runs find it full.
	if n := testing.AllocsPerRun(1000, func() { l.Observe(allow); l.Observe(deny) }); n != 0 {
		t.Errorf("Observe: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(3000, func() { l.Observe(deny) }); n != 0 {
		t.Errorf("Observe on a full queue: %v allocations, want 0", n)
	}
	if l.Stats().QueueFull == 0 {
		t.Error("the queue never filled")
	}
}

// BenchmarkObserve is the hot path's cost per decision for each way an
// event goes: queued (the writer encoding off the hot path, on
// io.Discard), sampled out, rate limited.
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name  string
		set   func(*decisionlog.Config)
		allow bool
	}{
		{"allow_queued", func(c *decisionlog.Config) { c.AllowSample = 1 }, true},
		{"allow_sampled_out", func(c *decisionlog.Config) { c.AllowSample = 0.01 }, true},
		{"deny_queued", func(c *decisionlog.Config) { c.DenyRate = 0 }, false},
		{"deny_rate_limited", func(c *decisionlog.Config) { c.DenyRate = 1 }, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := decisionlog.DefaultConfig()
			bc.set(&cfg)
			l, err := decisionlog.New(io.Discard, cfg)
			if err != nil {
				b.Fatal(err)
			}
			e := denyEvent()
			if bc.allow {
				e = allowEvent()
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.Observe(e)
				}
			})
			b.StopTimer()
			_ = l.Close(context.Background())
			st := l.Stats()
			b.ReportMetric(float64(st.QueueFull)/float64(b.N), "queue_full/op")
		})
	}
}

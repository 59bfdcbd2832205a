package decisionlog_test

import (
	"context"
	"io"
	"log/slog"
	"runtime"
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
// event goes: an allow sampled out, a deny rate limited, and a deny queued
// and written (the writer encoding to io.Discard on its own goroutine; the
// queue is let drain, timer stopped, every half queue so that nothing is
// dropped). The first two allocate nothing; the written case's B/op and
// allocs/op are the writer's, off the hot path (TestObserveAllocatesNothing
// pins Observe itself at zero).
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name  string
		set   func(*decisionlog.Config)
		allow bool
	}{
		{"allow_sampled_out", func(c *decisionlog.Config) { c.AllowSample = 0 }, true},
		{"deny_rate_limited", func(c *decisionlog.Config) { c.DenyRate = 1 }, false},
		{"deny_written", func(c *decisionlog.Config) { c.DenyRate = 0 }, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := decisionlog.DefaultConfig()
			bc.set(&cfg)
			l, err := decisionlog.New(io.Discard, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = l.Close(context.Background()) }()
			e := denyEvent()
			if bc.allow {
				e = allowEvent()
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				l.Observe(e)
				if bc.name == "deny_written" && i%(cfg.QueueSize/2) == 0 {
					b.StopTimer()
					for want := uint64(i + 1); l.Stats().DeniesLogged < want; {
						runtime.Gosched()
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			if st := l.Stats(); st.QueueFull > 0 {
				b.Errorf("%d dropped on a full queue", st.QueueFull)
			}
		})
	}
}

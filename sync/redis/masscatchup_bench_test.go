package redis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// BenchmarkMassCatchUp: what nodes that fell behind a mass revocation
// cost Redis to catch up, reading the feed or loading the published
// snapshot (FollowerConfig.ReloadLag). N followers start, stop while mass
// token records are written (in Puts of MaxBatch) and published (as the
// lease holder does once the snapshot is Behind), then catch up at once.
// Reported: seconds until every follower enforces the last record, and
// the bytes Redis sent and its CPU per follower. In a large mesh nodes
// fall behind this way on their own: 1,000 nodes reading the feed of
// 17k records a second would need 5 GB/s from one Redis.
//
//	JWTGUARD_MASS_FOLLOWERS  followers (default 2)
//	JWTGUARD_MASS_RECORDS    records written (default 5,000)
//
// The "snapshot" case sets ReloadLag to a tenth of the records, so that the
// small default run takes that path too; the default (50,000) applies to a
// mass revocation of a million.
func BenchmarkMassCatchUp(b *testing.B) {
	followers := envInt(b, "JWTGUARD_MASS_FOLLOWERS", 2)
	mass := envInt(b, "JWTGUARD_MASS_RECORDS", 5_000)
	for _, tc := range []struct {
		name string
		lag  uint64
	}{
		{"feed", math.MaxUint64},
		{"snapshot", uint64(mass / 10)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				massCatchUp(b, followers, mass, tc.lag)
			}
		})
	}
}

func massCatchUp(b *testing.B, followers, mass int, lag uint64) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := startRedis(b, false)
	writer := nodes.open(b, ctx)
	put(b, writer, token("https://idp", "warm", time.Hour))
	cfg := bloom.Config{Entries: uint(max(100_000, 2*mass)), FPRate: 0.001, DeltaEntries: uint(max(10_000, mass+16))}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fols := make([]*source.Follower, followers)
	for f := range fols {
		filter, err := bloom.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		src := nodes.open(b, ctx)
		rev, err := authz.NewRevocations(filter, src, authz.DefaultRevocationConfig())
		if err != nil {
			b.Fatal(err)
		}
		fcfg := source.DefaultFollowerConfig()
		fcfg.Bloom, fcfg.ReloadLag = cfg, lag
		fols[f] = source.NewFollower(src, rev, fcfg, quiet)
		if err := fols[f].Start(ctx); err != nil {
			b.Fatal(err)
		}
	}
	var top uint64
	recs := make([]authz.Record, 0, MaxBatch)
	for i := 0; i < mass; i += MaxBatch {
		recs = recs[:0]
		for j := i; j < min(i+MaxBatch, mass); j++ {
			recs = append(recs, token("https://idp", fmt.Sprintf("mass-%016x", uint64(j)*0x9E3779B97F4A7C15), time.Hour))
		}
		stored, err := writer.Put(ctx, recs)
		if err != nil {
			b.Fatal(err)
		}
		top = stored[len(stored)-1].Position
	}
	if err := writer.Publish(ctx, cfg); err != nil {
		b.Fatal(err)
	}

	w := openWindow(b, nodes)
	start := time.Now()
	var wg sync.WaitGroup
	for _, f := range fols {
		wg.Go(func() { f.Run(ctx) })
	}
	defer func() { cancel(); wg.Wait() }()
	waitFor(b, 10*time.Minute, "every follower catches up", func() bool {
		for _, f := range fols {
			if f.Position() < top {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	out := nodes.info(b, "stats", "total_net_output_bytes") - w.netOut
	_, rcpu, _, _, _, _ := w.close(b, nodes, fmt.Sprintf("%d followers catch up %d records", followers, mass))
	var skips uint64
	for _, f := range fols {
		skips += f.Skips()
	}
	b.ReportMetric(took.Seconds(), "catch-up-s")
	b.ReportMetric(out/float64(followers), "redis-bytes/follower")
	b.ReportMetric(rcpu/float64(followers)*1e3, "redis-cpu-ms/follower")
	b.ReportMetric(float64(skips)/float64(followers), "snapshot-loads/follower")
}

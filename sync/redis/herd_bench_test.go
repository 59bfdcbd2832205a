package redis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// BenchmarkSnapshotHerd starts JWTGUARD_HERD_NODES nodes (default 3) at
// once from a published snapshot of JWTGUARD_HERD_RECORDS keys (default
// 100,000; 10,000,000 makes the 17 MiB snapshot of bench/SCALE.md), each
// with its own connection: read whole (one GET per node, as before),
// read in pieces of snapshotChunk, and restarted from each node's own
// snapshot on disk (the source only catches the feed up). Reported: the
// slowest node's start, Redis's peak client output memory and the bytes it
// sent, the nodes that failed to start, and the p99 acknowledgement of
// revocations written every 20 ms meanwhile.
func BenchmarkSnapshotHerd(b *testing.B) {
	nodes := envInt(b, "JWTGUARD_HERD_NODES", 3)
	records := envInt(b, "JWTGUARD_HERD_RECORDS", 100_000)
	srv := startRedis(b, false)
	ctx := context.Background()
	s := srv.open(b, ctx)
	cfg := bloom.Config{Entries: uint(records), FPRate: 0.001, DeltaEntries: 65_536}
	size := publishRandomSnapshot(b, ctx, s, cfg, records)
	b.Logf("snapshot of %d keys: %.1f MiB; %d nodes", records, float64(size)/(1<<20), nodes)
	dirs := make([]string, nodes)
	for i := range dirs {
		dirs[i] = filepath.Join(b.TempDir(), "node")
	}
	for _, mode := range []string{"whole", "pieces", "local"} {
		b.Run(mode, func(b *testing.B) {
			defer func(n int64) { snapshotChunk = n }(snapshotChunk)
			if mode == "whole" {
				snapshotChunk = 1 << 40
			}
			for b.Loop() {
				herdRun(b, srv, cfg, dirs, mode == "local")
			}
		})
	}
}

// herdRun starts len(dirs) nodes at once and reports what it cost.
func herdRun(b *testing.B, srv redisNodes, cfg bloom.Config, dirs []string, local bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcs := make([]*Source, len(dirs))
	for i := range srcs {
		srcs[i] = srv.open(b, ctx)
		if err := srcs[i].Ping(ctx); err != nil { // connected before the clock starts
			b.Fatal(err)
		}
	}
	writer := srv.open(b, ctx)
	// Watch Redis's client output memory and time revocations meanwhile.
	var peak float64
	var acks []time.Duration
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			peak = max(peak, srv.info(b, "memory", "mem_clients_normal"))
			start := time.Now()
			if _, err := writer.Put(ctx, []authz.Record{token("https://idp", fmt.Sprint("herd-", rand.Uint64()), time.Hour)}); err == nil {
				acks = append(acks, time.Since(start))
			}
		}
	}()
	sent := srv.info(b, "stats", "total_net_output_bytes")
	w := openWindow(b, srv)
	var wg sync.WaitGroup
	took := make([]time.Duration, len(dirs))
	errs := make([]error, len(dirs))
	start := time.Now()
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			filter, err := bloom.New(cfg)
			if err != nil {
				errs[i] = err
				return
			}
			rev, err := authz.NewRevocations(filter, srcs[i], authz.DefaultRevocationConfig())
			if err != nil {
				errs[i] = err
				return
			}
			fcfg := source.DefaultFollowerConfig()
			fcfg.Bloom = cfg
			if local {
				fcfg.DataDir = dirs[i]
			}
			fol := source.NewFollower(srcs[i], rev, fcfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			errs[i] = fol.Start(ctx)
			took[i] = time.Since(start)
			if errs[i] == nil && !local { // for the local run
				if errs[i] = os.MkdirAll(dirs[i], 0o700); errs[i] == nil {
					errs[i] = rev.Filter().SaveFile(filepath.Join(dirs[i], source.SnapshotFile))
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	watch.Wait()
	secs, rcpu, _, _, _, _ := w.close(b, srv, "herd")
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			b.Logf("a node did not start: %v", err)
		}
	}
	b.ReportMetric(slices.Max(took).Seconds(), "slowest-start-s")
	b.ReportMetric(percentile(took, 0.5).Seconds(), "p50-start-s")
	b.ReportMetric(float64(failed), "failed-nodes")
	b.ReportMetric(peak/(1<<20), "redis-client-buffers-peak-MiB")
	b.ReportMetric((srv.info(b, "stats", "total_net_output_bytes")-sent)/(1<<20), "redis-sent-MiB")
	b.ReportMetric(100*rcpu/secs, "redis-cpu-%")
	if len(acks) > 0 {
		b.ReportMetric(float64(percentile(acks, 0.99).Microseconds())/1000, "put-ack-p99-ms")
	}
}

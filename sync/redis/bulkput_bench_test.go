package redis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// BenchmarkBulkPut: what a mass revocation costs Redis to write and each
// follower to read, with this version's Put (batch feed entries) and the
// one before it (legacy: eight commands and one feed entry a record), on a
// fresh redis-server each, in the same run. The records are prepared
// before the clock starts (what revoke --from-file's process spends is not
// Redis's); then they are stored in Puts of a batch, and one reader reads
// the whole feed through Feed, as a follower does.
//
//	JWTGUARD_BULK_PUT_RECORDS  token records written (default 20,000)
//	JWTGUARD_BULK_PUT_BATCH    records per Put (default MaxBatch, as
//	                           revoke --from-file)
//
// Reported: Redis CPU and commands a record (INFO cpu, total_commands_processed),
// records written a second (wall time), bytes Redis sent the reader a
// record (total_net_output_bytes), Redis memory a record.
func BenchmarkBulkPut(b *testing.B) {
	n := envInt(b, "JWTGUARD_BULK_PUT_RECORDS", 20_000)
	size := envInt(b, "JWTGUARD_BULK_PUT_BATCH", MaxBatch)
	if n < 1 || size < 1 || size > MaxBatch {
		b.Fatalf("JWTGUARD_BULK_PUT_RECORDS must be at least 1 and JWTGUARD_BULK_PUT_BATCH 1 to %d", MaxBatch)
	}
	for _, tc := range []struct {
		name   string
		legacy bool
	}{{"batch", false}, {"legacy", true}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				bulkPut(b, n, size, tc.legacy)
			}
		})
	}
}

func bulkPut(b *testing.B, n, size int, legacy bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := startRedis(b, false)
	writer := nodes.open(b, ctx)
	var batches []batch
	for i := 0; i < n; i += size {
		recs := make([]authz.Record, 0, size)
		for j := i; j < min(i+size, n); j++ {
			// A jti as long as a UUID's.
			recs = append(recs, token("https://idp", fmt.Sprintf("bulk-%031x", uint64(j)*0x9E3779B97F4A7C15), time.Hour))
		}
		bt, err := writer.prepare(recs)
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, bt)
	}
	mem0 := nodes.info(b, "memory", "used_memory")
	cmd0 := nodes.info(b, "stats", "total_commands_processed")
	cpu0, sys0 := nodes.redisCPU(b), nodes.info(b, "cpu", "used_cpu_sys")
	start := time.Now()
	for _, bt := range batches {
		if legacy {
			legacyStore(b, writer, bt)
		} else if _, err := writer.store(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	wall := time.Since(start)
	cpu, sys := nodes.redisCPU(b)-cpu0, nodes.info(b, "cpu", "used_cpu_sys")-sys0
	cmds := nodes.info(b, "stats", "total_commands_processed") - cmd0 - 4 // the INFOs
	mem := nodes.info(b, "memory", "used_memory") - mem0

	reader := nodes.open(b, ctx)
	out0 := nodes.info(b, "stats", "total_net_output_bytes")
	rcpu0 := nodes.redisCPU(b)
	var after uint64
	reads := 0
	for after < uint64(n) {
		recs, err := reader.Feed(ctx, after, DefaultFeedLimit)
		if err != nil {
			b.Fatal(err)
		}
		after = recs[len(recs)-1].Position
		reads++
	}
	rcpu := nodes.redisCPU(b) - rcpu0
	out := nodes.info(b, "stats", "total_net_output_bytes") - out0
	b.Logf("%d records in Puts of %d (legacy %v): %v, Redis CPU %.2fs (%.2fs of it system), %0.f commands; read in %d Feed calls, %.1f MiB",
		n, size, legacy, wall.Round(time.Millisecond), cpu, sys, cmds, reads, out/(1<<20))
	b.ReportMetric(1e6*cpu/float64(n), "redis-µs/record")
	b.ReportMetric(cmds/float64(n), "redis-cmds/record")
	b.ReportMetric(float64(n)/wall.Seconds(), "records/s")
	b.ReportMetric(mem/float64(n), "redis-bytes/record")
	b.ReportMetric(out/float64(n), "read-bytes/record")
	b.ReportMetric(1e6*rcpu/float64(n), "read-redis-µs/record")
}

// BenchmarkPublishMass: what one publish costs Redis after a mass
// revocation, built from every live record (a scan: ZSCAN of the live sets
// and MGET of the records) or sent from a node's own filter, kept current
// from the feed (PublisherConfig.Filter), in the same run.
//
//	JWTGUARD_PUBLISH_RECORDS  live token records (default 20,000)
//
// Reported per case: Redis CPU (INFO cpu) and wall time of one publish.
func BenchmarkPublishMass(b *testing.B) {
	n := envInt(b, "JWTGUARD_PUBLISH_RECORDS", 20_000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes := startRedis(b, false)
	writer := nodes.open(b, ctx)
	for i := 0; i < n; i += MaxBatch {
		recs := make([]authz.Record, 0, MaxBatch)
		for j := i; j < min(i+MaxBatch, n); j++ {
			recs = append(recs, token("https://idp", fmt.Sprintf("bulk-%031x", uint64(j)*0x9E3779B97F4A7C15), time.Hour))
		}
		if _, err := writer.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	cfg := bloom.Config{Entries: uint(max(100_000, 2*n)), FPRate: 0.001, DeltaEntries: uint(max(10_000, n+16))}
	// The publisher's node, caught up from the feed.
	filter, err := bloom.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	node := nodes.open(b, ctx)
	rev, err := authz.NewRevocations(filter, node, authz.DefaultRevocationConfig())
	if err != nil {
		b.Fatal(err)
	}
	fcfg := source.DefaultFollowerConfig()
	fcfg.Bloom = cfg
	if err := source.NewFollower(node, rev, fcfg, slog.New(slog.NewTextHandler(io.Discard, nil))).Start(ctx); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		own  bool
	}{{"scan", false}, {"own-filter", true}} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := NewPublisher(writer, PublisherConfig{Bloom: cfg, Filter: rev.Filter})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := nodes.clients[0].Del(ctx, writer.k.snapshot(), writer.k.snapshotPos()).Err(); err != nil {
					b.Fatal(err)
				}
				cpu0 := nodes.redisCPU(b)
				start := time.Now()
				if tc.own {
					_, err = p.publishOwnIfBehind(ctx, 1, false, true)
				} else {
					err = writer.Publish(ctx, cfg)
				}
				if err != nil {
					b.Fatal(err)
				}
				wall := time.Since(start)
				cpu := nodes.redisCPU(b) - cpu0
				if pos, ok, err := writer.SnapshotPosition(ctx); err != nil || !ok || pos != uint64(n) {
					b.Fatalf("published at %d (%v, %v), want %d", pos, ok, err, n)
				}
				b.ReportMetric(1e3*cpu, "redis-cpu-ms/publish")
				b.ReportMetric(wall.Seconds(), "wall-s/publish")
			}
		})
	}
}

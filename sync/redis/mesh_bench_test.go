package redis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
)

// meshNode is one follower of a mesh benchmark: its own connection to
// Redis, its own revocation state.
type meshNode struct {
	src *Source
	rev *authz.Revocations
	fol *source.Follower
}

func startMeshNode(b *testing.B, ctx context.Context, url string, cfg bloom.Config) *meshNode {
	b.Helper()
	src, err := Open(ctx, url, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { src.Close() })
	f, err := bloom.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, src, authz.DefaultRevocationConfig())
	if err != nil {
		b.Fatal(err)
	}
	fcfg := source.DefaultFollowerConfig()
	fcfg.Bloom = cfg
	return &meshNode{src: src, rev: rev, fol: source.NewFollower(src, rev, fcfg, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkPropagation10Followers measures, for each revocation written to
// Redis, the time until each of 10 following nodes enforces it (its filter
// holds the key). Reported: p50 and p99 over every node and revocation.
func BenchmarkPropagation10Followers(b *testing.B) {
	const followers = 10
	srv := redistest.Start(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	writer := openSource(b, srv.URL(), Options{})
	cfg := bloom.Config{Entries: 100_000, FPRate: 0.001, DeltaEntries: 10_000}
	nodes := make([]*meshNode, followers)
	var wg sync.WaitGroup
	for i := range nodes {
		nodes[i] = startMeshNode(b, ctx, srv.URL(), cfg)
		if err := nodes[i].fol.Start(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); nodes[i].fol.Run(ctx) }()
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := token("https://idp", fmt.Sprintf("prop-%d-%d", i, rand.Uint64()), time.Hour)
		key := rec.LookupKey().FilterKey()
		start := time.Now()
		if _, err := writer.Put(ctx, []authz.Record{rec}); err != nil {
			b.Fatal(err)
		}
		pending := slices.Clone(nodes)
		for deadline := start.Add(10 * time.Second); len(pending) > 0; {
			pending = slices.DeleteFunc(pending, func(n *meshNode) bool {
				if n.rev.Filter().MayContain(key) {
					lat = append(lat, time.Since(start))
					return true
				}
				return false
			})
			if time.Now().After(deadline) {
				b.Fatalf("%d followers did not enforce revocation %d within 10s", len(pending), i)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(slices.Max(lat).Microseconds())/1000, "max-ms")
	cancel()
	wg.Wait()
}

// BenchmarkStartFromSnapshot measures a node's start-up from a published
// snapshot of n revocations until it is ready: fetch, decode, catch up.
// The snapshot is a filter holding n random keys, published as Publish
// does; the records themselves are not stored (10M records would need
// gigabytes of Redis memory here, and a starting node never reads them).
func BenchmarkStartFromSnapshot(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			if n > 1_000_000 && testing.Short() {
				b.Skip("10M in -short mode")
			}
			srv := redistest.Start(b)
			ctx := context.Background()
			s := openSource(b, srv.URL(), Options{})
			cfg := bloom.Config{Entries: uint(n), FPRate: 0.001, DeltaEntries: 65_536}
			size := publishRandomSnapshot(b, ctx, s, cfg, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				node := startMeshNode(b, ctx, srv.URL(), cfg)
				if err := node.fol.Start(ctx); err != nil {
					b.Fatal(err)
				}
				if !node.rev.Ready() || node.fol.Position() != snapshotBenchPos {
					b.Fatalf("not ready at position %d after start", node.fol.Position())
				}
			}
			b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
		})
	}
}

// snapshotBenchPos is the feed position of publishRandomSnapshot's snapshot.
const snapshotBenchPos = 42

// publishRandomSnapshot publishes in s a snapshot of n random keys sized by
// cfg, at snapshotBenchPos, and returns its size in bytes.
func publishRandomSnapshot(b *testing.B, ctx context.Context, s *Source, cfg bloom.Config, n int) int {
	b.Helper()
	f, err := bloom.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const pos = snapshotBenchPos
	if err := f.Rebuild(cfg, pos, func(add func(bloom.Key)) error {
		for range n {
			add(bloom.Key{H1: rand.Uint64(), H2: rand.Uint64()})
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		b.Fatal(err)
	}
	if err := s.rdb.MSet(ctx, s.k.snapshot(), buf.Bytes(), s.k.snapshotPos(), pos, s.k.seq(), pos).Err(); err != nil {
		b.Fatal(err)
	}
	return buf.Len()
}

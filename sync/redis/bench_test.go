package redis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
)

// fill puts n token records (jti "jti-0" ...) into s, 1000 per Put.
func fill(b *testing.B, s *Source, n int) {
	b.Helper()
	const batch = 1000
	recs := make([]authz.Record, 0, batch)
	for i := 0; i < n; i += batch {
		recs = recs[:0]
		for j := i; j < min(i+batch, n); j++ {
			recs = append(recs, token("https://idp", fmt.Sprint("jti-", j), time.Hour))
		}
		put(b, s, recs...)
	}
}

// BenchmarkLookup is the confirm path after a filter "maybe": one hit, two
// round trips on loopback.
func BenchmarkLookup(b *testing.B) {
	s, _ := newSource(b, Options{})
	const n = 10_000
	fill(b, s, n)
	ctx := context.Background()
	keys := make([]authz.LookupKey, 1024)
	for i := range keys {
		keys[i] = authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: fmt.Sprint("jti-", i*97%n)}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		recs, err := s.Lookup(ctx, keys[i%len(keys)])
		if err != nil || len(recs) != 1 {
			b.Fatalf("Lookup = %d records, %v", len(recs), err)
		}
		i++
	}
}

// BenchmarkLookupMiss is a false positive of the filter: one round trip.
func BenchmarkLookupMiss(b *testing.B) {
	s, _ := newSource(b, Options{})
	fill(b, s, 1000)
	ctx := context.Background()
	key := authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: "absent"}
	b.ReportAllocs()
	for b.Loop() {
		if recs, err := s.Lookup(ctx, key); err != nil || len(recs) != 0 {
			b.Fatalf("Lookup = %v, %v", recs, err)
		}
	}
}

// BenchmarkPut stores one record per Put: ns/op is the acknowledgement
// latency of Redis without persistence.
func BenchmarkPut(b *testing.B) {
	s, _ := newSource(b, Options{})
	ctx := context.Background()
	recs := []authz.Record{token("https://idp", "jti", time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutPersistent is BenchmarkPut with appendfsync always: every
// acknowledged record is on disk.
func BenchmarkPutPersistent(b *testing.B) {
	s, _ := newSource(b, Options{}, redistest.Persistent())
	ctx := context.Background()
	recs := []authz.Record{token("https://idp", "jti", time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// publishRecords is the size of BenchmarkPublish (smaller under -race,
// where only that the benchmark still works matters).
func publishRecords() int {
	if raceEnabled || testing.Short() {
		return 10_000
	}
	return 100_000
}

// BenchmarkPublish builds and publishes a filter of every live record.
func BenchmarkPublish(b *testing.B) {
	n := publishRecords()
	b.Run(fmt.Sprint("records=", n), func(b *testing.B) {
		s, _ := newSource(b, Options{})
		fill(b, s, n)
		cfg := bloom.DefaultConfig()
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Publish(ctx, cfg); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if pos, ok, err := s.publishedPosition(ctx); err != nil || !ok || pos != uint64(n) {
			b.Fatalf("published position = %d, %v, %v; want %d", pos, ok, err, n)
		}
	})
}

// BenchmarkSnapshot loads the published snapshot, as a starting node does.
func BenchmarkSnapshot(b *testing.B) {
	s, _ := newSource(b, Options{})
	fill(b, s, 1000)
	cfg := bloom.DefaultConfig()
	ctx := context.Background()
	if err := s.Publish(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := s.Snapshot(ctx, cfg)
		if err != nil || f.Position() != 1000 {
			b.Fatalf("Snapshot = %v, %v", f, err)
		}
	}
}

// commandCalls returns the calls of each command Redis has served (INFO
// commandstats), without INFO itself.
func commandCalls(b *testing.B, c *goredis.Client) map[string]int {
	b.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]int{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") || name == "cmdstat_info" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			b.Fatalf("commandstats line %q: %v", line, err)
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// diffCalls returns after minus before, and the total.
func diffCalls(before, after map[string]int) (map[string]int, int) {
	d, total := map[string]int{}, 0
	for k, v := range after {
		if n := v - before[k]; n > 0 {
			d[k] = n
			total += n
		}
	}
	return d, total
}

// idleSlice is how long one operation of BenchmarkCommandsPerFollower/idle
// watches the follower: with -benchtime 200x, ten seconds, two of the
// follower's five-second blocking reads.
const idleSlice = 50 * time.Millisecond

// BenchmarkCommandsPerFollower reports, from INFO commandstats, the Redis
// commands that one idle, caught-up follower costs per second (a real
// source.Follower in its Run loop, watched for b.N slices of idleSlice),
// and the commands of one Lookup, hit and miss (b.N lookups each).
func BenchmarkCommandsPerFollower(b *testing.B) {
	s, srv := newSource(b, Options{})
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	recs := put(b, s, token("https://idp", "x", time.Hour))

	b.Run("idle", func(b *testing.B) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		filter, err := bloom.New(smallBloom)
		if err != nil {
			b.Fatal(err)
		}
		rev, err := authz.NewRevocations(filter, s, authz.DefaultRevocationConfig())
		if err != nil {
			b.Fatal(err)
		}
		fcfg := source.DefaultFollowerConfig()
		fcfg.Bloom = smallBloom
		f := source.NewFollower(s, rev, fcfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := f.Start(ctx); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); f.Run(ctx) }()
		defer func() { cancel(); <-done }()
		waitBlocked(b, srv) // past the first, non-blocking feed read

		before := commandCalls(b, c)
		start := time.Now()
		b.ResetTimer()
		for range b.N {
			time.Sleep(idleSlice)
		}
		b.StopTimer()
		idle, total := diffCalls(before, commandCalls(b, c))
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "cmds/s/follower")
		b.Logf("idle follower over %v: %d commands %v", time.Since(start), total, idle)
	})

	for _, tc := range []struct {
		name string
		key  authz.LookupKey
	}{
		{"lookup-hit", recs[0].LookupKey()},
		{"lookup-miss", authz.LookupKey{Kind: authz.KindToken, Issuer: "https://idp", Value: "absent"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// One lookup first, so that no connection set-up is counted.
			if _, err := s.Lookup(context.Background(), tc.key); err != nil {
				b.Fatal(err)
			}
			before := commandCalls(b, c)
			b.ResetTimer()
			for range b.N {
				if _, err := s.Lookup(context.Background(), tc.key); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			calls, total := diffCalls(before, commandCalls(b, c))
			b.ReportMetric(float64(total)/float64(b.N), "cmds/op")
			b.Logf("%s: %d commands for %d lookups %v", tc.name, total, b.N, calls)
		})
	}
}

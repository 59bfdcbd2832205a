package embedded

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
)

var snapshot1M = flag.Bool("snapshot1m", false, "also benchmark Snapshot of 1M records (slow to set up)")

// fill puts n token records (jti "jti-0" ...) into s, 1000 per transaction,
// syncing to disk once at the end rather than per transaction.
func fill(b *testing.B, s *Store, n int) {
	b.Helper()
	s.db.NoSync = true
	defer func() {
		s.db.NoSync = false
		if err := s.db.Sync(); err != nil {
			b.Fatal(err)
		}
	}()
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

// BenchmarkLookup is the confirm path after a filter "maybe": one hit
// among 100k records.
func BenchmarkLookup(b *testing.B) {
	s, _ := newStore(b)
	const n = 100_000
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

// BenchmarkLookupMiss is a false positive of the filter: a key with no record.
func BenchmarkLookupMiss(b *testing.B) {
	s, _ := newStore(b)
	fill(b, s, 100_000)
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
// latency, fsync included.
func BenchmarkPut(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	recs := []authz.Record{token("https://idp", "jti", time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot builds a filter from every live record.
func BenchmarkSnapshot(b *testing.B) {
	sizes := []int{100_000}
	if *snapshot1M {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprint("records=", n), func(b *testing.B) {
			s, _ := newStore(b)
			fill(b, s, n)
			cfg := bloom.DefaultConfig()
			cfg.Entries = uint(2 * n)
			b.ReportAllocs()
			for b.Loop() {
				f, err := s.Snapshot(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				if f.Position() != uint64(n) {
					b.Fatalf("Position = %d, want %d", f.Position(), n)
				}
			}
		})
	}
}

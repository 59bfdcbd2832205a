package redis

import (
	"bytes"
	"context"
	"testing"

	"github.com/jwtguard/jwtguard/bloom"
)

// BenchmarkLoadPublished: what a node spends loading a published snapshot
// (PublishedSnapshot: the pieces read from a real redis-server, decoded)
// of a filter sized as the mesh run's (meshBloom) holding
// JWTGUARD_LOAD_KEYS keys (default 100,000; bench/SCALE.md used
// 1,000,000), sent with its delta full, as the lease holder sent its
// node's filter before, and compacted, as it does now.
func BenchmarkLoadPublished(b *testing.B) {
	keys := envInt(b, "JWTGUARD_LOAD_KEYS", 100_000)
	for _, compact := range []bool{false, true} {
		name := "delta"
		if compact {
			name = "compacted"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := startRedis(b, false).open(b, ctx)
			f, err := bloom.New(meshBloom(keys, 50))
			if err != nil {
				b.Fatal(err)
			}
			for i := range uint64(keys) {
				f.Add(bloom.Key{H1: i * 0x9E3779B97F4A7C15, H2: i*0xBF58476D1CE4E5B9 + 7}, i+1)
			}
			if compact {
				if err := f.Compact(); err != nil {
					b.Fatal(err)
				}
			}
			var buf bytes.Buffer
			if err := f.WriteSnapshot(&buf); err != nil {
				b.Fatal(err)
			}
			if err := publishScript.Run(ctx, s.rdb, []string{s.k.snapshot(), s.k.snapshotPos()}, buf.Bytes(), f.Position()).Err(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			for b.Loop() {
				g, ok, err := s.PublishedSnapshot(ctx)
				if err != nil || !ok || g.Position() != f.Position() {
					b.Fatalf("published snapshot: %v (found %v)", err, ok)
				}
			}
		})
	}
}

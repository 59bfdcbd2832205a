package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
)

// BenchmarkFeedDelivery is what one revocation costs a follower in step
// with the feed: a Feed call that brings the one new entry (a Put of one
// record, written with the timer stopped) and its apply, as the follower's
// step does them. ns/op is mostly the loopback round trip and the
// scheduler's wake-ups; B/op and allocs/op are the node's own. The Put comes
// before the read, so the blocking XREAD finds the entry at once; in a mesh
// it waits for it, on the same code path. BenchmarkDecodeFeedEntry is the
// decoding alone.
func BenchmarkFeedDelivery(b *testing.B) {
	s, srv := newSource(b, Options{})
	writer := openSource(b, srv.URL(), Options{})
	ctx := context.Background()
	put(b, writer, token("https://idp", "warm", time.Hour))
	filter, err := bloom.New(bloom.Config{Entries: 100_000, FPRate: 0.001, DeltaEntries: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, s, authz.DefaultRevocationConfig())
	if err != nil {
		b.Fatal(err)
	}
	warm, err := s.Feed(ctx, 0, 1000) // the epoch and the position seen
	if err != nil || len(warm) != 1 {
		b.Fatalf("first Feed = %d records, %v", len(warm), err)
	}
	rev.Apply(warm...)
	pos := rev.Filter().Position()
	s.Hold(pos)
	recs := []authz.Record{{}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		recs[0] = token("https://idp", fmt.Sprint("delivery-", i), time.Hour)
		if _, err := writer.Put(ctx, recs); err != nil {
			b.Fatal(err)
		}
		i++
		b.StartTimer()

		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := s.Feed(rctx, pos, 1000)
		cancel()
		if err != nil || len(got) != 1 || got[0].Position != pos+1 {
			b.Fatalf("Feed after %d = %d records, %v", pos, len(got), err)
		}
		rev.Apply(got...)
		pos = rev.Filter().Position()
		s.Hold(pos)
	}
}

// BenchmarkDecodeFeedEntry decodes a feed entry of a Put (its records
// after the reader's position): of one record, as a revocation at a time
// brings, and of a full chunk.
func BenchmarkDecodeFeedEntry(b *testing.B) {
	for _, n := range []int{1, feedChunk} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			recs := make([]authz.Record, n)
			now := time.Now()
			for i := range recs {
				recs[i] = token("https://idp", fmt.Sprint("value-", i), time.Hour)
				recs[i].ID = fmt.Sprintf("%032x", i)
				recs[i].CreatedAt = now
			}
			data, err := encodeBatch(recs)
			if err != nil {
				b.Fatal(err)
			}
			m := goredis.XMessage{ID: streamID(uint64(n + 6)), Values: map[string]any{"b": string(data), "f": "7", "e": "epoch"}}
			b.ReportAllocs()
			for b.Loop() {
				if got, err := entryRecords(m, 6); err != nil || len(got) != n {
					b.Fatalf("entryRecords = %d records, %v", len(got), err)
				}
			}
		})
	}
}

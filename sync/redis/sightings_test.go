package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/sync/redis/redistest"
)

// TestSightingsCountAcrossNodes: three nodes (three sources on one Redis)
// each add the addresses they saw a token from; each reads the mesh-wide
// distinct count, and one node only wins the claim of the finding.
func TestSightingsCountAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var nodes []*Source
	for range 3 {
		s, err := New(srv.URL(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	var last int64
	for i, s := range nodes {
		members := []string{fmt.Sprintf("198.51.100.%d", 2*i+1), fmt.Sprintf("198.51.100.%d", 2*i+2), "198.51.100.1"} // one seen everywhere
		counts, err := s.AddSightings(ctx, []Sighting{{Key: "tok", Members: members, TTL: time.Minute}, {Key: "other", Members: members[:1], TTL: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		last = counts[0]
		if counts[1] != int64(i+1) {
			t.Fatalf("node %d: other key counts %d, want %d", i, counts[1], i+1)
		}
	}
	if last != 6 {
		t.Fatalf("mesh-wide count %d, want the 6 distinct addresses", last)
	}
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	if ttl := c.PTTL(ctx, DefaultPrefix+"seen:tok").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("set TTL %v, want at most the window", ttl)
	}
	wins := 0
	for _, s := range nodes {
		ok, err := s.Claim(ctx, "fired:tok", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d nodes claimed one finding, want 1", wins)
	}
}

// infoInt reads one integer field of INFO section.
func infoInt(b *testing.B, c *goredis.Client, section, field string) int64 {
	b.Helper()
	info, err := c.Info(context.Background(), section).Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// BenchmarkSightingsBatch is one node's mesh sharing at its bound: each
// operation one full batch of 256 candidates (the default share-batch),
// two new addresses each, as the detectors write one per share-interval
// (250 ms). Reported from INFO: commands and bytes (in and out of Redis)
// per batch, and per second for a node writing a batch every 250 ms.
func BenchmarkSightingsBatch(b *testing.B) {
	const batchSize, perSecond = 256, 4
	s, srv := newSource(b, Options{})
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer c.Close()
	ctx := context.Background()
	batch := make([]Sighting, batchSize)
	for i := range batch {
		batch[i] = Sighting{Key: fmt.Sprintf("token-addresses:%032x", i), Members: []string{"198.51.100.1", "2001:db8::1"}, TTL: 5 * time.Minute}
	}
	if _, err := s.AddSightings(ctx, batch); err != nil { // connection set up
		b.Fatal(err)
	}
	before := commandCalls(b, c)
	in0, out0 := infoInt(b, c, "stats", "total_net_input_bytes"), infoInt(b, c, "stats", "total_net_output_bytes")
	b.ResetTimer()
	for range b.N {
		if _, err := s.AddSightings(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	in1, out1 := infoInt(b, c, "stats", "total_net_input_bytes"), infoInt(b, c, "stats", "total_net_output_bytes")
	calls, total := diffCalls(before, commandCalls(b, c))
	n := float64(b.N)
	b.ReportMetric(float64(total)/n, "cmds/batch")
	b.ReportMetric(float64(in1-in0)/n, "bytes-in/batch")
	b.ReportMetric(float64(out1-out0)/n, "bytes-out/batch")
	b.ReportMetric(perSecond*float64(total)/n, "cmds/s/node")
	b.ReportMetric(perSecond*float64(in1-in0+out1-out0)/n, "bytes/s/node")
	b.Logf("%d batches of %d: %v", b.N, batchSize, calls)
}

package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// infoField returns one field of INFO section (an integer).
func infoField(t testing.TB, c *goredis.Client, section, field string) int64 {
	t.Helper()
	info, err := c.Info(ctxT(t), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s %s = %q: %v", section, field, v, err)
			}
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// followerCalls sums the commands of INFO commandstats but the scripts
// themselves (the commands they run are counted) and the test's own INFO,
// CLIENT and HELLO.
func followerCalls(t testing.TB, c *goredis.Client) int {
	t.Helper()
	info, err := c.Info(ctxT(t), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		switch strings.TrimPrefix(name, "cmdstat_") {
		case "evalsha", "eval", "script|load", "info", "hello", "client|setname", "client|list", "client|setinfo", "ping":
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		total += n
	}
	return total
}

// busyScript keeps Redis busy for ARGV[1] microseconds, as a long command
// or a loaded server would.
var busyScript = goredis.NewScript(`
local t = redis.call('TIME')
repeat
  local n = redis.call('TIME')
until (n[1] - t[1]) * 1000000 + (n[2] - t[2]) >= tonumber(ARGV[1])
return 1
`)

// TestIdleFeedKeepsItsConnection reproduces idle followers re-dialling:
// Redis answers a timed-out XREAD BLOCK late when it is busy (by up to
// 1/hz, 100 ms, when it is not): a Feed whose deadline passes meanwhile
// must end with its deadline, never with its read cut by it, which would
// close the connection and make the next call dial again.
func TestIdleFeedKeepsItsConnection(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	put(t, s, tokens("idle", 1)...)
	if _, err := s.Feed(ctxT(t), 0, 0); err != nil { // connects, learns the epoch
		t.Fatal(err)
	}
	busyC := client(t, srv) // a connection of its own, made now
	if err := busyScript.Load(ctxT(t), busyC).Err(); err != nil {
		t.Fatal(err)
	}
	before := infoField(t, c, "stats", "total_connections_received")
	for i := range 3 {
		// Redis is busy from 350 to 750 ms, when the Feed's deadline
		// (500 ms) and its blocking read's time-out pass.
		busy := time.AfterFunc(350*time.Millisecond, func() { busyScript.Run(context.Background(), busyC, nil, 400_000) })
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		recs, err := s.Feed(ctx, 1, 0)
		cancel()
		busy.Stop()
		if !errors.Is(err, context.DeadlineExceeded) || len(recs) != 0 {
			t.Fatalf("idle Feed %d = %d records, %v; want context.DeadlineExceeded", i, len(recs), err)
		}
	}
	if n := infoField(t, c, "stats", "total_connections_received") - before; n != 0 {
		t.Errorf("3 idle Feed calls dialled Redis %d times, want 0 (the connection must survive its read deadline)", n)
	}
}

// TestIdleFollowerNeitherErrsNorRedials: a follower whose feed waits end
// again and again logs no error and keeps its one connection.
func TestIdleFollowerNeitherErrsNorRedials(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	put(t, s, tokens("idle", 1)...)
	var logs syncBuffer
	filter, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, s, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := source.DefaultFollowerConfig()
	cfg.Bloom, cfg.FeedWait = smallBloom, 400*time.Millisecond
	f := source.NewFollower(s, rev, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := f.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	before := infoField(t, c, "stats", "total_connections_received")
	runFollower(t, f)
	// Five waits or more: each ends at 300 to 400 ms.
	start := time.Now()
	waitFor(t, testTimeout, "five feed waits end", func() bool { return f.LastSync().Sub(start) > 2*time.Second })
	if n := infoField(t, c, "stats", "total_connections_received") - before; n != 0 {
		t.Errorf("an idle follower dialled Redis %d times, want 0", n)
	}
	if logs.String() != "" {
		t.Errorf("an idle follower logged:\n%s", logs.String())
	}
}

// TestFeedCostsOneCommandPerBatch: a follower in step with the feed costs
// Redis one command per batch (the blocking XREAD that brings it), not a
// wake-up followed by a guarded read.
func TestFeedCostsOneCommandPerBatch(t *testing.T) {
	const followers, revocations = 3, 20
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	// What the writes cost on their own: commandstats counts the commands
	// a script runs.
	before := followerCalls(t, c)
	for i := range revocations {
		put(t, s, token("https://idp", fmt.Sprint("alone-", i), time.Hour))
	}
	writes := followerCalls(t, c) - before
	var fols []*source.Follower
	for range followers {
		node := openSource(t, srv.URL(), Options{})
		f, _ := newFollower(t, node)
		if err := f.Start(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		runFollower(t, f)
		fols = append(fols, f)
	}
	waitFor(t, testTimeout, "every follower blocks in XREAD", func() bool {
		list, err := c.ClientList(ctxT(t)).Result()
		return err == nil && strings.Count(list, " cmd=xread") >= followers && strings.Count(list, "flags=b") >= followers
	})
	before = followerCalls(t, c)
	start := time.Now()
	for i := range revocations {
		rec := put(t, s, token("https://idp", fmt.Sprint("one-", i), time.Hour))[0]
		for j, f := range fols {
			waitFor(t, testTimeout, fmt.Sprintf("follower %d applies %d", j, rec.Position), func() bool { return f.Position() >= rec.Position })
		}
	}
	// Each follower is blocked again (or about to be): at most one read
	// per revocation each, plus the idle slices that ended meanwhile (a
	// slice lasts 3/4 maxBlock or more and ends with 3 commands).
	got := followerCalls(t, c) - before - writes
	t.Logf("%d followers, %d revocations: %d commands", followers, revocations, got)
	slices := int(time.Since(start)/(maxBlock*3/4)) + 1
	if allowed := followers * (revocations + 3*slices); got > allowed {
		t.Errorf("%d followers following %d revocations sent %d commands, want at most %d (one per revocation and follower)",
			followers, revocations, got, allowed)
	}
}

// TestFeedRefusesEntriesOfAnotherEpoch: entries written to a Redis that
// lost its data, past the position of a reader blocked on it, are refused
// (they carry the new epoch) and the loss reported, whether or not they
// carry an epoch.
func TestFeedRefusesEntriesOfAnotherEpoch(t *testing.T) {
	tests := []struct {
		name string
		// refill writes positions 1 to 5 after the loss.
		refill func(t *testing.T, writer *Source, c *goredis.Client)
	}{
		{"entries with their epoch", func(t *testing.T, writer *Source, _ *goredis.Client) {
			put(t, writer, tokens("after", 5)...)
		}},
		{"entries of an older writer, without epoch", func(t *testing.T, writer *Source, c *goredis.Client) {
			for i, r := range tokens("after", 5) {
				r.ID = fmt.Sprintf("%032x", i+1)
				r.CreatedAt = time.Now()
				pos := uint64(i + 1)
				r.Position = pos
				data := mustJSON(t, r)
				writeBadEntry(t, writer, c, pos, map[string]any{"r": data}, &r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := newSource(t, Options{})
			c := client(t, srv)
			writer := openSource(t, srv.URL(), Options{})
			put(t, writer, tokens("before", 3)...)
			if recs, err := s.Feed(ctxT(t), 0, 0); err != nil || len(recs) != 3 {
				t.Fatalf("Feed(0) = %d records, %v", len(recs), err)
			}
			type answer struct {
				recs []authz.Record
				err  error
			}
			done := make(chan answer, 1)
			go func() {
				recs, err := s.Feed(ctxT(t), 3, 0)
				done <- answer{recs, err}
			}()
			waitBlocked(t, srv)
			if err := c.FlushAll(ctxT(t)).Err(); err != nil {
				t.Fatal(err)
			}
			tt.refill(t, writer, c)
			a := <-done
			if !errors.Is(a.err, ErrPositionAhead) {
				t.Fatalf("Feed(3) after Redis lost its data and was refilled = %v, %v; want ErrPositionAhead", ids(a.recs), a.err)
			}
		})
	}
}

// TestFeedTakesEntriesWithoutEpoch: entries of an older writer, which
// carry no epoch, are read as before (with the guard read after them).
func TestFeedTakesEntriesWithoutEpoch(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	put(t, s, tokens("new", 2)...)
	r := tokens("old", 1)[0]
	r.ID, r.CreatedAt, r.Position = fmt.Sprintf("%032x", 7), time.Now(), 3
	writeBadEntry(t, s, c, 3, map[string]any{"r": mustJSON(t, r)}, &r)
	recs, err := s.Feed(ctxT(t), 0, 0)
	if err != nil || len(recs) != 3 || recs[2].ID != r.ID {
		t.Fatalf("Feed(0) = %v, %v; want 3 records, the last without epoch", ids(recs), err)
	}
}

// mustJSON returns r's JSON as a feed entry holds it.
func mustJSON(t *testing.T, r authz.Record) string {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestSnapshotReadInPieces: a published snapshot larger than a piece is
// read in pieces and loads whole.
func TestSnapshotReadInPieces(t *testing.T) {
	defer func(n int64) { snapshotChunk = n }(snapshotChunk)
	snapshotChunk = 1000
	s, _ := newSource(t, Options{})
	stored := put(t, s, tokens("piece", 50)...)
	cfg := bloom.Config{Entries: 10_000, FPRate: 0.001, DeltaEntries: 100}
	if err := s.Publish(ctxT(t), cfg); err != nil {
		t.Fatal(err)
	}
	f, err := s.Snapshot(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if f.Position() != stored[len(stored)-1].Position {
		t.Fatalf("snapshot at position %d, want %d", f.Position(), stored[len(stored)-1].Position)
	}
	checkHolds(t, f, stored)
}

// TestNodeHoldsOneConnection: a node's source keeps one connection to
// Redis through its feed reads, lookups and stats (a mesh's size is
// bounded by Redis's maxclients).
func TestNodeHoldsOneConnection(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	recs := put(t, s, tokens("one", 3)...)
	before := infoField(t, c, "stats", "total_connections_received")
	node := openSource(t, srv.URL(), Options{})
	if _, err := node.Feed(ctxT(t), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Lookup(ctxT(t), recs[0].LookupKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Stats(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Snapshot(ctxT(t), smallBloom); err != nil {
		t.Fatal(err)
	}
	if n := infoField(t, c, "stats", "total_connections_received") - before; n != 1 {
		t.Errorf("a node's source opened %d connections, want 1", n)
	}
}

package redis

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bitsbloom "github.com/bits-and-blooms/bloom/v3"
	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// smallBloom sizes the tests' filters.
var smallBloom = bloom.Config{Entries: 10_000, FPRate: 0.001, DeltaEntries: 1024}

func snapshot(t testing.TB, s *Source) *bloom.Filter {
	t.Helper()
	f, err := s.Snapshot(ctxT(t), smallBloom)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return f
}

// checkHolds fails the test for every record of recs whose key f lacks.
func checkHolds(t testing.TB, f *bloom.Filter, recs []authz.Record) {
	t.Helper()
	for _, r := range recs {
		if !f.MayContain(r.LookupKey().FilterKey()) {
			t.Errorf("filter at %d lacks the key of record %d (%s %q)", f.Position(), r.Position, r.Kind, r.Value)
		}
	}
}

// tokens returns n token records expiring in an hour, values prefix-0 ...
func tokens(prefix string, n int) []authz.Record {
	out := make([]authz.Record, n)
	for i := range out {
		out[i] = token("https://idp", fmt.Sprint(prefix, "-", i), time.Hour)
	}
	return out
}

func TestSnapshotBeforeAnyPublish(t *testing.T) {
	s, _ := newSource(t, Options{})
	if f := snapshot(t, s); f.Position() != 0 || f.Stats().Entries != 0 {
		t.Errorf("empty source: snapshot at %d with %d entries", f.Position(), f.Stats().Entries)
	}
	recs := put(t, s, tokens("a", 50)...)
	recs = append(recs, put(t, s, authz.Record{Kind: authz.KindSubject, Value: "bob", Before: time.Now(), ExpiresAt: time.Now().Add(time.Hour)})...)
	f := snapshot(t, s)
	if f.Position() != 51 {
		t.Errorf("snapshot position = %d, want 51", f.Position())
	}
	checkHolds(t, f, recs)
	if f.Config() != smallBloom {
		t.Errorf("built snapshot sized %+v, want the requested %+v", f.Config(), smallBloom)
	}
}

func TestSnapshotAfterPublish(t *testing.T) {
	s, srv := newSource(t, Options{})
	old := put(t, s, tokens("old", 30)...)
	if err := s.Publish(ctxT(t), smallBloom); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if pos, ok, err := s.publishedPosition(ctxT(t)); err != nil || !ok || pos != 30 {
		t.Errorf("published position = %d, %v, %v; want 30", pos, ok, err)
	}
	newer := put(t, s, tokens("new", 5)...)

	f := snapshot(t, s)
	if f.Position() != 30 {
		t.Fatalf("snapshot position = %d, want the published 30", f.Position())
	}
	checkHolds(t, f, old)
	// The published snapshot plus the feed after it give every record.
	recs, err := s.Feed(ctxT(t), f.Position(), 0)
	if err != nil {
		t.Fatalf("Feed(%d): %v", f.Position(), err)
	}
	if fmt.Sprint(ids(recs)) != fmt.Sprint(ids(newer)) {
		t.Errorf("feed after the snapshot = %v, want %v", ids(recs), ids(newer))
	}

	// A damaged published snapshot is not served: a fresh one is built.
	if err := client(t, srv).Set(ctxT(t), s.k.snapshot(), "garbage", 0).Err(); err != nil {
		t.Fatal(err)
	}
	f = snapshot(t, s)
	if f.Position() != 35 {
		t.Errorf("snapshot with a damaged published one at %d, want a fresh one at 35", f.Position())
	}
	checkHolds(t, f, append(old, newer...))
}

func TestSnapshotOlderThanTheFeedIsNotServed(t *testing.T) {
	s, _ := newSource(t, Options{FeedRetention: 10})
	put(t, s, tokens("a", 10)...)
	if err := s.Publish(ctxT(t), smallBloom); err != nil {
		t.Fatal(err)
	}
	var all []authz.Record
	for i := range 3 {
		all = append(all, put(t, s, tokens(fmt.Sprint("b", i), 100)...)...)
	}
	if _, err := s.Feed(ctxT(t), 10, 0); !errors.Is(err, source.ErrFeedTrimmed) {
		t.Fatalf("Feed(10) = %v, want ErrFeedTrimmed (the test needs the feed trimmed past the snapshot)", err)
	}
	f := snapshot(t, s)
	if f.Position() != 310 {
		t.Errorf("snapshot position = %d, want a fresh one at 310", f.Position())
	}
	checkHolds(t, f, all)
}

func TestPublishKeepsANewerSnapshot(t *testing.T) {
	s, _ := newSource(t, Options{})
	put(t, s, tokens("a", 3)...)
	if err := s.Publish(ctxT(t), smallBloom); err != nil {
		t.Fatal(err)
	}
	older, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := older.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	// A slow publisher arriving late with an older snapshot.
	n, err := publishScript.Run(ctxT(t), s.rdb, []string{s.k.snapshot(), s.k.snapshotPos()}, buf.Bytes(), 1).Int()
	if err != nil || n != 0 {
		t.Errorf("publishing an older snapshot = %d, %v; want it refused (0)", n, err)
	}
	if f := snapshot(t, s); f.Position() != 3 {
		t.Errorf("snapshot position = %d, want 3", f.Position())
	}
}

func TestRecordsExpire(t *testing.T) {
	s, srv := newSource(t, Options{})
	short := put(t, s,
		token("https://idp", "short", 1500*time.Millisecond),
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: time.Now().Add(1500 * time.Millisecond)},
	)
	long := put(t, s, token("https://idp", "short", time.Hour))[0] // same key as short[0], lives on
	if got := lookup(t, s, short[0].LookupKey()); len(got) != 2 {
		t.Fatalf("before expiry Lookup = %d records, want 2", len(got))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Get(ctxT(t), short[0].ID)
		if errors.Is(err, source.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record still there 10s after it expired: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := lookup(t, s, short[0].LookupKey()); len(got) != 1 || got[0].ID != long.ID {
		t.Errorf("after expiry Lookup = %v, want only the long-lived %s", ids(got), long.ID)
	}
	if got := lookup(t, s, short[1].LookupKey()); len(got) != 0 {
		t.Errorf("after expiry Lookup(kid) = %v, want none", ids(got))
	}
	if st := stats(t, s); st.Records != 1 || st.ByKind[authz.KindKey] != 0 {
		t.Errorf("after expiry Stats = %+v, want the one live record", st)
	}
	var seen []string
	if _, err := s.Range(ctxT(t), time.Now(), func(r authz.Record) error { seen = append(seen, r.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != long.ID {
		t.Errorf("after expiry Range visited %v, want only %s", seen, long.ID)
	}
	if recs, _, err := s.List(ctxT(t), source.ListQuery{}); err != nil || len(recs) != 1 {
		t.Errorf("after expiry List = %v, %v; want the one live record", ids(recs), err)
	}
	// The key's index lives as long as its longest record; the kid's is gone.
	c := client(t, srv)
	if ttl := c.PTTL(ctxT(t), s.k.idx(long.LookupKey())).Val(); ttl < 50*time.Minute {
		t.Errorf("index of a key with a record for an hour expires in %v", ttl)
	}
	if n := c.Exists(ctxT(t), s.k.idx(short[1].LookupKey())).Val(); n != 0 {
		t.Error("index of a key whose only record expired still exists")
	}
}

func TestRangePosition(t *testing.T) {
	s, _ := newSource(t, Options{})
	recs := put(t, s, tokens("a", 2500)...) // more than one ZSCAN page
	recs = append(recs, put(t, s, authz.Record{Kind: authz.KindSession, Issuer: "https://idp", Value: "s", ExpiresAt: time.Now().Add(time.Hour)})...)
	seen := map[string]bool{}
	pos, err := s.Range(ctxT(t), time.Now(), func(r authz.Record) error { seen[r.ID] = true; return nil })
	if err != nil || pos != 2501 {
		t.Fatalf("Range = %d, %v; want position 2501", pos, err)
	}
	for _, r := range recs {
		if !seen[r.ID] {
			t.Fatalf("Range did not visit record %d", r.Position)
		}
	}
	stop := errors.New("stop")
	if _, err := s.Range(ctxT(t), time.Now(), func(authz.Record) error { return stop }); err != stop {
		t.Errorf("Range with a failing fn = %v, want its error as is", err)
	}
	// At a later "now", every record has expired.
	n := 0
	if _, err := s.Range(ctxT(t), time.Now().Add(2*time.Hour), func(authz.Record) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("Range two hours later visited %d, %v; want none", n, err)
	}
}

// waitFor polls cond every 20ms until it holds or within fails the test.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPublisherLease drives two publishers round by round (tick is one
// round of Run), so that no timing decides the outcome: the lease stays with
// one holder while it renews, the holder publishes new records, and when its
// lease lapses the other takes over.
func TestPublisherLease(t *testing.T) {
	s, srv := newSource(t, Options{})
	other := openSource(t, srv.URL(), Options{})
	// A long interval: the lease (three intervals) never lapses on its own
	// during the test, however slow the machine.
	cfg := PublisherConfig{Interval: time.Hour, Bloom: smallBloom, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	pubs := make([]*Publisher, 2)
	for i, src := range []*Source{s, other} {
		p, err := NewPublisher(src, cfg)
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = p
	}
	holder := func() int {
		n, h := 0, -1
		for i, p := range pubs {
			if p.Holding() {
				n, h = n+1, i
			}
		}
		if n != 1 {
			return -1
		}
		return h
	}
	ctx := ctxT(t)
	first := -1
	for round := range 5 {
		// Both contend, in alternating order.
		pubs[round%2].tick(ctx)
		pubs[1-round%2].tick(ctx)
		h := holder()
		if h < 0 {
			t.Fatalf("round %d: holding = %v, %v; want exactly one holder", round, pubs[0].Holding(), pubs[1].Holding())
		}
		if first < 0 {
			first = h
		}
		if h != first {
			t.Fatalf("round %d: holder changed from %d to %d while both renewed", round, first, h)
		}
	}
	published := func() uint64 {
		t.Helper()
		pos, ok, err := s.publishedPosition(ctx)
		if err != nil || !ok {
			t.Fatalf("published position: %d, %v, %v", pos, ok, err)
		}
		return pos
	}
	recs := put(t, s, tokens("a", 5)...)
	next := 1 - first
	pubs[next].tick(ctx)
	pubs[first].tick(ctx)
	if pos := published(); pos != 5 {
		t.Fatalf("published position after the holder's round = %d, want 5", pos)
	}

	// The holder dies: its lease lapses (made to, here, rather than waited
	// for) and the other takes over at its next round.
	c := client(t, srv)
	if err := c.PExpire(ctx, s.k.lease(), time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the lease lapses", func() bool { return c.Exists(ctx, s.k.lease()).Val() == 0 })
	recs = append(recs, put(t, s, tokens("b", 5)...)...)
	pubs[next].tick(ctx)
	if !pubs[next].Holding() {
		t.Fatal("the other publisher did not take the lapsed lease")
	}
	pubs[first].tick(ctx) // back from the dead: the lease is taken
	if pubs[first].Holding() {
		t.Fatal("the old holder took the lease back from the new one")
	}
	if pos := published(); pos != 10 {
		t.Fatalf("published position after the new holder's round = %d, want 10", pos)
	}
	f := snapshot(t, s)
	if f.Position() != 10 {
		t.Errorf("snapshot position = %d, want the published 10", f.Position())
	}
	checkHolds(t, f, recs)
}

// TestPublisherRun checks that Run takes the lease and publishes at once,
// then again at its interval once records arrive, and returns with ctx.
func TestPublisherRun(t *testing.T) {
	s, _ := newSource(t, Options{})
	p, err := NewPublisher(s, PublisherConfig{Interval: 20 * time.Millisecond, Bloom: smallBloom, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, tokens("a", 2)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	published := func(want uint64) func() bool {
		return func() bool {
			pos, ok, err := s.publishedPosition(ctxT(t))
			return err == nil && ok && pos == want
		}
	}
	waitFor(t, 10*time.Second, "Run publishes the records there at start", published(2))
	put(t, s, tokens("b", 3)...)
	waitFor(t, 10*time.Second, "Run publishes new records", published(5))
	cancel()
	<-done
	if p.Holding() {
		t.Error("Holding after Run returned")
	}
}

// TestSnapshotForgedHeader: a published snapshot whose header (checksum
// made right) claims a base of tens of GiB must not make the node allocate
// it: it is refused, and the filter is built from the records instead.
func TestSnapshotForgedHeader(t *testing.T) {
	s, srv := newSource(t, Options{})
	recs := put(t, s, tokens("a", 3)...)
	f, err := bloom.New(smallBloom)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	// The header layout of the bloom package's documentation.
	h := buf.Bytes()[:76]
	le := binary.LittleEndian
	huge := bloom.Config{Entries: 1 << 32, FPRate: 1e-12, DeltaEntries: 1024}
	m, k := bitsbloom.EstimateParameters(huge.Entries, huge.FPRate)
	le.PutUint64(h[12:], uint64(huge.Entries))
	le.PutUint64(h[20:], math.Float64bits(huge.FPRate))
	le.PutUint64(h[52:], uint64(m))
	le.PutUint32(h[60:], uint32(k))
	le.PutUint32(h[72:], crc32.Checksum(h[:72], crc32.MakeTable(crc32.Castagnoli)))
	if err := client(t, srv).Set(ctxT(t), s.k.snapshot(), h, 0).Err(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g := snapshot(t, s)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("Snapshot allocated %d bytes for a 76-byte forged snapshot", n)
	}
	if g.Position() != 3 {
		t.Errorf("snapshot at %d, want one built from the records at 3", g.Position())
	}
	checkHolds(t, g, recs)
}

// TestPublisherPublishesWhenBehind: between its rounds the lease holder
// publishes once the snapshot is Behind positions behind, not before, so
// that after a mass revocation nodes far behind find a snapshot to load.
func TestPublisherPublishesWhenBehind(t *testing.T) {
	s, _ := newSource(t, Options{})
	p, err := NewPublisher(s, PublisherConfig{Interval: time.Hour, Bloom: smallBloom, Behind: 5, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	published := func() uint64 {
		t.Helper()
		pos, ok, err := s.SnapshotPosition(ctx)
		if err != nil || !ok {
			t.Fatalf("snapshot position: %d, %v, %v", pos, ok, err)
		}
		return pos
	}
	put(t, s, tokens("a", 2)...)
	p.tick(ctx)
	if pos := published(); pos != 2 || !p.Holding() {
		t.Fatalf("after the first round: published %d (holding %v), want 2", pos, p.Holding())
	}
	put(t, s, tokens("b", 4)...)
	if err := p.publishIfBehind(ctx, p.cfg.Behind); err != nil {
		t.Fatal(err)
	}
	if pos := published(); pos != 2 {
		t.Fatalf("4 behind, Behind 5: published %d, want still 2", pos)
	}
	recs := put(t, s, tokens("c", 1)...)
	if err := p.publishIfBehind(ctx, p.cfg.Behind); err != nil {
		t.Fatal(err)
	}
	if pos := published(); pos != 7 {
		t.Fatalf("5 behind: published %d, want 7", pos)
	}
	checkHolds(t, snapshot(t, s), recs)
}

// TestPublisherSendsItsNodesFilter: with Filter set, a publish made because
// the snapshot fell Behind sends the node's own filter at its position,
// without scanning the records (no ZSCAN), when the node is within Behind
// of the source; nodes loading it enforce every record up to that
// position. A node lagging further (or ahead of Redis, which lost data)
// publishes a filter built from the records, so the snapshot keeps up with
// the source all the same.
func TestPublisherSendsItsNodesFilter(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	f, rev := newFollower(t, s)
	if err := f.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(s, PublisherConfig{Interval: time.Hour, Bloom: smallBloom, Behind: 5, Filter: rev.Filter,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	publish := func(wantPos uint64, wantScan bool, what string) {
		t.Helper()
		before := commandCount(t, c, "zscan") // a build scans every live set
		if _, err := p.publishOwnIfBehind(ctx, p.cfg.Behind, false, true); err != nil {
			t.Fatal(err)
		}
		pos, _, err := s.SnapshotPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		scanned := commandCount(t, c, "zscan") > before
		if pos != wantPos || scanned != wantScan {
			t.Fatalf("%s: published at %d (scanned: %v), want %d (scanned: %v)", what, pos, scanned, wantPos, wantScan)
		}
	}
	caughtUp := func(pos uint64) {
		t.Helper()
		waitFor(t, testTimeout, fmt.Sprintf("the node reaches %d", pos), func() bool { return f.Position() >= pos })
	}
	put(t, s, tokens("a", 20)...)
	publish(20, true, "a node 20 behind")
	runFollower(t, f)
	recs := put(t, s, tokens("b", 10)...)
	caughtUp(30)
	publish(30, false, "a node in step, 10 past the snapshot")
	sent := snapshot(t, s)
	checkHolds(t, sent, recs)
	if st := sent.Stats(); st.DeltaEntries != 0 {
		t.Errorf("the node's filter was sent with %d keys in its delta: every node loading it re-adds them; want it compacted", st.DeltaEntries)
	}
	put(t, s, tokens("c", 4)...)
	caughtUp(34)
	publish(30, false, "4 past the snapshot, Behind 5")
	put(t, s, tokens("d", 6)...)
	caughtUp(40)
	// A node ahead of Redis (seq set back, as after a loss) sends nothing
	// of its own.
	if err := c.Set(ctx, s.k.seq(), 36, 0).Err(); err != nil {
		t.Fatal(err)
	}
	publish(36, true, "a node at 40 with Redis at 36")
}

// TestPublisherBurst: after a publish of its node's filter the lease holder
// publishes at every look while the source moves on, however little (a
// mass revocation's last records reach the snapshot a look after they are
// written), never builds from the records at a look that may not, and
// ends the burst once the snapshot has caught up.
func TestPublisherBurst(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	f, rev := newFollower(t, s)
	if err := f.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	runFollower(t, f)
	p, err := NewPublisher(s, PublisherConfig{Interval: time.Hour, Bloom: smallBloom, Behind: 5, Filter: rev.Filter,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	scans := commandCount(t, c, "zscan")
	look := func(burst bool, wantBurst bool, wantPos uint64, what string) {
		t.Helper()
		got, err := p.publishOwnIfBehind(ctx, p.cfg.Behind, burst, false)
		if err != nil {
			t.Fatal(err)
		}
		pos, _, err := s.SnapshotPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != wantBurst || pos != wantPos {
			t.Fatalf("%s: burst %v, published at %d; want %v, %d", what, got, pos, wantBurst, wantPos)
		}
	}
	caughtUp := func(pos uint64) {
		t.Helper()
		waitFor(t, testTimeout, fmt.Sprintf("the node reaches %d", pos), func() bool { return f.Position() >= pos })
	}
	put(t, s, tokens("a", 10)...)
	caughtUp(10)
	look(false, true, 10, "10 past, Behind 5")
	recs := put(t, s, tokens("b", 2)...)
	caughtUp(12)
	look(false, false, 10, "2 past, no burst")
	look(true, true, 12, "2 past, in a burst")
	checkHolds(t, snapshot(t, s), recs)
	look(true, false, 12, "caught up: the burst ends")
	if n := commandCount(t, c, "zscan"); n != scans {
		t.Fatalf("%d ZSCANs: a look without build scanned the records", n-scans)
	}
}

// commandCount returns how many times Redis ran cmd (INFO commandstats).
func commandCount(t testing.TB, c *goredis.Client, cmd string) int {
	t.Helper()
	info, err := c.Info(ctxT(t), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}

// TestPublisherWaitsForItsMovingNode: a lease holder whose node lags the
// source by Behind or more, but moves, does not build a snapshot from the
// records (a scan of every record while a mass revocation is written): it
// sends the node's filter once that is Behind past the published one. A
// node that has not moved since the previous look has a snapshot built.
func TestPublisherWaitsForItsMovingNode(t *testing.T) {
	s, srv := newSource(t, Options{})
	c := client(t, srv)
	flt, err := bloom.New(smallBloom) // the node's filter, moved by hand
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(s, PublisherConfig{Interval: time.Hour, Bloom: smallBloom, Behind: 5,
		Filter: func() *bloom.Filter { return flt }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	apply := func(recs []authz.Record) {
		for _, r := range recs {
			flt.Add(r.LookupKey().FilterKey(), r.Position)
		}
	}
	look := func(wantPos uint64, wantScan bool, what string) {
		t.Helper()
		before := commandCount(t, c, "zscan")
		if _, err := p.publishOwnIfBehind(ctx, p.cfg.Behind, false, true); err != nil {
			t.Fatal(err)
		}
		pos, _, err := s.SnapshotPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if scanned := commandCount(t, c, "zscan") > before; pos != wantPos || scanned != wantScan {
			t.Fatalf("%s: published at %d (scanned: %v), want %d (scanned: %v)", what, pos, scanned, wantPos, wantScan)
		}
	}
	recs := put(t, s, tokens("a", 10)...)
	apply(recs)
	look(10, false, "the node in step, 10 past nothing published")
	more := put(t, s, tokens("b", 20)...)
	apply(more[:2])
	look(10, false, "the node at 12, 18 behind the source, moving")
	look(30, true, "the node still at 12")
	apply(more[2:])
	checkHolds(t, snapshot(t, s), append(recs, more...))
}

package redis

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Snapshot returns the published filter snapshot (sized by the publisher's
// configuration) when a node loading it can follow the feed from its
// position (no record after it was trimmed).
// Otherwise (nothing published yet, a snapshot older than the retained
// feed, or one that does not decode) it builds a filter sized by cfg from
// the live records, at the position read before the scan (see Range), so
// that the first node works before any publisher ran.
func (s *Source) Snapshot(ctx context.Context, cfg bloom.Config) (*bloom.Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if f, err := s.published(ctx); err != nil || f != nil {
		return f, err
	}
	f, _, err := s.build(ctx, cfg)
	return f, err
}

// snapshotChunk is the most bytes of the published snapshot one command
// (GETRANGE) reads. Nodes read it in pieces, so that Redis never queues a
// whole snapshot per reader (a thousand nodes starting at once would have
// it hold a thousand copies in its output buffers) and serves its other
// clients between the pieces, and each piece gets the deadline of one
// call. A variable so that benchmarks can compare.
var snapshotChunk int64 = 1 << 20

// snapshotReads bounds the attempts at reading a published snapshot whose
// pieces do not fit together (a Publish replaced it meanwhile).
const snapshotReads = 3

// published returns the published snapshot, or nil when there is none that
// a node could follow the feed from.
func (s *Source) published(ctx context.Context) (*bloom.Filter, error) {
	var err error
	for range snapshotReads {
		var f *bloom.Filter
		var torn bool
		if f, torn, err = s.readPublished(ctx); !torn {
			return f, err
		}
	}
	slog.Warn("the published snapshot changed while it was read, again and again; building the filter from the records", "err", err)
	return nil, nil
}

// readPublished reads the published snapshot in pieces; torn says that
// they did not fit together (the snapshot was replaced meanwhile: its
// checksum fails), and the read is worth another try.
func (s *Source) readPublished(ctx context.Context) (f *bloom.Filter, torn bool, err error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	var first *goredis.StringCmd
	var size *goredis.IntCmd
	var seq *goredis.StringCmd
	var head *goredis.XMessageSliceCmd
	cmds, _ := s.rdb.Pipelined(octx, func(p goredis.Pipeliner) error {
		size = p.StrLen(octx, s.k.snapshot())
		first = p.GetRange(octx, s.k.snapshot(), 0, snapshotChunk-1)
		seq = p.Get(octx, s.k.seq())
		head = p.XRangeN(octx, s.k.feed(), "-", "+", 1)
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		return nil, false, s.wrap("snapshot", err)
	}
	n := size.Val()
	if n == 0 {
		return nil, false, nil
	}
	data := make([]byte, 0, n)
	data = append(data, first.Val()...)
	for int64(len(data)) < n {
		cctx, cancel := s.opContext(ctx)
		piece, err := s.rdb.GetRange(cctx, s.k.snapshot(), int64(len(data)), min(n, int64(len(data))+snapshotChunk)-1).Result()
		cancel()
		if err != nil {
			return nil, false, s.wrap("snapshot", err)
		}
		if piece == "" {
			return nil, true, errors.New("the snapshot shrank while it was read")
		}
		data = append(data, piece...)
	}
	f, err = bloom.ReadSnapshot(bytes.NewReader(data[:min(int64(len(data)), n)]))
	if err != nil {
		if int64(len(data)) > snapshotChunk {
			return nil, true, err // perhaps pieces of two snapshots
		}
		return nil, false, nil // rebuilt from the records; the next Publish replaces it
	}
	top, _ := seq.Uint64()
	if f.Position() >= top {
		return f, false, nil
	}
	if msgs := head.Val(); len(msgs) > 0 {
		if oldest, ok := entryFirst(msgs[0]); ok && oldest <= f.Position()+1 {
			return f, false, nil
		}
	}
	return nil, false, nil
}

// build builds a filter sized by cfg from the live records, dropping
// expired ones, and returns it with the position it reflects.
func (s *Source) build(ctx context.Context, cfg bloom.Config) (*bloom.Filter, uint64, error) {
	f, err := bloom.New(cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("build filter: %w", err)
	}
	pos, err := s.position(ctx)
	if err != nil {
		return nil, 0, s.wrap("build filter", err)
	}
	err = f.Rebuild(cfg, pos, func(add func(bloom.Key)) error {
		return s.scan(ctx, s.now(), func(r authz.Record) error {
			add(r.LookupKey().FilterKey())
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("build filter: %w", err)
	}
	return f, pos, nil
}

// publishScript stores a snapshot and its position unless a newer one is
// there (two publishers overlapping across a lease handover).
// KEYS: snapshot, snapshot:pos. ARGV: snapshot bytes, position.
// It returns 1 when stored, 0 when a newer one was kept.
var publishScript = goredis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[2]) or '-1')
if cur > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// Publish builds a filter sized by cfg from the live records (expired ones
// dropped) and stores it as the published snapshot with its position,
// both in one step, unless a newer snapshot is there already. Nodes load it
// at start and when they fall behind the retained feed.
func (s *Source) Publish(ctx context.Context, cfg bloom.Config) error {
	f, pos, err := s.build(ctx, cfg)
	if err != nil {
		return fmt.Errorf("publish snapshot: %w", err)
	}
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		return fmt.Errorf("publish snapshot: %w", err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err = publishScript.Run(ctx, s.rdb, []string{s.k.snapshot(), s.k.snapshotPos()}, buf.Bytes(), pos).Err()
	if err != nil {
		return s.wrap(fmt.Sprintf("publish snapshot at %d (%d bytes)", pos, buf.Len()), err)
	}
	return nil
}

// SnapshotPosition returns the feed position of the published snapshot,
// and false when there is none (see source.SnapshotPositioner).
func (s *Source) SnapshotPosition(ctx context.Context) (uint64, bool, error) {
	pos, ok, err := s.publishedPosition(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("published snapshot position: %w", err)
	}
	return pos, ok, nil
}

// PublishedSnapshot returns the published snapshot when a node loading it
// can follow the feed from its position, and false otherwise; it never
// builds one from the records (see source.SnapshotPositioner).
func (s *Source) PublishedSnapshot(ctx context.Context) (*bloom.Filter, bool, error) {
	f, err := s.published(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("published snapshot: %w", err)
	}
	return f, f != nil, nil
}

// publishedPosition returns the position of the published snapshot, and
// false when there is none.
func (s *Source) publishedPosition(ctx context.Context) (uint64, bool, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	pos, err := s.rdb.Get(ctx, s.k.snapshotPos()).Uint64()
	switch {
	case errors.Is(err, goredis.Nil):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return pos, true, nil
}

// DefaultPublishInterval is how often a Publisher renews its lease and
// publishes.
const DefaultPublishInterval = time.Minute

// PublisherConfig tunes a Publisher.
type PublisherConfig struct {
	// Interval is how often the lease is taken or renewed and a snapshot
	// published; the lease lasts three intervals. Default
	// DefaultPublishInterval.
	Interval time.Duration
	// Bloom sizes the published filters. Default bloom.DefaultConfig().
	Bloom bloom.Config
	// Log receives failures and lease changes. Default slog.Default().
	Log *slog.Logger
	// Behind: while it holds the lease, the publisher also publishes as soon
	// as the source is this many positions past the published snapshot
	// (checked every Interval/12), so that after a mass revocation nodes far
	// behind load a snapshot instead of the whole feed (see
	// source.FollowerConfig.ReloadLag). Default source.DefaultReloadLag.
	Behind uint64
	// Filter, when set, returns the filter the publisher's own node
	// enforces, kept current from the feed (authz.Revocations.Filter). A
	// publish made because the snapshot fell Behind then sends that
	// filter, at its position, instead of building one from every live
	// record, while the node is less than Behind behind the source: during
	// a mass revocation such publishes come every Interval/12, and each
	// build would scan all the records written so far (about 4 µs of Redis
	// CPU a record). The publish of every Interval still builds from the
	// records, which drops expired ones.
	Filter func() *bloom.Filter
}

// Publisher publishes filter snapshots while it holds the publisher lease,
// so that among many nodes running one, one at a time publishes. When the
// holder dies its lease lapses (after three intervals) and another takes
// over.
type Publisher struct {
	src     *Source
	cfg     PublisherConfig
	holder  string
	holding atomic.Bool
	lastOwn uint64 // the node's filter's position at the previous look (Run's goroutine)
}

// NewPublisher returns a Publisher for s; start it with Run.
func NewPublisher(s *Source, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPublishInterval
	}
	if cfg.Bloom == (bloom.Config{}) {
		cfg.Bloom = bloom.DefaultConfig()
	}
	if err := cfg.Bloom.Validate(); err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Behind == 0 {
		cfg.Behind = source.DefaultReloadLag
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("publisher id: %w", err)
	}
	return &Publisher{src: s, cfg: cfg, holder: hex.EncodeToString(b[:])}, nil
}

// Holding reports whether the publisher held the lease at its last attempt.
func (p *Publisher) Holding() bool { return p.holding.Load() }

// leaseScript takes the lease when it is free or renews it when the caller
// holds it. KEYS: lease. ARGV: holder, TTL (ms). It returns 1 when the
// caller holds the lease afterwards.
var leaseScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`)

// behindChecks is how many times an interval the lease holder checks how
// far the published snapshot is behind (Behind) and may build one from
// the records; a publisher with its node's filter (Filter) looks every
// Interval/burstChecks, and sends that filter when it is Behind (6 ms of
// Redis CPU for a million records, against seconds for a build).
const (
	behindChecks = 12
	burstChecks  = 60
)

// Run takes or renews the lease at once and then every interval, and
// publishes each time it holds it and records were added since the last
// snapshot, and in between when the snapshot falls Behind: every
// Interval/12 by a build from the records, or with Filter set every
// Interval/60 (a second by default) by sending the node's filter. Once it
// sent that filter it goes on at every look while the source has moved
// since, however little, until the snapshot has caught up with it: nodes that wait for the
// end of a mass revocation (source.FollowerConfig.SnapshotWait) find a
// snapshot at its last record about a second after it was written. It
// returns when ctx ends, without releasing the lease: it lapses as it
// would if the process died.
func (p *Publisher) Run(ctx context.Context) {
	defer p.holding.Store(false)
	t := time.NewTicker(max(p.cfg.Interval/burstChecks, time.Millisecond))
	defer t.Stop()
	burst := false
	for n := 0; ; n++ {
		var err error
		switch build := n%(burstChecks/behindChecks) == 0; {
		case n%burstChecks == 0:
			p.tick(ctx)
			burst = false
		case !p.holding.Load():
		case p.cfg.Filter != nil:
			burst, err = p.publishOwnIfBehind(ctx, p.cfg.Behind, burst, build)
		case build:
			err = p.publishIfBehind(ctx, p.cfg.Behind)
		}
		if err != nil && ctx.Err() == nil {
			p.cfg.Log.Warn("publish revocation snapshot", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick is one round of Run.
func (p *Publisher) tick(ctx context.Context) {
	held, err := p.lease(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.cfg.Log.Warn("publisher lease", "err", err)
		}
		held = false
	}
	if was := p.holding.Swap(held); was != held {
		p.cfg.Log.Info("publisher lease changed", "holding", held, "holder", p.holder)
	}
	if !held {
		return
	}
	if err := p.publishIfBehind(ctx, 1); err != nil && ctx.Err() == nil {
		p.cfg.Log.Warn("publish revocation snapshot", "err", err)
	}
}

// lease takes or renews the lease.
func (p *Publisher) lease(ctx context.Context) (bool, error) {
	s := p.src
	ctx, cancel := context.WithTimeout(ctx, min(s.timeout, p.cfg.Interval))
	defer cancel()
	ttl := 3 * p.cfg.Interval
	n, err := leaseScript.Run(ctx, s.rdb, []string{s.k.lease()}, p.holder, ttl.Milliseconds()).Int()
	if err != nil {
		return false, s.wrap("publisher lease", err)
	}
	return n == 1, nil
}

// publishOwnIfBehind publishes, when the published snapshot is at least
// behind positions behind the source (or there is none), the node's own
// filter (cfg.Filter) at its position, when that filter is at least behind
// past the published one: during a mass revocation the lease holder's node
// may trail the writes, and its filter still carries the nodes waiting
// for a snapshot most of the way. In a burst (the previous look published)
// any progress of the source and the node's filter is enough. A node that
// has not moved since the previous look and is Behind the source, or is
// ahead of Redis (which lost data), publishes a filter built from the
// records instead, as publishIfBehind does, when build allows and not in a
// burst, so that the snapshot keeps up with the source whatever the node's
// own lag. A node that lags but moves is waited for: a build during a mass
// revocation scans the records while they are written (it took 43 s of a
// 1M-record write, with no publish meanwhile, in a run of bench/SCALE.md),
// where the node's filter is sent a look or two later. The
// node's filter is compacted before it is sent, so that the nodes loading
// it have no delta to rebuild. It reports whether it published the node's
// filter (the burst goes on).
func (p *Publisher) publishOwnIfBehind(ctx context.Context, behind uint64, burst, build bool) (bool, error) {
	// The filter's position first: the snapshot written after it holds at
	// least every record up to it (a filter's position only grows).
	f := p.cfg.Filter()
	own := f.Position()
	moved := own != p.lastOwn
	p.lastOwn = own
	pub, ok, pos, err := p.positions(ctx)
	if err != nil {
		return false, err
	}
	if !ok {
		pub = 0
	}
	need := behind
	if burst {
		need = 1
	}
	switch {
	case pub >= pos || pos-pub < need:
		return false, nil
	case own <= pos && own > pub && own-pub >= need:
	case build && !burst && (own > pos || pos-own >= behind && !moved):
		return false, p.src.Publish(ctx, p.cfg.Bloom)
	default:
		return burst, nil // the node's filter may catch up by the next look
	}
	// Compacted first: a node loading a snapshot re-adds every key of its
	// delta, which for a full delta of 131,072 keys is most of a load's
	// CPU (40 ms against 9.5 ms for a 1M-key filter) and 2 MiB of its 6.
	// Compact only moves keys from the delta into the base: the node's
	// answers are the same.
	if err := f.Compact(); err != nil {
		return false, fmt.Errorf("publish the node's filter: %w", err)
	}
	var buf bytes.Buffer
	if err := f.WriteSnapshot(&buf); err != nil {
		return false, fmt.Errorf("publish the node's filter: %w", err)
	}
	octx, cancel := p.src.opContext(ctx)
	defer cancel()
	err = publishScript.Run(octx, p.src.rdb, []string{p.src.k.snapshot(), p.src.k.snapshotPos()}, buf.Bytes(), own).Err()
	if err != nil {
		return false, p.src.wrap(fmt.Sprintf("publish the node's filter at %d (%d bytes)", own, buf.Len()), err)
	}
	return true, nil
}

// publishIfBehind publishes when the published snapshot is at least
// behind positions behind the newest, or there is none (expired records an
// unchanged snapshot still holds only add false positives until the next
// change).
func (p *Publisher) publishIfBehind(ctx context.Context, behind uint64) error {
	pub, ok, pos, err := p.positions(ctx)
	if err != nil {
		return err
	}
	if ok && (pub >= pos || pos-pub < behind) {
		return nil
	}
	return p.src.Publish(ctx, p.cfg.Bloom)
}

// positions reads the published snapshot's position (ok false: none is
// published) and the source's newest.
func (p *Publisher) positions(ctx context.Context) (pub uint64, ok bool, pos uint64, err error) {
	if pub, ok, err = p.src.publishedPosition(ctx); err != nil {
		return 0, false, 0, p.src.wrap("read published position", err)
	}
	if pos, err = p.src.position(ctx); err != nil {
		return 0, false, 0, p.src.wrap("read position", err)
	}
	return pub, ok, pos, nil
}

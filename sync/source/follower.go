package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
)

// SnapshotFile is the node's own last filter snapshot inside its data dir.
const SnapshotFile = "filter.snap"

// Follower keeps a node's revocation state current from a source: it loads
// a snapshot (the node's own from disk, else the source's), applies the
// feed after it, reconnects with jittered backoff, reloads a snapshot when
// it has fallen behind the retained feed, and never goes backwards.
type Follower struct {
	src      Source
	rev      *authz.Revocations
	cfg      FollowerConfig
	log      *slog.Logger
	lastOK   atomic.Int64 // unix nanoseconds of the last successful feed read
	reloads  atomic.Uint64
	skips    atomic.Uint64 // snapshot loads instead of a long feed (ReloadLag)
	waits    atomic.Uint64 // waits for a snapshot that ended in the feed
	feedOnly bool          // a wait ended without a snapshot: read the feed until within ReloadLag/10 (Run's goroutine only)
	failed   uint64        // the snapshot position whose load last failed, not tried again by a node reading the feed (Run's goroutine only)
	bad      atomic.Uint64 // feed entries that did not decode
	diverged atomic.Bool
	head     atomic.Uint64 // the source's newest position, as last seen
	loadedAt atomic.Int64  // unix nanoseconds: when the node's filter was last loaded or refreshed
}

// FollowerConfig tunes a Follower.
type FollowerConfig struct {
	// DataDir holds the node's snapshot; "" keeps none.
	DataDir string
	// Bloom sizes filters built from the source's records.
	Bloom bloom.Config
	// Batch is the most records read from the feed at once.
	Batch int
	// MinBackoff and MaxBackoff bound the wait between failed reads.
	MinBackoff, MaxBackoff time.Duration
	// FeedWait is about how long one feed read waits for a revocation
	// before the follower notes that the source answered (LastSync) and
	// asks again: each wait is drawn between 3/4 of it and all of it, so
	// that the idle cycles of a mesh's nodes do not line up. Default 25s;
	// 0 takes the default.
	FeedWait time.Duration
	// ReloadLag: a node this many feed positions behind the source loads
	// the source's snapshot instead of reading the feed up to it, when the
	// source offers one that far ahead of the node (SnapshotPositioner).
	// After a mass revocation a filter snapshot is far smaller than the
	// records it covers: about 1.8 MiB for a million keys, against some
	// 300 MB of feed. Default DefaultReloadLag; 0 takes the default.
	ReloadLag uint64
	// SnapshotWait bounds how long a node more than ReloadLag behind waits
	// for the source to publish a snapshot it can load, without reading the
	// feed meanwhile (it enforces what it has, as any lagging node does).
	// During a mass revocation the node waits for the writes to end (the
	// source's newest position moving less than ReloadLag/10 between two
	// looks, about one a second) and then loads the snapshot published at
	// their end, once, instead of reading the feed and a snapshot at every
	// stretch of ReloadLag. When the bound passes it loads the snapshot it
	// has if that one is more than ReloadLag ahead of it, else it reads the
	// feed until it is within ReloadLag of the source again. Past
	// SnapshotWait the node waits on, up to twice SnapshotWait, only while
	// the published snapshot still moves (a write longer than the bound),
	// its looks fail, or the load of a snapshot far enough ahead failed:
	// reading the feed instead would cost the source more, not less.
	// Default DefaultSnapshotWait; 0 takes the default.
	SnapshotWait time.Duration
	// WaitLag: a node more than this many positions behind after a full
	// batch, whose source has published a snapshot, waits for one
	// (SnapshotWait) rather than read the feed. Default ReloadLag, so that
	// a burst smaller than that is read from the feed at once, as fast as
	// ever; 0 takes the default.
	WaitLag uint64
	// Publishing, when set, reports whether the node's own publisher holds
	// the lease: such a node never waits for a snapshot, since it is the
	// one that publishes them from its own filter, and reads ten Batches at
	// once, to keep up with a mass revocation.
	Publishing func() bool
}

// DefaultSnapshotWait is the default FollowerConfig.SnapshotWait.
const DefaultSnapshotWait = 30 * time.Second

// publisherBatches is how many Batches a node whose publisher holds the
// lease reads at once.
const publisherBatches = 10

// quietLooks is how many looks in a row a waiting node sees the writes
// ended before it takes a snapshot that does not reach them, or gives up
// on one and reads the feed.
const quietLooks = 3

// snapshotLooks is how many times in SnapshotWait a waiting node looks at
// the source's positions.
const snapshotLooks = 30

// waitStretch is how many SnapshotWaits a wait lasts at most, when it goes
// on past the first (see FollowerConfig.SnapshotWait).
const waitStretch = 2

// maxLookBackoff is how many look intervals a waiting node's failed looks
// and loads back off to at most, so that a thousand nodes whose reads time
// out together do not all ask again at once.
const maxLookBackoff = 8

// DefaultReloadLag is the default FollowerConfig.ReloadLag: about 15 MB of
// feed, some ten times the default filter's snapshot.
const DefaultReloadLag = 50_000

// DefaultFeedWait is the default FollowerConfig.FeedWait.
const DefaultFeedWait = 25 * time.Second

// DefaultFollowerConfig returns the defaults.
func DefaultFollowerConfig() FollowerConfig {
	return FollowerConfig{Bloom: bloom.DefaultConfig(), Batch: 1000, MinBackoff: 50 * time.Millisecond, MaxBackoff: 5 * time.Second, FeedWait: DefaultFeedWait, ReloadLag: DefaultReloadLag, SnapshotWait: DefaultSnapshotWait}
}

// NewFollower returns a follower applying src to rev.
func NewFollower(src Source, rev *authz.Revocations, cfg FollowerConfig, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.Default()
	}
	if cfg.FeedWait <= 0 {
		cfg.FeedWait = DefaultFeedWait
	}
	if cfg.ReloadLag == 0 {
		cfg.ReloadLag = DefaultReloadLag
	}
	if cfg.SnapshotWait <= 0 {
		cfg.SnapshotWait = DefaultSnapshotWait
	}
	if cfg.WaitLag == 0 {
		cfg.WaitLag = cfg.ReloadLag
	}
	return &Follower{src: src, rev: rev, cfg: cfg, log: log}
}

// Position is the feed position the node's state reflects.
func (f *Follower) Position() uint64 { return f.rev.Filter().Position() }

// LastSync is when the feed was last read successfully (zero before).
func (f *Follower) LastSync() time.Time {
	if n := f.lastOK.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Diverged reports whether the source was last seen behind the node
// (ErrPositionAhead): it lost revocations the node still enforces, and new
// ones written to it may not reach the node until an operator acts.
func (f *Follower) Diverged() bool { return f.diverged.Load() }

// Lag is how many feed positions the node is behind the source, as of the
// last read (0 when it is current).
func (f *Follower) Lag() uint64 {
	if h, p := f.head.Load(), f.Position(); h > p {
		return h - p
	}
	return 0
}

// SnapshotAge is how long ago the node's filter was loaded from a snapshot
// or refreshed from the source.
func (f *Follower) SnapshotAge() time.Duration {
	return time.Since(time.Unix(0, f.loadedAt.Load()))
}

// seeHead records a position the source has reached.
func (f *Follower) seeHead(pos uint64) {
	for {
		h := f.head.Load()
		if pos <= h || f.head.CompareAndSwap(h, pos) {
			return
		}
	}
}

// Reloads counts snapshot reloads after falling behind the feed.
func (f *Follower) Reloads() uint64 { return f.reloads.Load() }

// BadEntries counts feed entries that did not decode and were skipped
// (each logged at ERROR): a revocation may have been lost with one, unless
// the reload that followed found its record. Alert when it rises.
func (f *Follower) BadEntries() uint64 { return f.bad.Load() }

// Start loads the initial state and catches up with the feed as far as the
// source answers, then marks the state ready. With the source down it
// starts from the node's own snapshot alone; with neither, it fails.
func (f *Follower) Start(ctx context.Context) error {
	local, err := f.loadLocal()
	if err != nil {
		return err
	}
	if local != nil {
		f.rev.Replace(local)
		f.loadedAt.Store(time.Now().UnixNano())
		f.log.Info("revocation state loaded from the node's snapshot", "position", local.Position())
	} else {
		snap, err := f.src.Snapshot(ctx, f.cfg.Bloom)
		if err != nil {
			return fmt.Errorf("initial revocation state: no snapshot in %s and the source gave none: %w", f.snapshotPath(), err)
		}
		f.rev.Replace(snap)
		f.loadedAt.Store(time.Now().UnixNano())
		f.log.Info("revocation state loaded from the source", "position", snap.Position())
	}
	f.hold()
	if err := f.catchUp(ctx); err != nil {
		switch {
		case errors.Is(err, ErrPositionAhead):
			f.sourceBehind(err)
		case local == nil:
			return err
		default:
			f.log.Warn("source unreachable at start; enforcing the node's snapshot until it returns", "err", err)
		}
	}
	f.rev.SetReady(true)
	return nil
}

// hold tells a source that can lose its data the position the node
// enforces (see Holder).
func (f *Follower) hold() {
	if h, ok := f.src.(Holder); ok {
		h.Hold(f.Position())
	}
}

// sourceBehind reports a source found behind the node.
func (f *Follower) sourceBehind(err error) {
	f.diverged.Store(true)
	f.log.Error("the revocation source is behind this node: it lost data or was replaced; enforcing the node's state, new revocations may not arrive",
		"err", err, "node_position", f.Position())
}

// catchUp applies the feed until the source's newest position.
func (f *Follower) catchUp(ctx context.Context) error {
	st, err := f.src.Stats(ctx)
	if err != nil {
		return fmt.Errorf("source stats: %w", err)
	}
	if pos := f.Position(); st.Position < pos {
		return fmt.Errorf("source at position %d, node at %d: %w", st.Position, pos, ErrPositionAhead)
	}
	f.seeHead(st.Position)
	for f.Position() < st.Position {
		if err := f.step(ctx, time.Second); err != nil {
			return err
		}
	}
	f.lastOK.Store(time.Now().UnixNano())
	return nil
}

// Run follows the feed until ctx ends.
func (f *Follower) Run(ctx context.Context) {
	backoff := f.cfg.MinBackoff
	for ctx.Err() == nil {
		err := f.step(ctx, f.cfg.FeedWait*3/4+rand.N(f.cfg.FeedWait/4+1))
		if err == nil || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			backoff = f.cfg.MinBackoff
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrPositionAhead) {
			f.sourceBehind(err)
		} else {
			f.log.Warn("revocation feed read failed; enforcing last known state", "err", err, "retry_in", backoff)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(backoff*2, f.cfg.MaxBackoff)
	}
}

// step reads one batch of the feed (waiting up to wait) and applies it; a
// trimmed feed makes it reload a snapshot.
func (f *Follower) step(ctx context.Context, wait time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pos, batch := f.Position(), f.cfg.Batch
	if f.publishing() {
		// The lease holder's node publishes the snapshots the others wait
		// for: it keeps up with a mass revocation by reading more a call,
		// since each of its reads may queue behind a writer's script.
		batch *= publisherBatches
	}
	recs, err := f.src.Feed(rctx, pos, batch)
	var bad *BadEntryError
	switch {
	case errors.Is(err, ErrFeedTrimmed):
		return f.reload(ctx, pos)
	case errors.As(err, &bad):
		f.skip(ctx, bad.Position, err)
		return nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		f.lastOK.Store(time.Now().UnixNano()) // the source answered: nothing new
		return err
	case err != nil:
		return err
	}
	f.lastOK.Store(time.Now().UnixNano())
	f.diverged.Store(false)
	f.rev.Apply(recs...)
	f.hold()
	if n := len(recs); n > 0 {
		f.seeHead(recs[n-1].Position)
		if n == batch { // more may wait: learn how far behind
			if st, err := f.src.Stats(ctx); err == nil {
				f.seeHead(st.Position)
			}
			return f.skipAhead(ctx)
		}
	}
	if f.Lag() <= f.cfg.ReloadLag/10 {
		f.feedOnly = false // caught up: the next large write may be waited out
	}
	return nil
}

// skipAhead loads the source's snapshot when the node is more than
// ReloadLag positions behind and the snapshot is that far ahead of it:
// reading the feed up to the snapshot would cost the node (and the
// source's network, once per node) more than the snapshot does.
//
// A node more than WaitLag behind after a full batch, whose source
// has published a snapshot (a lease holder runs), is in the midst of a
// large write, perhaps a mass revocation: rather than read it all while it
// is written (a million records is some 95 MB a node, sent by Redis to
// every node), it stops reading the feed and looks about once a second
// (SnapshotWait/30, jittered) at the source's newest position and its
// published snapshot's. It loads the snapshot, when that is more than
// ReloadLag ahead of the node, once the writes have ended (the newest
// position moved less than ReloadLag/10 between two looks, or the snapshot
// has reached it) and the snapshot is within ReloadLag/10 of the newest
// position, or after three looks with the writes ended whatever its
// position; it goes back to the feed once the writes have ended and the
// node is within ReloadLag of the newest position (the feed is cheaper),
// or after three such looks without a snapshot far enough ahead. A look
// that fails (either of its two commands) tells nothing: it is neither a
// sign that the writes ended nor that no lease holder runs, and the node
// looks again later, backing off, as it does after a failed load (a node
// that does not wait reads the feed on). At
// SnapshotWait it loads the snapshot if it is far enough ahead, else
// reads the feed (SnapshotWaits counts these), unless the published
// snapshot moved in its last three looks, its looks fail or a load
// failed: then it waits on, up to twice SnapshotWait, and at that bound
// reads the feed, logged and counted. Having gone back to the feed, it
// reads it until it is within ReloadLag/10 of the newest position before
// it waits again; meanwhile, after each full batch, it still loads a
// published snapshot more than ReloadLag ahead of it, without waiting for
// one (as a node starting does), but never tries again one whose load
// failed. While it waits it enforces what it has, as any lagging node
// does. A node starting, or whose own publisher holds the lease, does not
// wait.
//
// The snapshot is caught up with the feed before it replaces the node's
// filter, and every record applied meanwhile is kept (ReplaceWith), so a
// revocation enforced stays enforced; confirmations still ask the source.
// A snapshot not past the node's position is never taken, nor one the
// source would build from its records.
func (f *Follower) skipAhead(ctx context.Context) error {
	sp, ok := f.src.(SnapshotPositioner)
	lag := f.cfg.ReloadLag
	wait := f.rev.Ready() && !f.publishing() && !f.feedOnly
	if !ok || f.Lag() <= f.cfg.WaitLag || !wait && f.Lag() <= lag {
		return nil
	}
	pos := f.Position()
	start := time.Now()
	deadline := start.Add(f.cfg.SnapshotWait)
	bound := start.Add(waitStretch * f.cfg.SnapshotWait)
	look := f.cfg.SnapshotWait / snapshotLooks
	prev := f.head.Load() // the newest position at the previous good look
	var (
		quiet    int    // good looks in a row with the writes ended
		still    int    // good looks in a row with the published snapshot where it was
		lastSnap uint64 // the published snapshot's position at the previous good look
		backoff  = 1    // look intervals to the next look
		looked   bool   // a good look came before
		loadErr  bool   // a load of a snapshot far enough ahead failed
	)
	for {
		snap, found, err := sp.SnapshotPosition(ctx)
		if err == nil {
			var st Stats
			if st, err = f.src.Stats(ctx); err == nil {
				f.seeHead(st.Position)
			}
		}
		now := time.Now()
		over := !now.Before(bound)
		lookFailed := err != nil // a look that tells nothing
		if lookFailed && !wait {
			return nil // a node that does not wait reads the feed
		}
		if !lookFailed {
			if found {
				f.seeHead(snap) // the source has reached it
			}
			head := f.head.Load()
			ahead := found && snap > pos && snap-pos > lag && snap <= head
			ended := found && snap >= head || looked && head-prev < lag/10
			if ended {
				quiet++
			} else {
				quiet = 0
			}
			if found && snap > lastSnap {
				still = 0
			} else {
				still++
			}
			lastSnap = snap
			// The lease holder publishes the writes' last records a look or
			// two after they end: take an earlier snapshot only after
			// quietLooks. Past SnapshotWait the wait ends unless the
			// snapshot still moves or a load failed; at the bound it ends.
			settled := found && snap+lag/10 >= head
			late := !now.Before(deadline) && still >= quietLooks && !loadErr || over
			switch {
			case ahead && !wait && snap == f.failed:
				return nil // a node reading the feed: this load failed before
			case ahead && (ended && settled || quiet >= quietLooks || !wait || late):
				if f.loadAhead(ctx, sp, pos, snap) {
					return nil
				}
				loadErr, lookFailed = true, true
				if !wait || over || ctx.Err() != nil {
					f.failed, f.feedOnly = snap, true
					if wait && ctx.Err() == nil {
						f.waits.Add(1)
					}
					return nil
				}
				// Perhaps torn by a publish, or timed out: look again.
			case !wait || !found && !looked:
				return nil // not waiting, or no lease holder publishes
			case ended && head-pos <= lag || !ahead && quiet >= quietLooks:
				// The writes ended, and the feed is cheaper or no snapshot far
				// enough ahead came: read the feed until caught up.
				f.feedOnly = true
				return nil
			case late:
				f.feedOnly = true
				f.waits.Add(1)
				f.log.Warn("no snapshot far enough ahead came in time; reading the feed", "from", pos, "head", head, "snapshot", snap, "found", found, "waited", now.Sub(start))
				return nil
			}
			looked = true
			prev = head
		}
		if over { // a look that failed at the bound
			f.feedOnly = true
			f.waits.Add(1)
			f.log.Warn("no look at the source's snapshot succeeded in time; reading the feed", "from", pos, "err", err, "waited", now.Sub(start))
			return nil
		}
		if lookFailed {
			backoff = min(backoff*2, maxLookBackoff)
		} else {
			backoff = 1
		}
		d := time.Duration(backoff) * look
		t := time.NewTimer(min(d*3/4+rand.N(d/2+1), time.Until(bound)+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// publishing reports whether the node's own publisher holds the lease.
func (f *Follower) publishing() bool { return f.cfg.Publishing != nil && f.cfg.Publishing() }

// loadAhead loads the source's published snapshot, announced at position
// snap, in place of the feed after pos, and reports whether it did. The
// snapshot loaded must be past pos (it covers every position the node
// skips; a publish in between only makes it newer), and the node reads
// the feed from its position on. It never has the source build one from
// its records.
func (f *Follower) loadAhead(ctx context.Context, sp SnapshotPositioner, pos, snap uint64) bool {
	loaded, ok, err := sp.PublishedSnapshot(ctx)
	switch {
	case err != nil:
	case !ok:
		err = errors.New("none the node could follow the feed from")
	case loaded.Position() <= pos:
		err = fmt.Errorf("the source's snapshot is at position %d, not past the node's %d", loaded.Position(), pos)
	default:
		err = f.rev.ReplaceWith(loaded, f.catchUpFilter(ctx))
	}
	if err != nil {
		f.log.Warn("loading the source's snapshot to skip ahead failed", "from", pos, "snapshot", snap, "err", err)
		return false
	}
	f.loadedAt.Store(time.Now().UnixNano())
	f.skips.Add(1)
	f.hold()
	f.log.Info("loaded the source's snapshot instead of reading the feed up to it", "from", pos, "snapshot", snap, "to", f.Position())
	return true
}

// SnapshotWaits counts waits for a snapshot far enough ahead that ended
// without one (the node then read the feed): a lease holder that does not
// publish, or writes longer than SnapshotWait.
func (f *Follower) SnapshotWaits() uint64 { return f.waits.Load() }

// Skips counts snapshot loads of a node that was more than ReloadLag
// behind (see FollowerConfig.ReloadLag).
func (f *Follower) Skips() uint64 { return f.skips.Load() }

// skip goes past a feed entry that does not decode, so that it stalls
// nothing behind it. Its record is lost to the node unless the source holds
// it: the node's state is first rebuilt from the source's records (which
// does not read that entry), and it is counted and logged at ERROR either
// way.
func (f *Follower) skip(ctx context.Context, pos uint64, bad error) {
	f.bad.Add(1)
	f.log.Error("revocation feed entry does not decode: reloading the state from the source's records and skipping it; a revocation may be lost with it",
		"position", pos, "err", bad)
	if err := f.Refresh(ctx); err != nil {
		f.log.Error("reload after a feed entry that does not decode failed: skipping the entry all the same",
			"position", pos, "err", err)
	}
	// Refresh moved past it when the source's records reflect it; an entry
	// written past the source's position, or a failed reload, did not.
	if f.Position() < pos {
		f.rev.Filter().Advance(pos)
	}
	f.hold()
}

// reload brings the node back after it fell behind the retained feed.
func (f *Follower) reload(ctx context.Context, pos uint64) error {
	if err := f.Refresh(ctx); err != nil {
		return fmt.Errorf("reload after falling behind position %d: %w", pos, err)
	}
	f.reloads.Add(1)
	f.hold()
	f.log.Info("reloaded a snapshot after falling behind the feed", "from", pos, "to", f.Position())
	return nil
}

// Refresh replaces the node's filter by a fresh one, which drops expired
// revocations and takes the size of the follower's bloom config: the
// source's snapshot caught up with the feed or, when that snapshot is older
// than the retained feed or the feed after it holds an entry that does not
// decode, one built from the source's live records.
// Revocations arriving meanwhile are enforced throughout, and the position
// never goes backwards.
func (f *Follower) Refresh(ctx context.Context) error {
	snap, err := f.src.Snapshot(ctx, f.cfg.Bloom)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	err = f.rev.ReplaceWith(snap, f.catchUpFilter(ctx))
	if err == nil {
		f.loadedAt.Store(time.Now().UnixNano())
	}
	if !errors.Is(err, ErrFeedTrimmed) && !errors.Is(err, ErrBadEntry) {
		return err
	}
	f.log.Warn("the source's snapshot cannot be caught up with its feed; building the filter from its records", "err", err)
	built, err := bloom.New(f.cfg.Bloom)
	if err != nil {
		return err
	}
	defer f.loadedAt.Store(time.Now().UnixNano())
	return f.rev.ReplaceWith(built, func(g *bloom.Filter) error {
		st, err := f.src.Stats(ctx)
		if err != nil {
			return fmt.Errorf("source stats: %w", err)
		}
		// The records reflect at least st.Position: the feed after it is
		// added next, so nothing between is missed.
		err = g.Rebuild(f.cfg.Bloom, st.Position, func(add func(bloom.Key)) error {
			_, err := f.src.Range(ctx, time.Now(), func(r authz.Record) error {
				add(r.LookupKey().FilterKey())
				return nil
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("build from the source's records: %w", err)
		}
		return f.catchUpFilter(ctx)(g)
	})
}

// catchUpFilter returns a function that adds the feed to g up to the
// source's newest position.
func (f *Follower) catchUpFilter(ctx context.Context) func(g *bloom.Filter) error {
	return func(g *bloom.Filter) error {
		st, err := f.src.Stats(ctx)
		if err != nil {
			return fmt.Errorf("source stats: %w", err)
		}
		for g.Position() < st.Position {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			recs, err := f.src.Feed(rctx, g.Position(), f.cfg.Batch)
			cancel()
			if err != nil {
				return fmt.Errorf("feed after %d: %w", g.Position(), err)
			}
			for _, r := range recs {
				if r.IsAheadCopy() {
					// Never given while a replacement runs; a new filter
					// would miss the key it lacks.
					return fmt.Errorf("feed at %d came without its record", r.Position)
				}
				if r.IsLift() {
					// The new filter keeps the lifted key (a filter cannot
					// delete); the swap drops every cached answer.
					g.Advance(r.Position)
					continue
				}
				g.Add(r.LookupKey().FilterKey(), r.Position)
			}
		}
		return nil
	}
}

func (f *Follower) snapshotPath() string {
	if f.cfg.DataDir == "" {
		return "(no data dir)"
	}
	return filepath.Join(f.cfg.DataDir, SnapshotFile)
}

// loadLocal returns the node's own snapshot, nil when there is none, or an
// error when it is unreadable (never a silent empty state).
func (f *Follower) loadLocal() (*bloom.Filter, error) {
	if f.cfg.DataDir == "" {
		return nil, nil
	}
	snap, err := bloom.LoadFile(f.snapshotPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node snapshot: %w (remove the file to rebuild it from the source)", err)
	}
	return snap, nil
}

// SaveSnapshot writes the node's state to its data dir, so a restart is
// fast and works while the source is down.
func (f *Follower) SaveSnapshot() error {
	if f.cfg.DataDir == "" {
		return nil
	}
	if err := f.rev.Filter().SaveFile(f.snapshotPath()); err != nil {
		return fmt.Errorf("save node snapshot: %w", err)
	}
	return nil
}

package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// guard remembers what a Source has seen of its Redis, so that a Redis that
// lost its data (a restart without persistence, FLUSHALL, a failover to a
// replica that missed writes, another database) is told from one that has
// nothing to say: the epoch (a random ID the first Put writes once) must
// not change, and seq must never fall behind a position seen or held.
type guard struct {
	mu    sync.Mutex
	epoch string // "" until one is seen
	floor uint64 // the highest position seen in Redis or held by the caller
}

// Hold tells the source that its caller enforces the feed up to pos (a
// follower's position, perhaps from its own snapshot on disk): a Redis
// found behind it afterwards has lost revocations the caller enforces, and
// Lookup and Feed then fail with ErrPositionAhead rather than answer from
// it. source.Follower calls it.
func (s *Source) Hold(pos uint64) {
	s.guard.mu.Lock()
	s.guard.floor = max(s.guard.floor, pos)
	s.guard.mu.Unlock()
}

// guardCmds are the reads of the guard, queued in a pipeline after the
// reads whose answer they vouch for (a Redis that loses its data between
// the two is seen behind, never the reverse), with what the source had seen
// before the round trip: calls overlap, and one that started earlier may
// be answered later, so its answer is held to what was known when it
// started.
type guardCmds struct {
	epoch, seq *goredis.StringCmd
	sawEpoch   string
	floor      uint64
}

// queueGuard queues the guard's reads on p.
func (s *Source) queueGuard(ctx context.Context, p goredis.Pipeliner) guardCmds {
	s.guard.mu.Lock()
	g := guardCmds{sawEpoch: s.guard.epoch, floor: s.guard.floor}
	s.guard.mu.Unlock()
	g.epoch, g.seq = p.Get(ctx, s.k.epoch()), p.Get(ctx, s.k.seq())
	return g
}

// check returns the position Redis is at, or an error wrapping
// ErrPositionAhead when Redis is behind what this source has seen or holds,
// or has another epoch; then it also wakes a waiting Feed, so that its
// caller learns of it at once. Otherwise it records what it saw.
func (s *Source) check(g guardCmds) (uint64, error) {
	epoch, err := g.epoch.Result()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return 0, fmt.Errorf("read %s: %w", s.k.epoch(), err)
	}
	seq, err := g.seq.Uint64()
	if errors.Is(err, goredis.Nil) {
		seq, err = 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", s.k.seq(), err)
	}
	s.guard.mu.Lock()
	defer s.guard.mu.Unlock()
	switch {
	case epoch == "" && g.sawEpoch != "":
		err = fmt.Errorf("redis at %s has lost its epoch %q: its data was lost: %w", s.addr, g.sawEpoch, ErrPositionAhead)
	case epoch != "" && s.guard.epoch != "" && epoch != s.guard.epoch:
		// An epoch is written once: two of them, in whatever order, mean
		// the data was replaced.
		err = fmt.Errorf("redis at %s has epoch %q, not the %q seen before: its data was lost or replaced: %w",
			s.addr, epoch, s.guard.epoch, ErrPositionAhead)
	case seq < g.floor:
		err = fmt.Errorf("redis at %s is at position %d, behind the %d seen or held before: it lost data: %w",
			s.addr, seq, g.floor, ErrPositionAhead)
	}
	if err != nil {
		select {
		case s.behind <- struct{}{}:
		default:
		}
		return seq, err
	}
	if s.guard.epoch == "" {
		s.guard.epoch = epoch // "" or the first one
	}
	s.guard.floor = max(s.guard.floor, seq)
	return seq, nil
}

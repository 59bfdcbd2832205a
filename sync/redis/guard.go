package redis

import (
	"context"
	"fmt"
	"strconv"
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

// guardCmds is the read of the guard (one MGET of epoch and seq), queued
// in a pipeline after the reads whose answer it vouches for (a Redis that
// loses its data between the two is seen behind, never the reverse), with
// what the source had seen before the round trip: calls overlap, and one
// that started earlier may be answered later, so its answer is held to what
// was known when it started.
type guardCmds struct {
	read     *goredis.SliceCmd
	sawEpoch string
	floor    uint64
}

// queueGuard queues the guard's read on p.
func (s *Source) queueGuard(ctx context.Context, p goredis.Pipeliner) guardCmds {
	g := s.sawGuard()
	g.read = p.MGet(ctx, s.k.epoch(), s.k.seq())
	return g
}

// sawGuard returns what the source has seen so far.
func (s *Source) sawGuard() guardCmds {
	s.guard.mu.Lock()
	defer s.guard.mu.Unlock()
	return guardCmds{sawEpoch: s.guard.epoch, floor: s.guard.floor}
}

// check returns the position Redis is at, or an error wrapping
// ErrPositionAhead when Redis is behind what this source has seen or holds,
// or has another epoch; then it also wakes a waiting Feed, so that its
// caller learns of it at once. Otherwise it records what it saw.
func (s *Source) check(g guardCmds) (uint64, error) {
	vals, err := g.read.Result()
	if err == nil && len(vals) != 2 {
		err = fmt.Errorf("%d values", len(vals))
	}
	if err != nil {
		return 0, fmt.Errorf("read %s and %s: %w", s.k.epoch(), s.k.seq(), err)
	}
	epoch, _ := vals[0].(string) // nil: no epoch yet
	var seq uint64
	if v, ok := vals[1].(string); ok {
		if seq, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, fmt.Errorf("read %s: %w", s.k.seq(), err)
		}
	}
	return seq, s.judge(g, epoch, seq)
}

// judge decides what an epoch and position read from Redis after a
// round trip's data say of it, given g, what was seen before the round
// trip: nil, or an error wrapping ErrPositionAhead (waking a waiting Feed).
// Otherwise it records what it saw.
func (s *Source) judge(g guardCmds, epoch string, seq uint64) error {
	s.guard.mu.Lock()
	defer s.guard.mu.Unlock()
	var err error
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
		s.wakeBehind()
		return err
	}
	if s.guard.epoch == "" {
		s.guard.epoch = epoch // "" or the first one
	}
	s.guard.floor = max(s.guard.floor, seq)
	return nil
}

// wakeBehind wakes a waiting Feed when Redis was found behind, so that its
// caller learns of it at once.
func (s *Source) wakeBehind() {
	select {
	case s.behind <- struct{}{}:
	default:
	}
}

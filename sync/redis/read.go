package redis

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Paging bounds.
const (
	// DefaultFeedLimit is the Feed page size when the caller passes 0.
	DefaultFeedLimit = 1000
	// DefaultListLimit is the List page size when the query sets none.
	DefaultListLimit = source.DefaultListLimit
	// MaxListLimit caps the List page size.
	MaxListLimit = source.MaxListLimit
	// scanCount is the COUNT of each ZSCAN, and so about the records per
	// MGET, of Range.
	scanCount = 1000
)

// Feed waits in slices (XREAD BLOCK) of between 3/4 of maxBlock and
// maxBlock, drawn at random so that the idle cycles of a mesh's nodes do
// not line up, and never past the caller's deadline. Each blocking read has
// a socket deadline of its own, readSlack past its block time: Redis
// answers a timed-out XREAD BLOCK up to about 1/hz late (100 ms, more when
// busy), and a read cut by its deadline would cost the connection and a
// re-dial.
const (
	maxBlock  = 10 * time.Second
	readSlack = 2 * time.Second
)

// Lookup returns every record stored under key whose ExpiresAt is after
// now: the IDs of the key's index (unexpired ones only), then their
// records, in two round trips; a key without records costs one. Each round
// trip also reads the guard (after the data), so that an answer never
// comes from a Redis that lost its data: then Lookup fails with
// ErrPositionAhead, and the caller denies what it cannot confirm.
func (s *Source) Lookup(ctx context.Context, key authz.LookupKey) ([]authz.Record, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	now := s.now()
	op := func() string { return fmt.Sprintf("lookup %s %q", key.Kind, key.Value) }
	var idx *goredis.StringSliceCmd
	var g guardCmds
	cmds, _ := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		idx = p.ZRangeArgs(ctx, goredis.ZRangeArgs{
			Key: s.k.idx(key), Start: "(" + strconv.FormatInt(now.UnixMilli(), 10), Stop: "+inf", ByScore: true,
		})
		g = s.queueGuard(ctx, p)
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		return nil, s.wrap(op(), err)
	}
	if _, err := s.check(g); err != nil {
		return nil, s.wrap(op(), err)
	}
	ids := idx.Val()
	if len(ids) == 0 {
		return nil, nil
	}
	recs, err := s.records(ctx, ids, true)
	if err != nil {
		return nil, s.wrap(op(), err)
	}
	out := recs[:0]
	for _, r := range recs {
		if r.ExpiresAt.After(now) && r.LookupKey() == key {
			out = append(out, r)
		}
	}
	return out, nil
}

// records reads the records of ids with one MGET, skipping those that are
// gone (expired). With guarded, the same round trip reads the guard after
// the records and fails when Redis has lost data.
func (s *Source) records(ctx context.Context, ids []string, guarded bool) ([]authz.Record, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.k.rec(id)
	}
	var mget *goredis.SliceCmd
	var g guardCmds
	cmds, _ := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		mget = p.MGet(ctx, keys...)
		if guarded {
			g = s.queueGuard(ctx, p)
		}
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		return nil, err
	}
	if guarded {
		if _, err := s.check(g); err != nil {
			return nil, err
		}
	}
	vals := mget.Val()
	out := make([]authz.Record, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // expired since the index was read
		}
		r, err := decodeRecord(ids[i], str)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeRecord decodes the stored JSON of record id.
func decodeRecord(id, data string) (authz.Record, error) {
	var r authz.Record
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return r, fmt.Errorf("record %s does not decode: %w", id, err)
	}
	if r.ID != id {
		return r, fmt.Errorf("record stored under %s has id %q", id, r.ID)
	}
	return r, nil
}

// Get returns the record with that ID while it is unexpired by the
// source's clock (Redis drops it at its expiry); otherwise an error
// wrapping source.ErrNotFound.
func (s *Source) Get(ctx context.Context, id string) (authz.Record, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	data, err := s.rdb.Get(ctx, s.k.rec(id)).Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return authz.Record{}, fmt.Errorf("get revocation %q: %w", id, source.ErrNotFound)
	case err != nil:
		return authz.Record{}, s.wrap(fmt.Sprintf("get revocation %q", id), err)
	}
	r, err := decodeRecord(id, data)
	if err != nil {
		return authz.Record{}, s.wrap(fmt.Sprintf("get revocation %q", id), err)
	}
	if !r.ExpiresAt.After(s.now()) {
		return authz.Record{}, fmt.Errorf("get revocation %q: expired: %w", id, source.ErrNotFound)
	}
	return r, nil
}

// Feed returns up to limit records (0 means DefaultFeedLimit) with a
// position after the given one, in position order. With none there it
// waits (XREAD BLOCK) for the next Put, ctx (returning ctx.Err()) or Close
// (ErrClosed). It returns source.ErrFeedTrimmed when records after the
// position have been trimmed from the feed, and ErrPositionAhead when
// Redis is behind the position, behind what this source has seen or holds
// (see Hold), or has another epoch: it lost its data.
//
// A batch costs Redis one command, the blocking XREAD that brings it: each
// feed entry carries the epoch of the Redis it was written to, which must
// be the one seen before, and the entries continue the caller's position
// (a Redis behind it holds none after it). The guard itself (epoch and seq,
// see "A Redis that lost its data") is read after the entries when they do
// not carry an epoch or this source has seen a newer position than the
// caller's, before the first wait of a source that has seen no epoch yet,
// and at the end of every idle slice, so that a loss is reported within one
// slice (maxBlock), and at once when a Lookup has run into it.
func (s *Source) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	op := func() string { return fmt.Sprintf("feed after %d", after) }
	if g := s.sawGuard(); g.sawEpoch == "" || after > g.floor {
		// Nothing seen of this Redis yet, or a position past anything
		// seen of it: look with the guard first, so that one that lost
		// its data (or a caller ahead of it) is reported at once. A
		// follower reading on from what it was given needs no such look.
		if recs, err := s.feedCheck(ctx, after, limit); err != nil || len(recs) > 0 {
			return recs, err
		}
	}
	for {
		block := maxBlock*3/4 + rand.N(maxBlock/4+1)
		if dl, ok := ctx.Deadline(); ok {
			block = min(block, time.Until(dl))
		}
		if block < time.Millisecond {
			// Too close to the deadline to ask Redis again: wait it out.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-s.closed:
				return nil, fmt.Errorf("%s: %w", op(), ErrClosed)
			case <-s.behind:
				return s.feedCheck(ctx, after, limit)
			}
		}
		seen := s.sawGuard()
		streams, err := s.blockingRead(ctx, &goredis.XReadArgs{
			Streams: []string{s.k.feed(), streamID(after)},
			Count:   feedCount(limit),
			Block:   block,
		})
		switch {
		case err == nil:
			return s.feedAnswer(ctx, after, limit, seen, firstStream(streams))
		case errors.Is(err, goredis.Nil), errors.Is(err, errBehind):
			// Nothing within block, or Redis seen behind: look again,
			// with the guard.
			if cerr := ctxErr(ctx); cerr != nil {
				return nil, cerr
			}
			recs, err := s.feedCheck(ctx, after, limit)
			if err != nil || len(recs) > 0 {
				return recs, err
			}
		case ctxErr(ctx) != nil:
			return nil, ctxErr(ctx)
		case errors.Is(err, ErrClosed):
			return nil, fmt.Errorf("%s: %w", op(), ErrClosed)
		default:
			return nil, s.wrap(op(), err)
		}
	}
}

// feedAnswer vouches for the entries a blocking read brought, read after
// after with seen as the guard before the read, and returns their records.
// Anything but good entries (trimmed, one that does not decode) is read
// again by feedCheck, with the guard. When the read brought as many entries
// as it asked for and fewer records than limit (entries of one record
// each: small Puts, lifts), the rest up to limit follows (feedMore).
func (s *Source) feedAnswer(ctx context.Context, after uint64, limit int, seen guardCmds, msgs []goredis.XMessage) ([]authz.Record, error) {
	op := func() string { return fmt.Sprintf("feed after %d", after) }
	recs, used, err := s.feedRecords(after, limit, msgs)
	if err != nil || len(recs) == 0 {
		return s.feedCheck(ctx, after, limit)
	}
	if int64(len(msgs)) == feedCount(limit) && used == len(msgs) && len(recs) < limit {
		more, moreMsgs := s.feedMore(ctx, recs[len(recs)-1].Position, after+uint64(limit), "")
		recs = append(recs, more...)
		msgs = append(msgs[:used:used], moreMsgs...)
		used = len(msgs)
	}
	var epoch string
	unmarked := false
	for _, m := range msgs[:used] {
		e, _ := m.Values["e"].(string)
		switch {
		case e == "":
			unmarked = true // written by a version that did not mark them
		case epoch == "":
			epoch = e
		case e != epoch:
			// An epoch is written once: two of them mean the data was
			// replaced.
			s.wakeBehind()
			return nil, fmt.Errorf("%s: redis at %s holds entries of epochs %q and %q: its data was replaced: %w",
				op(), s.addr, epoch, e, ErrPositionAhead)
		}
	}
	last := recs[len(recs)-1].Position
	if epoch != "" {
		// The entries vouch for the epoch here, and for the position when
		// this source has seen none past the caller's: Redis holds last.
		if err := s.judge(seen, epoch, max(last, seen.floor)); err != nil {
			return nil, fmt.Errorf("%s: %w", op(), err)
		}
	}
	if unmarked || seen.floor > after {
		// The entries alone cannot vouch for Redis: read the guard after
		// them.
		octx, cancel := s.opContext(ctx)
		defer cancel()
		g := s.sawGuard()
		g.floor = max(seen.floor, last)
		g.read = s.rdb.MGet(octx, s.k.epoch(), s.k.seq())
		if _, err := s.check(g); err != nil {
			if cerr := ctxErr(ctx); cerr != nil && !errors.Is(err, ErrPositionAhead) {
				return nil, cerr
			}
			return nil, s.wrap(op(), err)
		}
	}
	return recs, nil
}

// feedMore reads the whole entries after position from up to position to
// (XRANGE: no more records than that span), and returns their records and
// the entries that held them. With epoch set it keeps only the entries
// before the first that is not marked with it. It returns nothing when that
// fails or the entries do not continue from: the caller has records to
// return already, and its next read finds out.
func (s *Source) feedMore(ctx context.Context, from, to uint64, epoch string) ([]authz.Record, []goredis.XMessage) {
	if to <= from {
		return nil, nil
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	msgs, err := s.rdb.XRangeN(octx, s.k.feed(), "("+streamID(from), streamID(to), int64(to-from)).Result()
	if err != nil {
		return nil, nil
	}
	if epoch != "" {
		for i, m := range msgs {
			if e, _ := m.Values["e"].(string); e != epoch {
				msgs = msgs[:i]
				break
			}
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	recs, used, err := s.feedRecords(from, int(to-from), msgs)
	if err != nil {
		return nil, nil
	}
	return recs, msgs[:used]
}

// feedCount is the COUNT of a feed read for limit records: an entry holds
// up to feedChunk of them. It is at least two, so that a read that brings
// one entry of one record (a follower in step, a revocation at a time)
// is known to have brought all there was, and needs no feedMore.
func feedCount(limit int) int64 { return int64(max(2, (limit+feedChunk-1)/feedChunk)) }

// firstStream returns the entries of the first stream of an XREAD answer.
func firstStream(streams []goredis.XStream) []goredis.XMessage {
	if len(streams) == 0 {
		return nil
	}
	return streams[0].Messages
}

// feedCheck reads the feed after after without waiting, with the guard
// after it, and tells an empty answer (caught up) from a trimmed or a lost
// feed.
func (s *Source) feedCheck(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	op := func() string { return fmt.Sprintf("feed after %d", after) }
	octx, cancel := s.opContext(ctx)
	defer cancel()
	var read *goredis.XStreamSliceCmd
	var g guardCmds
	cmds, _ := s.rdb.Pipelined(octx, func(p goredis.Pipeliner) error {
		read = p.XRead(octx, &goredis.XReadArgs{Streams: []string{s.k.feed(), streamID(after)}, Count: feedCount(limit), Block: -1})
		g = s.queueGuard(octx, p)
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		if cerr := ctxErr(ctx); cerr != nil {
			return nil, cerr
		}
		return nil, s.wrap(op(), err)
	}
	top, err := s.check(g)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", op(), err)
	case top < after:
		return nil, fmt.Errorf("%s: redis at %s is at position %d: %w", op(), s.addr, top, ErrPositionAhead)
	}
	streams, _ := read.Result() // redis.Nil: no entry after after
	msgs := firstStream(streams)
	recs, used, err := s.feedRecords(after, limit, msgs)
	if err != nil {
		return nil, s.wrap(op(), err)
	}
	if len(recs) > 0 {
		if int64(len(msgs)) == feedCount(limit) && used == len(msgs) && len(recs) < limit {
			// The guard vouches for what it saw; what follows must carry
			// its epoch.
			more, _ := s.feedMore(ctx, recs[len(recs)-1].Position, min(top, after+uint64(limit)), s.sawGuard().sawEpoch)
			recs = append(recs, more...)
		}
		return recs, nil
	}
	if top > after {
		return nil, fmt.Errorf("%s: records up to %d were trimmed: %w", op(), top, source.ErrFeedTrimmed)
	}
	return nil, nil
}

// ctxErr returns ctx's error, and DeadlineExceeded as soon as ctx's
// deadline has passed, even before ctx's own timer reports it: go-redis
// sets the connection's deadline from ctx's, so a read can fail with an i/o
// timeout a moment before ctx.Err() says why.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// blockingRead runs a blocking XREAD and returns as soon as ctx is
// cancelled, the source is closed or a Lookup finds Redis behind, leaving
// the read to finish (within its block time) on its own. The read has its
// own deadline (its block time and readSlack), not ctx's: when ctx's
// deadline passes first, blockingRead waits for the read, which Redis ends
// at most a moment later, and returns what it brings, so that its
// connection is never cut in the middle of a reply.
func (s *Source) blockingRead(ctx context.Context, args *goredis.XReadArgs) ([]goredis.XStream, error) {
	type result struct {
		streams []goredis.XStream
		err     error
	}
	done := make(chan result, 1)
	go func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), args.Block+readSlack)
		defer cancel()
		streams, err := s.rdb.XRead(rctx, args).Result()
		done <- result{streams, err}
	}()
	wait := ctx.Done()
	for {
		select {
		case r := <-done:
			return r.streams, r.err
		case <-wait:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				wait = nil // the read ends within readSlack
				continue
			}
			return nil, ctx.Err()
		case <-s.closed:
			return nil, ErrClosed
		case <-s.behind:
			return nil, errBehind
		}
	}
}

// errBehind ends a blocking read when a Lookup has found Redis behind.
var errBehind = errors.New("redis seen behind")

// feedRecords decodes the feed entries msgs, read after after, and
// returns up to limit of their records after after, and how many of the
// entries it took them from. The positions are contiguous, so a first
// entry starting past after+1 means the ones between were trimmed. An
// entry that does not decode ends the answer: the records before it are
// returned, or, when it comes first, a *source.BadEntryError naming the
// last position it holds (its stream ID), so that skipping it skips all of
// its records.
func (s *Source) feedRecords(after uint64, limit int, msgs []goredis.XMessage) ([]authz.Record, int, error) {
	if len(msgs) == 0 {
		return nil, 0, nil
	}
	if first, ok := entryFirst(msgs[0]); ok && first > after+1 {
		return nil, 0, fmt.Errorf("positions %d to %d were trimmed: %w", after+1, first-1, source.ErrFeedTrimmed)
	}
	var out []authz.Record
	for i, m := range msgs {
		recs, err := entryRecords(m, after)
		if err != nil {
			pos, ok := parseStreamID(m.ID)
			switch {
			case !ok:
				return nil, 0, err
			case len(out) > 0:
				return out, i, nil // the bad entry comes first next time
			}
			return nil, 0, &source.BadEntryError{Position: pos, Err: err}
		}
		if out == nil {
			out = make([]authz.Record, 0, min(limit, len(recs)*len(msgs)))
		}
		if len(out)+len(recs) >= limit {
			return append(out, recs[:limit-len(out)]...), i + 1, nil
		}
		out = append(out, recs...)
	}
	return out, len(msgs), nil
}

// decodeEntry decodes one feed entry and checks it against its stream ID.
func decodeEntry(m goredis.XMessage) (authz.Record, error) {
	var r authz.Record
	pos, ok := parseStreamID(m.ID)
	if !ok {
		return r, fmt.Errorf("feed entry %s: not a feed position", m.ID)
	}
	data, ok := m.Values["r"].(string)
	if !ok {
		return r, fmt.Errorf("feed entry %s: no record", m.ID)
	}
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		return r, fmt.Errorf("feed entry %s: record does not decode: %w", m.ID, err)
	}
	if r.Position != pos {
		return r, fmt.Errorf("feed entry %s holds position %d", m.ID, r.Position)
	}
	return r, nil
}

// streamID is the feed stream ID of a position.
func streamID(pos uint64) string { return "0-" + strconv.FormatUint(pos, 10) }

// parseStreamID returns the position of a feed stream ID.
func parseStreamID(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, "0-")
	if !ok {
		return 0, false
	}
	pos, err := strconv.ParseUint(rest, 10, 64)
	return pos, err == nil
}

// Range calls fn for every record unexpired at now, kind by kind, in no
// particular order, and returns the position read before the iteration
// started. That position is safe to follow the feed from: every record at
// or before it was stored before the iteration began and is visited (ZSCAN
// returns every member present from start to end); a record stored during
// the iteration may or may not be visited, and comes again from the feed.
// A record may be visited twice if Redis resizes a set meanwhile (ZSCAN
// allows that). An error from fn ends the iteration and is returned as is.
func (s *Source) Range(ctx context.Context, now time.Time, fn func(authz.Record) error) (uint64, error) {
	pos, err := s.position(ctx)
	if err != nil {
		return 0, s.wrap("range revocations", err)
	}
	if err := s.scan(ctx, now, fn); err != nil {
		return 0, err
	}
	return pos, nil
}

// position reads seq, the newest position.
func (s *Source) position(ctx context.Context) (uint64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	pos, err := s.rdb.Get(ctx, s.k.seq()).Uint64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	return pos, err
}

// scan calls fn for each record unexpired at now: ZSCAN of each live set,
// then one MGET per page of IDs.
func (s *Source) scan(ctx context.Context, now time.Time, fn func(authz.Record) error) error {
	nowMS := float64(now.UnixMilli())
	for _, kind := range authz.Kinds {
		key := s.k.live(kind)
		var cursor uint64
		for {
			octx, cancel := s.opContext(ctx)
			pairs, next, err := s.rdb.ZScan(octx, key, cursor, "", scanCount).Result()
			var recs []authz.Record
			if err == nil {
				ids := make([]string, 0, len(pairs)/2)
				for i := 0; i+1 < len(pairs); i += 2 {
					if exp, perr := strconv.ParseFloat(pairs[i+1], 64); perr == nil && exp > nowMS {
						ids = append(ids, pairs[i])
					}
				}
				if len(ids) > 0 {
					recs, err = s.records(octx, ids, false)
				}
			}
			cancel()
			if err != nil {
				return s.wrap("range revocations: "+key, err)
			}
			for _, r := range recs {
				if !r.ExpiresAt.After(now) {
					continue
				}
				if err := fn(r); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return nil
}

// List returns the records matching q that are still live (neither
// expired nor lifted), in position order, and the cursor of the next page
// ("" when there is none). It pages through the retained feed: a live record older than the feed's retention
// is not listed (Get, Lookup and Range still find it). A cursor this source
// did not issue yields ErrInvalidCursor.
func (s *Source) List(ctx context.Context, q source.ListQuery) ([]authz.Record, string, error) {
	limit, err := q.PageSize()
	if err != nil {
		return nil, "", err
	}
	var after uint64
	if q.Cursor != "" {
		if after, err = decodeCursor(q.Cursor); err != nil {
			return nil, "", fmt.Errorf("list revocations: %w", err)
		}
	}
	now := s.now()
	var out []authz.Record
	for {
		msgs, err := s.listEntries(ctx, after)
		if err != nil {
			return nil, "", s.wrap("list revocations", err)
		}
		if len(msgs) == 0 {
			return out, "", nil
		}
		var page []authz.Record
		for _, m := range msgs {
			recs, err := entryRecords(m, after)
			if err != nil {
				return nil, "", s.wrap("list revocations", err)
			}
			for _, r := range recs {
				after = r.Position
				if !r.IsLift() && q.Matches(r) && r.ExpiresAt.After(now) {
					page = append(page, r)
				}
			}
		}
		if page, err = s.present(ctx, page); err != nil {
			return nil, "", s.wrap("list revocations", err)
		}
		for _, r := range page {
			if len(out) == limit {
				return out, encodeCursor(out[len(out)-1].Position), nil
			}
			out = append(out, r)
		}
	}
}

// listEntries returns the feed entries that hold the positions after
// after, up to about MaxListLimit of them: the whole entries within the
// next MaxListLimit positions, or else the next entry alone (a Put's chunk
// reaching past them). None means the feed ends at after.
func (s *Source) listEntries(ctx context.Context, after uint64) ([]goredis.XMessage, error) {
	octx, cancel := s.opContext(ctx)
	defer cancel()
	msgs, err := s.rdb.XRangeN(octx, s.k.feed(), "("+streamID(after), streamID(after+MaxListLimit), int64(MaxListLimit)).Result()
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	return s.rdb.XRangeN(octx, s.k.feed(), "("+streamID(after), "+", 1).Result()
}

// present returns the records of recs still stored (not lifted, not
// expired since), with one round trip.
func (s *Source) present(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	if len(recs) == 0 {
		return recs, nil
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	exists := make([]*goredis.IntCmd, len(recs))
	cmds, _ := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, r := range recs {
			exists[i] = p.Exists(ctx, s.k.rec(r.ID))
		}
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		return nil, err
	}
	out := recs[:0]
	for i, r := range recs {
		if exists[i].Val() == 1 {
			out = append(out, r)
		}
	}
	return out, nil
}

// cursorPrefix marks List cursors of this package, so that a cursor of
// another source (or of nothing) is refused rather than misread.
const cursorPrefix = "rds1."

// encodeCursor returns the List cursor resuming after position pos.
func encodeCursor(pos uint64) string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, pos))
}

// decodeCursor returns the position a List cursor resumes after.
func decodeCursor(c string) (uint64, error) {
	rest, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrInvalidCursor, c)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) != 8 {
		return 0, fmt.Errorf("%w: %q", ErrInvalidCursor, c)
	}
	return binary.BigEndian.Uint64(b), nil
}

// Stats reports the live records by kind (ZCOUNT of each live set over
// unexpired scores) and the newest position, in one round trip of six
// O(log n) commands: cheap enough for every status request.
func (s *Source) Stats(ctx context.Context) (source.Stats, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	live := "(" + strconv.FormatInt(s.now().UnixMilli(), 10) // scores after now
	var seq *goredis.StringCmd
	counts := make([]*goredis.IntCmd, len(authz.Kinds))
	cmds, _ := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		seq = p.Get(ctx, s.k.seq())
		for i, kind := range authz.Kinds {
			counts[i] = p.ZCount(ctx, s.k.live(kind), live, "+inf")
		}
		return nil
	})
	if err := pipeErr(cmds); err != nil {
		return source.Stats{}, s.wrap("stats", err)
	}
	st := source.Stats{ByKind: make(map[authz.Kind]int)}
	var err error
	if st.Position, err = seq.Uint64(); err != nil && !errors.Is(err, goredis.Nil) {
		return source.Stats{}, s.wrap("stats: "+s.k.seq(), err)
	}
	for i, kind := range authz.Kinds {
		if n := int(counts[i].Val()); n > 0 {
			st.ByKind[kind] = n
			st.Records += n
		}
	}
	return st, nil
}

// pipeErr returns the first error of a pipeline's commands other than
// redis.Nil (a missing key, which callers handle per command).
func pipeErr(cmds []goredis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
	}
	return nil
}

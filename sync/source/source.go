// Package source declares what a revocation source offers a jwtguard node
// (a snapshot, an ordered feed, an exact lookup and writes) and the Follower
// that keeps a node's revocation state current from one.
//
// The sync/ folder holds no package of its own, so that nothing shadows the
// standard library's sync: the interface and follower live here, each source
// in a sibling folder (sync/embedded, sync/redis).
package source

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
)

// Errors callers branch on.
var (
	// ErrNotFound: no record has that ID.
	ErrNotFound = errors.New("revocation not found")
	// ErrLifted: the record with that ID was lifted already (see
	// Source.Lift).
	ErrLifted = errors.New("revocation already lifted")
	// ErrNoSnapshot: the source has no filter snapshot to offer yet.
	ErrNoSnapshot = errors.New("no snapshot")
	// ErrFeedTrimmed: the feed no longer holds the position asked for; the
	// follower must reload a snapshot.
	ErrFeedTrimmed = errors.New("feed position no longer retained")
	// ErrPositionAhead: the node has read further than anything the source
	// holds: the source lost data or was replaced. The node cannot catch up
	// and keeps enforcing what it has; an operator must look.
	ErrPositionAhead = errors.New("feed position is ahead of the source")
	// ErrInvalidCursor: a List cursor the source did not issue.
	ErrInvalidCursor = errors.New("invalid list cursor")
	// ErrBadEntry: a feed entry does not decode (see BadEntryError).
	ErrBadEntry = errors.New("feed entry does not decode")
)

// BadEntryError is Feed's error for an entry that does not decode: it
// holds no record a node can apply, yet must not stop the feed behind it.
// Feed returns the good records before it first, so Position is the one
// after the caller's. The Follower counts it, logs it at ERROR, reloads its
// state from the source's records (which hold the entry's record if the
// source has it) and goes on past it.
type BadEntryError struct {
	Position uint64
	Err      error
}

func (e *BadEntryError) Error() string {
	return fmt.Sprintf("feed entry at position %d does not decode: %v", e.Position, e.Err)
}

// Is makes errors.Is(err, ErrBadEntry) true.
func (e *BadEntryError) Is(target error) bool { return target == ErrBadEntry }

// Unwrap returns the decoding error.
func (e *BadEntryError) Unwrap() error { return e.Err }

// Source is a revocation source: the authority over revocation records.
//
// Every source keeps the same contract, checked by the conformance suite
// in sync/source/sourcetest. Expiry is decided by the source's clock: a
// record whose ExpiresAt is not after now is expired, and from then on
// Lookup, Get, List, Range (at its own now) and Stats leave it out, whether
// or not the source has deleted it yet. Only Feed may still return it.
type Source interface {
	// Lookup returns every unexpired record stored under key, in no
	// particular order. Subject and key records are stored (and so found)
	// under their value alone: see authz.Record.LookupKey.
	authz.Lookup

	// Put validates recs, stores them durably and appends them to the feed
	// (a record and its feed entry in one atomic step), and returns them in
	// order with ID (a fresh one, whatever the caller set), Position (the
	// next positions, growing) and, when zero, CreatedAt set. Every record
	// must carry an ExpiresAt after its CreatedAt and after now. It returns
	// only once the records are durable; on error none of recs is stored,
	// and an invalid record yields an error wrapping authz.ErrInvalidRecord
	// that names its index. An empty recs stores nothing.
	Put(ctx context.Context, recs []authz.Record) ([]authz.Record, error)

	// Feed returns up to limit records (0: the source's default) with a
	// position after the given one, in position order. It waits until at
	// least one is there or ctx ends (then it returns ctx.Err()) or the
	// source is closed. ErrFeedTrimmed means records after the position
	// are no longer in the feed; ErrPositionAhead means the position is
	// beyond the source's newest. The records are returned as Put returned
	// them, expired since or not; a source may drop expired ones (Pruner).
	Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error)

	// Snapshot returns a filter sized by cfg (or by the configuration of
	// the filter the source keeps) holding the key of every unexpired
	// record up to the feed position it reflects, or ErrNoSnapshot.
	Snapshot(ctx context.Context, cfg bloom.Config) (*bloom.Filter, error)

	// Range calls fn once for every record unexpired at now, in no
	// particular order, and returns the feed position the iteration
	// reflects. An error of fn ends it and is returned.
	Range(ctx context.Context, now time.Time, fn func(authz.Record) error) (uint64, error)

	// Get returns the unexpired record with that ID, or ErrNotFound.
	Get(ctx context.Context, id string) (authz.Record, error)

	// Lift undoes the unexpired record with that ID, in one atomic step:
	// Lookup, Get, List, Range, Snapshot and Stats leave it out from then
	// on, and a lift entry (authz.Record.Lifts set to id, see there) is
	// appended to the feed at the next position, so that every node drops
	// what it has cached of the record. actor and reason say who lifts it
	// and why; reason is required. It returns the lift entry. An unknown
	// or expired id is ErrNotFound; a record lifted already is an error
	// wrapping ErrLifted, returned with the earlier lift entry while that
	// record would have lived. Other records under the same key are
	// untouched.
	Lift(ctx context.Context, id, actor, reason string) (authz.Record, error)

	// List returns the unexpired records matching q in position order, at
	// most q.PageSize() of them, and the cursor of the next page ("" when
	// there is none). A cursor the source did not issue is
	// ErrInvalidCursor.
	List(ctx context.Context, q ListQuery) ([]authz.Record, string, error)

	// Stats reports the unexpired records by kind and the newest feed
	// position.
	Stats(ctx context.Context) (Stats, error)

	// Close releases the source and ends waiting Feed calls with an error;
	// every later call fails. A second Close does nothing.
	Close() error
}

// NewLift returns the lift entry of rec (without ID and Position, which
// the source assigns) made at now by actor for reason, after checking
// actor and reason as a record's fields are checked.
func NewLift(rec authz.Record, actor, reason string, now time.Time) (authz.Record, error) {
	if reason == "" {
		return authz.Record{}, fmt.Errorf("%w: a lift needs a reason", authz.ErrInvalidRecord)
	}
	check := authz.Record{Kind: authz.KindToken, Issuer: "x", Value: "x", Actor: actor, Reason: reason}
	if err := check.Validate(); err != nil {
		return authz.Record{}, err
	}
	return authz.Record{
		Kind: rec.Kind, Issuer: rec.Issuer, Value: rec.Value, Before: rec.Before, MaxAgeSeconds: rec.MaxAgeSeconds,
		Actor: actor, Reason: reason, CreatedAt: now, ExpiresAt: rec.ExpiresAt, Lifts: rec.ID,
	}, nil
}

// Pruner is implemented by a source that keeps expired records until told
// to delete them (the embedded store); a source whose records expire on
// their own (Redis) does not implement it. The node calls it off the hot
// path. Prune deletes the records whose ExpiresAt is at or before now and
// returns how many it deleted; their feed positions are never reused.
type Pruner interface {
	Prune(now time.Time) (int, error)
}

// SnapshotPositioner is implemented by a source that can tell cheaply the
// feed position of the snapshot Snapshot would return, without returning
// it (Redis: the published snapshot's), and return that snapshot alone. A follower far behind the source
// asks it to choose between reading the feed and loading that snapshot
// (see FollowerConfig.ReloadLag); ok is false when the source has none.
type SnapshotPositioner interface {
	SnapshotPosition(ctx context.Context) (pos uint64, ok bool, err error)
	// PublishedSnapshot returns that snapshot, or ok false when there is
	// none a node could follow the feed from; never one built from the
	// records, which would cost the source a scan of them per node.
	PublishedSnapshot(ctx context.Context) (f *bloom.Filter, ok bool, err error)
}

// Holder is implemented by a source that can lose its data behind a node's
// back (Redis): Hold tells it the feed position the node enforces, so that
// it refuses to answer lookups and the feed (ErrPositionAhead) once it is
// found behind that position, instead of answering from what it has left.
// The Follower calls it whenever its position moves.
type Holder interface {
	Hold(pos uint64)
}

// ListQuery filters and pages List. Empty fields match everything.
type ListQuery struct {
	Kind   authz.Kind
	Issuer string
	Value  string
	// Cursor is the opaque cursor of the previous page's answer.
	Cursor string
	// Limit caps the page size; zero means 100.
	Limit int
}

// Page sizes of List.
const (
	// DefaultListLimit is the page size when a query sets none.
	DefaultListLimit = 100
	// MaxListLimit caps the page size.
	MaxListLimit = 1000
)

// PageSize is the page size q asks for: Limit, DefaultListLimit when zero,
// at most MaxListLimit.
func (q ListQuery) PageSize() (int, error) {
	switch {
	case q.Limit < 0:
		return 0, fmt.Errorf("list revocations: negative limit %d", q.Limit)
	case q.Limit == 0:
		return DefaultListLimit, nil
	}
	return min(q.Limit, MaxListLimit), nil
}

// Matches reports whether r passes the filters of q.
func (q ListQuery) Matches(r authz.Record) bool {
	return (q.Kind == "" || q.Kind == r.Kind) &&
		(q.Issuer == "" || q.Issuer == r.Issuer) &&
		(q.Value == "" || q.Value == r.Value)
}

// Stats is a source's view of its records.
type Stats struct {
	Records  int                `json:"records"`
	ByKind   map[authz.Kind]int `json:"by_kind"`
	Position uint64             `json:"position"`
}

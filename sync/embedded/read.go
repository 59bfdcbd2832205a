package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
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
)

// ctxCheckEvery is how many records Range, Snapshot and List visit between two
// looks at their context.
const ctxCheckEvery = 1024

// Lookup returns every record stored under key whose ExpiresAt is after now.
// It reads the key's index entry and then only the unexpired records.
func (s *Store) Lookup(ctx context.Context, key authz.LookupKey) ([]authz.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := timeKey(s.now())
	var out []authz.Record
	err := s.view(func(tx *bolt.Tx) error {
		records := tx.Bucket(bucketRecords)
		var derr error
		err := entries(tx.Bucket(bucketIndex).Get([]byte(key.String())), func(id []byte, exp uint64) bool {
			if exp <= now {
				return true
			}
			r, err := decodeRecord(string(id), records.Get(id))
			if err != nil {
				derr = err
				return false
			}
			out = append(out, r)
			return true
		})
		return errors.Join(err, derr)
	})
	if err != nil {
		return nil, fmt.Errorf("lookup %s %q: %w", key.Kind, key.Value, err)
	}
	return out, nil
}

// Get returns the record with that ID while it is unexpired; otherwise
// (an expired record, pruned or not) an error wrapping source.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (authz.Record, error) {
	if err := ctx.Err(); err != nil {
		return authz.Record{}, err
	}
	now := timeKey(s.now())
	var r authz.Record
	err := s.view(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketRecords).Get([]byte(id))
		if data == nil {
			return source.ErrNotFound
		}
		var err error
		if r, err = decodeRecord(id, data); err != nil {
			return err
		}
		if r.IsLift() || timeKey(r.ExpiresAt) <= now {
			return source.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return authz.Record{}, fmt.Errorf("get revocation %q: %w", id, err)
	}
	return r, nil
}

// Feed returns up to limit records (0 means DefaultFeedLimit) with a
// position after the given one, in position order, expired or not until
// Prune deletes them; pruned positions are skipped. With none there, it
// waits for the next Put, ctx (returning ctx.Err()) or Close (ErrClosed).
// A position beyond the store's newest is source.ErrPositionAhead: the
// caller read another store, or this one lost its file.
// A record that does not decode ends the answer: the records before it are
// returned, or, when it comes first, a *source.BadEntryError naming its
// position (and wrapping ErrCorrupt).
func (s *Store) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	return s.feed(ctx, after, limit, nil)
}

// AheadFeed is the store as the serving node's own follower reads it: a
// node enforces the records it writes at once (authz.Revocations.Enforce),
// ahead of its feed, and Feed gives the feed's copy of such a record as
// authz.AheadCopy, without decoding it: after a bulk import, most of what
// the follower reads back. Every other entry, including one whose position
// the node remembers under another ID (a store that lost data), is
// decoded as Feed does.
type AheadFeed struct {
	*Store
	Rev *authz.Revocations
}

// Feed is Store.Feed, with the records Rev enforced ahead as AheadCopy.
func (a AheadFeed) Feed(ctx context.Context, after uint64, limit int) ([]authz.Record, error) {
	return a.Store.feed(ctx, after, limit, a.Rev.EnforcedAhead)
}

// feed is Feed; an entry known (a record enforced ahead, by ID) comes as
// its authz.AheadCopy.
func (s *Store) feed(ctx context.Context, after uint64, limit int, known func(pos uint64, id []byte) bool) ([]authz.Record, error) {
	if limit <= 0 {
		limit = DefaultFeedLimit
	}
	for {
		// Take the wake channel before reading, so that a Put committed
		// after the read is not missed.
		s.mu.Lock()
		wake := s.wake
		s.mu.Unlock()
		recs, err := s.feedPage(after, limit, known)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		if err := s.waitPut(ctx, wake); err != nil {
			return nil, err
		}
	}
}

// waitPut waits until wake is closed (a Put), ctx ends or the store closes.
func (s *Store) waitPut(ctx context.Context, wake <-chan struct{}) error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return fmt.Errorf("feed: %w", ErrClosed)
	}
}

func (s *Store) feedPage(after uint64, limit int, known func(pos uint64, id []byte) bool) ([]authz.Record, error) {
	var out []authz.Record
	err := s.view(func(tx *bolt.Tx) error {
		feed := tx.Bucket(bucketFeed)
		top := feed.Sequence()
		if after > top {
			return fmt.Errorf("the store is at position %d: %w", top, source.ErrPositionAhead)
		}
		// Room for the page, within a bound: a large limit over a long
		// feed grows it as records come.
		out = make([]authz.Record, 0, min(uint64(limit), top-after, 4*DefaultFeedLimit))
		records := cursorGet{c: tx.Bucket(bucketRecords).Cursor()}
		return eachFeed(tx, after, func(pos uint64, id []byte) (bool, error) {
			data := records.get(id)
			if known != nil && data != nil && known(pos, id) {
				out = append(out, authz.AheadCopy(string(id), pos))
				return len(out) < limit, nil
			}
			r, err := decodeRecord(string(id), data)
			switch {
			case err == nil:
				out = append(out, r)
				return len(out) < limit, nil
			case len(out) > 0:
				return false, nil // the bad entry comes first next time
			}
			return false, &source.BadEntryError{Position: pos, Err: err} // view adds the path
		})
	})
	if err != nil {
		return nil, fmt.Errorf("feed after %d: %w", after, err)
	}
	return out, nil
}

// Range calls fn for every record unexpired at now, in position order, all
// within one read transaction, and returns the position that view reflects.
// fn must not write to the store. An error from fn ends the iteration and
// is returned as is.
func (s *Store) Range(ctx context.Context, now time.Time, fn func(authz.Record) error) (uint64, error) {
	var pos uint64
	var fnErr error
	nowKey := timeKey(now)
	err := s.view(func(tx *bolt.Tx) error {
		pos = tx.Bucket(bucketFeed).Sequence()
		records := cursorGet{c: tx.Bucket(bucketRecords).Cursor()}
		n := 0
		return eachFeed(tx, 0, func(_ uint64, id []byte) (bool, error) {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			r, err := decodeRecord(string(id), records.get(id))
			if err != nil {
				return false, err
			}
			if r.IsLift() || timeKey(r.ExpiresAt) <= nowKey {
				return true, nil
			}
			if err := callUser(fn, r); err != nil {
				fnErr = err
				return false, err
			}
			return true, nil
		})
	})
	var p userPanic
	switch {
	case errors.As(fnErr, &p):
		panic(p.v) // fn's own panic, not a damaged file: pass it on
	case fnErr != nil:
		return 0, fnErr
	case err != nil:
		return 0, fmt.Errorf("range revocations: %w", err)
	}
	return pos, nil
}

// userPanic carries a panic of a caller's callback out of a transaction,
// past the recovery that turns bbolt's panics into ErrCorrupt.
type userPanic struct{ v any }

func (p userPanic) Error() string { return fmt.Sprint("callback panicked: ", p.v) }

// callUser calls fn(r), turning a panic of fn into a userPanic error.
func callUser(fn func(authz.Record) error, r authz.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = userPanic{v}
		}
	}()
	return fn(r)
}

// Snapshot builds a filter sized by cfg holding the filter key of every
// record unexpired now, at the store's current position, from one read
// transaction. It reads only the index, never record JSON.
func (s *Store) Snapshot(ctx context.Context, cfg bloom.Config) (*bloom.Filter, error) {
	f, err := bloom.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	now := timeKey(s.now())
	err = s.view(func(tx *bolt.Tx) error {
		pos := tx.Bucket(bucketFeed).Sequence()
		return f.Rebuild(cfg, pos, func(add func(bloom.Key)) error {
			c := tx.Bucket(bucketIndex).Cursor()
			n := 0
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if n++; n%ctxCheckEvery == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				live := false
				if err := entries(v, func(_ []byte, exp uint64) bool {
					live = exp > now
					return !live
				}); err != nil {
					return err
				}
				if live {
					add(bloom.KeyOf(k))
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return f, nil
}

// List returns the unexpired records matching q in position order, and the
// cursor of the next page, "" when there is none. A cursor this store did
// not issue yields ErrInvalidCursor.
func (s *Store) List(ctx context.Context, q source.ListQuery) ([]authz.Record, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
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
	now := timeKey(s.now())
	var out []authz.Record
	next := ""
	err = s.view(func(tx *bolt.Tx) error {
		records := cursorGet{c: tx.Bucket(bucketRecords).Cursor()}
		n := 0
		return eachFeed(tx, after, func(_ uint64, id []byte) (bool, error) {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			r, err := decodeRecord(string(id), records.get(id))
			if err != nil {
				return false, err
			}
			if r.IsLift() || !q.Matches(r) || timeKey(r.ExpiresAt) <= now {
				return true, nil
			}
			if len(out) == limit {
				next = encodeCursor(out[len(out)-1].Position)
				return false, nil
			}
			out = append(out, r)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("list revocations: %w", err)
	}
	return out, next, nil
}

// Stats reports the unexpired records, their count by kind, and the newest
// position. The stored counts include expired records until Prune deletes
// them, so it subtracts those, visiting only them (the expiry index up to
// now).
func (s *Store) Stats(ctx context.Context) (source.Stats, error) {
	if err := ctx.Err(); err != nil {
		return source.Stats{}, err
	}
	now := timeKey(s.now())
	st := source.Stats{ByKind: make(map[authz.Kind]int)}
	err := s.view(func(tx *bolt.Tx) error {
		st.Position = tx.Bucket(bucketFeed).Sequence()
		prefix := []byte(countPrefix)
		c := tx.Bucket(bucketMeta).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != 8 {
				return fmt.Errorf("%w: count %s of %d bytes", ErrCorrupt, k, len(v))
			}
			st.ByKind[authz.Kind(k[len(prefix):])] = int(binary.BigEndian.Uint64(v))
		}
		records := tx.Bucket(bucketRecords)
		ec := tx.Bucket(bucketExpiry).Cursor()
		n := 0
		for k, v := ec.First(); k != nil; k, v = ec.Next() {
			if len(k) != 16 {
				return fmt.Errorf("%w: expiry pack key of %d bytes", ErrCorrupt, len(k))
			}
			if binary.BigEndian.Uint64(k) > now {
				break
			}
			var derr error
			err := entries(v, func(id []byte, exp uint64) bool {
				if exp > now {
					return true
				}
				if n++; n%ctxCheckEvery == 0 {
					if derr = ctx.Err(); derr != nil {
						return false
					}
				}
				data := records.Get(id)
				if data == nil {
					return true // lifted: the lift entry's kind counts nothing
				}
				r, err := decodeRecord(string(id), data)
				if err != nil {
					derr = err
					return false
				}
				if !r.IsLift() {
					st.ByKind[r.Kind]--
				}
				return true
			})
			if err := errors.Join(err, derr); err != nil {
				return err
			}
		}
		for kind, n := range st.ByKind {
			if n <= 0 {
				delete(st.ByKind, kind)
				continue
			}
			st.Records += n
		}
		return nil
	})
	if err != nil {
		return source.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

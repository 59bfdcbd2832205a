package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Store keeps a trail. Implementations: the embedded store's audit bucket
// and the Redis source's audit stream.
type Store interface {
	// Append links e after the current head (see Seal) and stores it,
	// atomically with respect to every other appender of the same trail,
	// and returns it as stored.
	Append(ctx context.Context, e Entry) (Entry, error)
	// Head returns the head as the store keeps it, apart from the entries.
	Head(ctx context.Context) (Head, error)
	// Scan calls fn with the stored entries, oldest first, starting after
	// the position after ("" for the oldest kept), until fn returns false.
	// An after that the store did not issue is ErrInvalidCursor.
	Scan(ctx context.Context, after string, fn func(Stored) bool) error
	// Trims reports whether the store drops its oldest entries
	// (retention), so that a trail may start after seq 1.
	Trims() bool
}

// Stored is an entry as a store holds it: its position (a List cursor)
// and the entry, or why it does not decode.
type Stored struct {
	Pos   string
	Entry Entry
	Err   error
}

// Log is a trail over a Store: it records, lists and verifies.
type Log struct {
	store Store
	node  string
	now   func() time.Time
}

// Option configures a Log.
type Option func(*Log)

// WithNode sets the Node of entries recorded without one (default: the
// host name).
func WithNode(node string) Option { return func(l *Log) { l.node = node } }

// WithClock sets the clock that fills Time (default time.Now).
func WithClock(now func() time.Time) Option { return func(l *Log) { l.now = now } }

// NewLog returns the trail kept in s.
func NewLog(s Store, opts ...Option) *Log {
	l := &Log{store: s, now: time.Now}
	if h, err := os.Hostname(); err == nil {
		l.node = h
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

var _ Recorder = (*Log)(nil)

// Record appends e, with Time and Node filled when zero, and every field
// bounded (see Bound).
func (l *Log) Record(ctx context.Context, e Entry) error {
	_, err := l.Append(ctx, e)
	return err
}

// Append is Record, returning the entry as stored.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if e.Kind == "" {
		return Entry{}, errors.New("audit: entry without a kind")
	}
	stored, err := l.store.Append(ctx, l.Prepare(e))
	if err != nil {
		return Entry{}, fmt.Errorf("audit: record %s: %w", e.Kind, err)
	}
	return stored, nil
}

// Prepare returns e as Record stores it, before it is sealed: Time and
// Node filled when zero, every field bounded. A store that appends entries
// in the same transaction as the change they describe (see Store) takes
// entries prepared by the Log.
func (l *Log) Prepare(e Entry) Entry {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	if e.Node == "" {
		e.Node = l.node
	}
	return Bound(e)
}

// Store returns the store the Log keeps its trail in.
func (l *Log) Store() Store { return l.store }

// Query selects entries for List.
type Query struct {
	// Since keeps entries at or after this time (zero: all).
	Since time.Time
	// Actor and Kind keep entries with exactly this actor or kind ("": all).
	Actor string
	Kind  Kind
	// Cursor continues a listing where the last page ended ("": from the
	// oldest entry kept).
	Cursor string
	// Limit bounds the entries of a page: 1 to MaxListLimit, 0 means
	// DefaultListLimit.
	Limit int
}

// Page bounds of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
	// maxScan bounds the entries one List call reads, matching or not, so
	// that a narrow filter over a long trail answers in bounded time: the
	// page may then be short, with a cursor to go on.
	maxScan = 50_000
)

// List returns one page of the entries matching q, oldest first, and the
// cursor of the next page ("" when the trail has been read to its end).
// Entries that do not decode are left out (Verify names them).
func (l *Log) List(ctx context.Context, q Query) ([]Entry, string, error) {
	if q.Limit == 0 {
		q.Limit = DefaultListLimit
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return nil, "", fmt.Errorf("audit: limit %d: want 1 to %d", q.Limit, MaxListLimit)
	}
	var out []Entry
	next, scanned := "", 0
	err := l.store.Scan(ctx, q.Cursor, func(s Stored) bool {
		scanned++
		next = s.Pos
		if s.Err == nil && q.match(s.Entry) {
			out = append(out, s.Entry)
		}
		return len(out) < q.Limit && scanned < maxScan
	})
	if err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	if len(out) < q.Limit && scanned < maxScan {
		next = "" // the scan reached the end
	}
	return out, next, nil
}

func (q Query) match(e Entry) bool {
	return (q.Since.IsZero() || !e.Time.Before(q.Since)) &&
		(q.Actor == "" || e.Actor == q.Actor) &&
		(q.Kind == "" || e.Kind == q.Kind)
}

package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// writeBadEntry writes, as a faulty writer would, feed entry pos with
// fields and moves seq to it. With rec, it also stores rec (ID set) as Put
// does, so that only its feed entry is bad.
func writeBadEntry(t *testing.T, s *Source, c *goredis.Client, pos uint64, fields map[string]any, rec *authz.Record) {
	t.Helper()
	ctx := ctxT(t)
	if rec != nil {
		rec.Position = pos
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		exp := float64(rec.ExpiresAt.UnixMilli())
		if err := c.Set(ctx, s.k.rec(rec.ID), data, time.Until(rec.ExpiresAt)).Err(); err != nil {
			t.Fatal(err)
		}
		c.ZAdd(ctx, s.k.idx(rec.LookupKey()), goredis.Z{Score: exp, Member: rec.ID})
		c.ZAdd(ctx, s.k.live(rec.Kind), goredis.Z{Score: exp, Member: rec.ID})
	}
	if err := c.XAdd(ctx, &goredis.XAddArgs{Stream: s.k.feed(), ID: streamID(pos), Values: fields}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, s.k.seq(), pos, 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestFeedBadEntry: Feed returns the good records before an entry that
// does not decode, then a BadEntryError naming its position.
func TestFeedBadEntry(t *testing.T) {
	s, srv := newSource(t, Options{})
	good := put(t, s, token("https://idp", "good", time.Hour))
	writeBadEntry(t, s, client(t, srv), 2, map[string]any{"r": "{not json"}, nil)
	recs, err := s.Feed(ctxT(t), 0, 0)
	if err != nil || len(recs) != 1 || recs[0].ID != good[0].ID {
		t.Fatalf("Feed(0) = %v, %v; want the good record before the bad entry", ids(recs), err)
	}
	var bad *source.BadEntryError
	if _, err := s.Feed(ctxT(t), 1, 0); !errors.As(err, &bad) || bad.Position != 2 || !errors.Is(err, source.ErrBadEntry) {
		t.Fatalf("Feed(1) = %v, want a BadEntryError at position 2", err)
	}
}

// TestFollowerGoesPastABadFeedEntry: one malformed feed entry used to stall
// every follower, retried forever at WARN while it reported no lag. It must
// be counted, logged, skipped after a reload from the source's records
// (which recovers its record when only the entry is bad), and later
// revocations must still arrive.
func TestFollowerGoesPastABadFeedEntry(t *testing.T) {
	valid := func() string {
		r := token("https://idp", "x", time.Hour)
		r.ID, r.Position = "0123456789abcdef0123456789abcdef", 7
		b, _ := json.Marshal(r)
		return string(b)
	}()
	tests := []struct {
		name   string
		fields map[string]any
		stored bool // the entry's record is stored, only its entry is bad
	}{
		{"no record field", map[string]any{"x": "y"}, false},
		{"record is not JSON", map[string]any{"r": "{not json"}, false},
		{"record of another position", map[string]any{"r": valid}, false},
		{"bad entry of a stored record", map[string]any{"r": "\x00garbled"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, srv := newSource(t, Options{})
			writer := openSource(t, srv.URL(), Options{})
			first := put(t, writer, token("https://idp", "first", time.Hour))
			var logs syncBuffer
			f, rev := newFollowerLogging(t, s, slog.New(slog.NewTextHandler(&logs, nil)))
			if err := f.Start(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			runFollower(t, f)
			waitFor(t, 10*time.Second, "the follower is at the first record", func() bool { return f.Position() == 1 })

			var lost *authz.Record
			if tt.stored {
				r := subject("carol")
				r.ID, r.CreatedAt = "fedcba9876543210fedcba9876543210", time.Now()
				lost = &r
			}
			writeBadEntry(t, s, client(t, srv), 2, tt.fields, lost)
			later := put(t, writer, token("https://idp", "later", time.Hour))
			if later[0].Position != 3 {
				t.Fatalf("the Put after the bad entry got position %d, want 3", later[0].Position)
			}
			waitFor(t, 10*time.Second, "the follower applies the revocation after the bad entry", func() bool { return f.Position() == 3 })
			checkHolds(t, rev.Filter(), append(first, later...))
			if n := f.BadEntries(); n != 1 {
				t.Errorf("BadEntries = %d, want 1", n)
			}
			if !strings.Contains(logs.String(), `level=ERROR msg="revocation feed entry does not decode`) {
				t.Errorf("no ERROR log for the bad entry:\n%s", logs.String())
			}
			if lost != nil && !rev.Filter().MayContain(lost.LookupKey().FilterKey()) {
				t.Error("the record whose feed entry was bad is not enforced after the reload")
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

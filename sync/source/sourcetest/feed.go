package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

func (s *suite) feedCases() []testCase {
	return []testCase{
		{"OrderAfterLimit", s.feedOrder},
		{"WaitsForPut", s.feedWaits},
		{"EndsWithContext", s.feedEndsWithContext},
		{"AheadOfSource", s.feedAhead},
		{"Trimmed", s.feedTrimmed},
	}
}

// feedOrder: Feed returns the records after a position, in position
// order, at most limit of them (0: the source's default), as Put returned
// them.
func (s *suite) feedOrder(t *testing.T) {
	src := s.open(t)
	var all []authz.Record
	for i := range 4 {
		all = append(all, put(t, src, token("https://idp", fmt.Sprint("a", i), time.Hour), token("https://idp", fmt.Sprint("b", i), time.Hour))...)
	}
	if !slices.Equal(positions(all), []uint64{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("positions of 4 Puts of 2 = %v, want 1 to 8", positions(all))
	}
	tests := []struct {
		name         string
		after        uint64
		limit        int
		first, count int // the records expected: all[first : first+count]
	}{
		{"from the start", 0, 0, 0, 8},
		{"limit", 0, 3, 0, 3},
		{"limit of one", 2, 1, 2, 1},
		{"middle of a batch", 3, 2, 3, 2},
		{"limit above what is there", 5, 100, 5, 3},
		{"the last one", 7, 10, 7, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := src.Feed(ctxT(t), tt.after, tt.limit)
			if err != nil {
				t.Fatalf("Feed(%d, %d): %v", tt.after, tt.limit, err)
			}
			checkSame(t, fmt.Sprintf("Feed(%d, %d)", tt.after, tt.limit), got, all[tt.first:tt.first+tt.count])
		})
	}
}

// feedWaits: with nothing after the position, Feed waits until a record
// arrives and returns it.
func (s *suite) feedWaits(t *testing.T) {
	src := s.open(t)
	put(t, src, token("https://idp", "first", time.Hour))
	ch := goFeed(ctxT(t), src, 1, 10)
	s.waitFeeding(t, src, ch)
	want := put(t, src, token("https://idp", "second", time.Hour), token("https://idp", "third", time.Hour))
	r := result(t, ch)
	if r.err != nil {
		t.Fatalf("waiting Feed: %v", r.err)
	}
	checkSame(t, "waiting Feed", r.recs, want)
}

// feedEndsWithContext: a waiting Feed ends with ctx.Err() and no records,
// and the source serves on.
func (s *suite) feedEndsWithContext(t *testing.T) {
	src := s.open(t)
	put(t, src, token("https://idp", "x", time.Hour))
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		recs, err := src.Feed(ctx, 1, 0)
		if !errors.Is(err, context.DeadlineExceeded) || recs != nil {
			t.Errorf("Feed past the newest position = %v, %v; want DeadlineExceeded", ids(recs), err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch := goFeed(ctx, src, 1, 0)
		s.waitFeeding(t, src, ch)
		cancel()
		if r := result(t, ch); !errors.Is(r.err, context.Canceled) || r.recs != nil {
			t.Errorf("Feed whose context is canceled = %v, %v; want Canceled", ids(r.recs), r.err)
		}
	})
	want := put(t, src, token("https://idp", "y", time.Hour))
	got, err := src.Feed(ctxT(t), 1, 0)
	if err != nil {
		t.Fatalf("Feed after a wait that ended: %v", err)
	}
	checkSame(t, "Feed after a wait that ended", got, want)
}

// feedAhead: a position beyond the newest is ErrPositionAhead (the source
// lost data or is another one), not a wait.
func (s *suite) feedAhead(t *testing.T) {
	src := s.open(t)
	// A source that waits instead fails at this deadline.
	ctx := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	if _, err := src.Feed(ctx(), 1, 0); !errors.Is(err, source.ErrPositionAhead) {
		t.Errorf("Feed(1) on an empty source = %v, want ErrPositionAhead", err)
	}
	put(t, src, token("https://idp", "x", time.Hour))
	for _, after := range []uint64{2, 7, 1 << 62, ^uint64(0)} {
		if _, err := src.Feed(ctx(), after, 0); !errors.Is(err, source.ErrPositionAhead) {
			t.Errorf("Feed(%d) at position 1 = %v, want ErrPositionAhead", after, err)
		}
	}
}

// feedTrimmed: once the feed no longer holds the records after a position,
// Feed from it is ErrFeedTrimmed; from the oldest retained entry on it
// serves.
func (s *suite) feedTrimmed(t *testing.T) {
	if s.h.Trim == nil {
		t.Skip("the source never trims its feed")
	}
	src := s.open(t)
	// Two Puts: a source may keep a Put's records in one entry, and trim
	// the feed only by whole entries.
	all := put(t, src, tokens("https://idp", "t", 5, time.Hour)...)
	all = append(all, put(t, src, tokens("https://idp", "u", 5, time.Hour)...)...)
	s.h.Trim(t, src, 5)
	for _, after := range []uint64{0, 1, 4} {
		if recs, err := src.Feed(ctxT(t), after, 0); !errors.Is(err, source.ErrFeedTrimmed) {
			t.Errorf("Feed(%d) with entries up to 5 trimmed = %v, %v; want ErrFeedTrimmed", after, positions(recs), err)
		}
	}
	got, err := src.Feed(ctxT(t), 5, 0)
	if err != nil {
		t.Fatalf("Feed(5) with entries up to 5 trimmed: %v", err)
	}
	checkSame(t, "Feed(5)", got, all[5:])
}

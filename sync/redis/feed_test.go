package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
	"github.com/jwtguard/jwtguard/sync/source"
)

func TestFeedOrderAndLimit(t *testing.T) {
	s, _ := newSource(t, Options{})
	var all []authz.Record
	for i := range 4 {
		batch := []authz.Record{token("https://idp", fmt.Sprint("a", i), time.Hour), token("https://idp", fmt.Sprint("b", i), time.Hour)}
		all = append(all, put(t, s, batch...)...)
	}
	tests := []struct {
		name  string
		after uint64
		limit int
		want  []uint64
	}{
		{"from the start", 0, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8}},
		{"limit", 0, 3, []uint64{1, 2, 3}},
		{"middle of a batch", 3, 2, []uint64{4, 5}},
		{"the last one", 7, 10, []uint64{8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := s.Feed(ctxT(t), tt.after, tt.limit)
			if err != nil {
				t.Fatalf("Feed(%d, %d): %v", tt.after, tt.limit, err)
			}
			if !slices.Equal(positions(recs), tt.want) {
				t.Errorf("positions = %v, want %v", positions(recs), tt.want)
			}
			for _, r := range recs {
				if want := all[r.Position-1]; r.ID != want.ID || r.Value != want.Value || !r.ExpiresAt.Equal(want.ExpiresAt) {
					t.Errorf("feed record %d = %+v, want %+v", r.Position, r, want)
				}
			}
		})
	}
}

func TestFeedWaitsForPutOfAnotherClient(t *testing.T) {
	s, srv := newSource(t, Options{})
	writer := openSource(t, srv.URL(), Options{})
	put(t, s, token("https://idp", "old", time.Hour))

	type result struct {
		recs []authz.Record
		err  error
	}
	got := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	go func() {
		recs, err := s.Feed(ctx, 1, 0)
		got <- result{recs, err}
	}()
	// Feed must wait in a blocking read (XREAD BLOCK on the server), not
	// return early nor poll.
	waitBlocked(t, srv)
	select {
	case r := <-got:
		t.Fatalf("Feed returned before any Put: %v, %v", ids(r.recs), r.err)
	default:
	}
	want := put(t, writer, token("https://idp", "new", time.Hour))
	r := <-got
	if r.err != nil {
		t.Fatalf("Feed: %v", r.err)
	}
	if !slices.Equal(ids(r.recs), ids(want)) {
		t.Errorf("Feed woke with %v, want %v", ids(r.recs), ids(want))
	}
}

func TestFeedEndsWithItsContext(t *testing.T) {
	s, _ := newSource(t, Options{})
	put(t, s, token("https://idp", "x", time.Hour))
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			recs, err := s.Feed(ctx, 1, 0)
			if !errors.Is(err, tt.want) || recs != nil {
				t.Errorf("Feed = %v, %v; want %v", recs, err, tt.want)
			}
		})
	}
	// The source still works after a wait ended by its context.
	put(t, s, token("https://idp", "y", time.Hour))
	if recs, err := s.Feed(ctxT(t), 1, 0); err != nil || len(recs) != 1 {
		t.Errorf("Feed after a cancelled one = %v, %v", recs, err)
	}
}

// waitBlocked waits until a client of srv is blocked in XREAD.
func waitBlocked(t testing.TB, srv *redistest.Server) {
	t.Helper()
	c := client(t, srv)
	waitFor(t, testTimeout, "a client blocks in XREAD", func() bool {
		list, err := c.ClientList(ctxT(t)).Result()
		if err != nil {
			return false
		}
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " cmd=xread") && strings.Contains(line, " flags=b") {
				return true
			}
		}
		return false
	})
}

func TestFeedEndsWithClose(t *testing.T) {
	s, srv := newSource(t, Options{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Feed(ctxT(t), 0, 0)
		done <- err
	}()
	waitBlocked(t, srv)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Feed after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Feed(ctxT(t), 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Feed on a closed source = %v, want ErrClosed", err)
	}
}

func TestFeedTrimmed(t *testing.T) {
	s, srv := newSource(t, Options{FeedRetention: 10})
	// MAXLEN ~ trims whole stream nodes (100 entries): put well past one.
	for i := range 5 {
		var batch []authz.Record
		for j := range 100 {
			batch = append(batch, token("https://idp", fmt.Sprint(i, "-", j), time.Hour))
		}
		put(t, s, batch...)
	}
	oldest := client(t, srv).XRangeN(ctxT(t), s.k.feed(), "-", "+", 1).Val()
	if len(oldest) == 0 {
		t.Fatal("feed is empty")
	}
	first, _ := parseStreamID(oldest[0].ID)
	if first <= 1 {
		t.Fatalf("feed was not trimmed (oldest entry %s); the test needs it trimmed", oldest[0].ID)
	}
	tests := []struct {
		name    string
		after   uint64
		trimmed bool
	}{
		{"from the start", 0, true},
		{"just before the oldest gone", first - 2, true},
		{"right before the oldest kept", first - 1, false},
		{"inside the kept part", 495, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := s.Feed(ctxT(t), tt.after, 0)
			switch {
			case tt.trimmed && !errors.Is(err, source.ErrFeedTrimmed):
				t.Errorf("Feed(%d) = %d records, %v; want ErrFeedTrimmed", tt.after, len(recs), err)
			case !tt.trimmed && (err != nil || len(recs) == 0 || recs[0].Position != tt.after+1):
				t.Errorf("Feed(%d) = %v, %v; want records from %d", tt.after, positions(recs), err, tt.after+1)
			}
		})
	}
	// A feed trimmed to nothing: every position after 0 is gone.
	if err := client(t, srv).XTrimMaxLen(ctxT(t), s.k.feed(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Feed(ctxT(t), 0, 0); !errors.Is(err, source.ErrFeedTrimmed) {
		t.Errorf("Feed(0) on an emptied feed = %v, want ErrFeedTrimmed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Feed(ctx, 500, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Feed(newest) on an emptied feed = %v, want to wait until the deadline", err)
	}
}

func TestFeedPositionAhead(t *testing.T) {
	s, _ := newSource(t, Options{})
	put(t, s, token("https://idp", "x", time.Hour))
	if _, err := s.Feed(ctxT(t), 7, 0); !errors.Is(err, ErrPositionAhead) {
		t.Errorf("Feed(7) at position 1 = %v, want ErrPositionAhead", err)
	}
}

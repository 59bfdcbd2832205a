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
	goredis "github.com/redis/go-redis/v9"
)

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

// waitBlocked waits until a client of srv is blocked in XREAD.
func waitBlocked(t testing.TB, srv *redistest.Server) {
	t.Helper()
	c := client(t, srv)
	waitFor(t, testTimeout, "a client blocks in XREAD", func() bool { return xreadBlocked(t, c) })
}

// xreadBlocked reports whether a client of c's server is blocked in XREAD.
func xreadBlocked(t testing.TB, c *goredis.Client) bool {
	t.Helper()
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
}

func TestFeedTrimmed(t *testing.T) {
	s, srv := newSource(t, Options{FeedRetention: 10})
	// MINID ~ trims whole stream nodes (100 entries), and a Put's records
	// share an entry: put well past one node, in Puts of 2.
	for i := range 250 {
		put(t, s, token("https://idp", fmt.Sprint(i, "-a"), time.Hour), token("https://idp", fmt.Sprint(i, "-b"), time.Hour))
	}
	oldest := client(t, srv).XRangeN(ctxT(t), s.k.feed(), "-", "+", 1).Val()
	if len(oldest) == 0 {
		t.Fatal("feed is empty")
	}
	first, _ := entryFirst(oldest[0])
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
	// An emptied feed gives the blocking read nothing to return: the trim
	// is found by the guard at the end of the idle slice, within maxBlock.
	emptied, cancelEmptied := context.WithTimeout(context.Background(), 3*maxBlock)
	defer cancelEmptied()
	if _, err := s.Feed(emptied, 0, 0); !errors.Is(err, source.ErrFeedTrimmed) {
		t.Errorf("Feed(0) on an emptied feed = %v, want ErrFeedTrimmed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Feed(ctx, 500, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Feed(newest) on an emptied feed = %v, want to wait until the deadline", err)
	}
}

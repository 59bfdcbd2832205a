package embedded

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

func TestFeedOrderAndLimit(t *testing.T) {
	s, c := newStore(t)
	recs := make([]authz.Record, 7)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Hour)
	}
	recs[2].ExpiresAt = t0.Add(time.Second)
	recs[3].ExpiresAt = t0.Add(time.Second)
	put(t, s, recs[:4]...)
	put(t, s, recs[4:]...)
	c.Set(t0.Add(time.Second))
	if _, err := s.Prune(c.Now()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		after uint64
		limit int
		want  []uint64
	}{
		{"from the start", 0, 0, []uint64{1, 2, 5, 6, 7}},
		{"limit", 0, 2, []uint64{1, 2}},
		{"skips pruned positions", 2, 1, []uint64{5}},
		{"after a pruned position", 3, 10, []uint64{5, 6, 7}},
		{"last one", 6, 10, []uint64{7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Feed(context.Background(), tt.after, tt.limit)
			if err != nil || !slices.Equal(positions(got), tt.want) {
				t.Errorf("Feed(%d, %d) = %v, %v; want %v", tt.after, tt.limit, positions(got), err, tt.want)
			}
		})
	}
}

func TestFeedDefaultLimit(t *testing.T) {
	s, _ := newStore(t)
	recs := make([]authz.Record, DefaultFeedLimit+1)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Hour)
	}
	put(t, s, recs...)
	got, err := s.Feed(context.Background(), 0, 0)
	if err != nil || len(got) != DefaultFeedLimit {
		t.Errorf("Feed(0, 0) returned %d records, %v; want %d", len(got), err, DefaultFeedLimit)
	}
}

// feedResult is what a Feed call running in a goroutine returned.
type feedResult struct {
	recs []authz.Record
	err  error
}

func goFeed(s *Store, ctx context.Context, after uint64) <-chan feedResult {
	ch := make(chan feedResult, 1)
	go func() {
		recs, err := s.Feed(ctx, after, 10)
		ch <- feedResult{recs, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan feedResult) feedResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Feed did not return within 10s")
		return feedResult{}
	}
}

func TestFeedWaitsForPut(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, token("i", "first", time.Hour))
	ch := goFeed(s, context.Background(), 1)
	select {
	case r := <-ch:
		t.Fatalf("Feed after the last position returned before any Put: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	want := put(t, s, token("i", "second", time.Hour))
	r := wait(t, ch)
	if r.err != nil || !slices.Equal(ids(r.recs), ids(want)) {
		t.Errorf("waiting Feed = %v, %v; want %v", ids(r.recs), r.err, ids(want))
	}
}

func TestFeedEnds(t *testing.T) {
	tests := []struct {
		name string
		end  func(s *Store, cancel context.CancelFunc)
		want error
	}{
		{"ctx canceled", func(_ *Store, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"store closed", func(s *Store, _ context.CancelFunc) { _ = s.Close() }, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch := goFeed(s, ctx, 0)
			tt.end(s, cancel)
			if r := wait(t, ch); !errors.Is(r.err, tt.want) || r.recs != nil {
				t.Errorf("Feed = %v, %v; want %v", r.recs, r.err, tt.want)
			}
		})
	}
}

func TestFeedDeadline(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Feed(ctx, 0, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Feed on an empty store = %v, want DeadlineExceeded", err)
	}
}

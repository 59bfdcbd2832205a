package embedded

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

// TestFeedSkipsPrunedPositions: Feed goes over the positions Prune left
// empty; the conformance suite checks the rest of Feed.
func TestFeedSkipsPrunedPositions(t *testing.T) {
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

// TestFeedAheadCountsPrunedPositions: a position whose record was pruned is
// still one the store reached, so Feed from it waits for the next Put;
// only a position the store never reached is ErrPositionAhead.
func TestFeedAheadCountsPrunedPositions(t *testing.T) {
	s, c := newStore(t)
	put(t, s, token("i", "kept", time.Hour), token("i", "gone-1", time.Second), token("i", "gone-2", time.Second))
	c.Set(t0.Add(time.Second))
	if n, err := s.Prune(c.Now()); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	for _, after := range []uint64{1, 2, 3} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		recs, err := s.Feed(ctx, after, 0)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Feed(%d) with positions 2 and 3 pruned = %v, %v; want a wait until the deadline", after, positions(recs), err)
		}
	}
	if _, err := s.Feed(context.Background(), 4, 0); !errors.Is(err, source.ErrPositionAhead) {
		t.Errorf("Feed(4) at position 3 = %v, want ErrPositionAhead", err)
	}
}

package embedded

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// t0 is the tests' "now".
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// openAt opens a store in dir whose clock reads c, closed at the end of the test.
func openAt(t testing.TB, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, Options{Now: c.Now, OpenTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newStore opens a store in a fresh directory with its clock at t0.
func newStore(t testing.TB) (*Store, *clock) {
	t.Helper()
	c := &clock{t: t0}
	return openAt(t, t.TempDir(), c), c
}

// token returns a token record expiring ttl after t0.
func token(iss, jti string, ttl time.Duration) authz.Record {
	return authz.Record{Kind: authz.KindToken, Issuer: iss, Value: jti, Reason: "test", ExpiresAt: t0.Add(ttl)}
}

func put(t testing.TB, s *Store, recs ...authz.Record) []authz.Record {
	t.Helper()
	out, err := s.Put(context.Background(), recs)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return out
}

func ids(recs []authz.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func positions(recs []authz.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

func stats(t testing.TB, s *Store) source.Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func TestReopenKeepsRecordsAndPositions(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	s := openAt(t, dir, c)
	first := put(t, s, token("i", "a", time.Hour), token("i", "b", time.Minute), token("i", "c", time.Minute))
	c.Set(t0.Add(time.Minute))
	if n, err := s.Prune(c.Now()); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2 (the newest records included)", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, dir, c)
	got, err := s.Get(context.Background(), first[0].ID)
	if err != nil || got.Value != "a" {
		t.Fatalf("Get after reopen = %+v, %v", got, err)
	}
	if st := stats(t, s); st.Records != 1 || st.Position != 3 {
		t.Errorf("Stats after reopen = %+v, want 1 record at position 3", st)
	}
	more := put(t, s, token("i", "d", time.Hour))
	if more[0].Position != 4 {
		t.Errorf("position after reopen = %d, want 4 (pruned positions are never reused)", more[0].Position)
	}
}

func TestPrune(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	recs := put(t, s,
		token("i", "gone-1", time.Second),
		token("i", "kept", 3*time.Second),
		token("i", "shared", time.Second),
		token("i", "shared", 3*time.Second),
		token("i", "gone-2", 2*time.Second),
	)
	c.Set(t0.Add(2 * time.Second))
	// Before Prune, the reads already leave out the expired records (the
	// one expiring at exactly now included).
	if got, _ := s.Lookup(ctx, recs[0].LookupKey()); len(got) != 0 {
		t.Errorf("Lookup of an expired record = %v, want nothing", got)
	}
	if got, _ := s.Lookup(ctx, recs[2].LookupKey()); !slices.Equal(ids(got), []string{recs[3].ID}) {
		t.Errorf("Lookup(shared) = %v, want only the live record", ids(got))
	}
	for _, r := range []authz.Record{recs[0], recs[2], recs[4]} {
		if _, err := s.Get(ctx, r.ID); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("Get(expired %s) before Prune = %v, want ErrNotFound", r.Value, err)
		}
	}
	if got, _, err := s.List(ctx, source.ListQuery{}); err != nil || !slices.Equal(ids(got), []string{recs[1].ID, recs[3].ID}) {
		t.Errorf("List before Prune = %v, %v; want the 2 live records", ids(got), err)
	}
	if st := stats(t, s); st.Records != 2 || st.ByKind[authz.KindToken] != 2 || st.Position != 5 {
		t.Errorf("Stats before Prune = %+v, want the 2 live records", st)
	}

	n, err := s.Prune(c.Now())
	if err != nil || n != 3 {
		t.Fatalf("Prune = %d, %v; want 3", n, err)
	}
	for _, r := range []authz.Record{recs[0], recs[2], recs[4]} {
		if _, err := s.Get(ctx, r.ID); !errors.Is(err, source.ErrNotFound) {
			t.Errorf("Get(pruned %s) error = %v, want ErrNotFound", r.Value, err)
		}
	}
	for _, r := range []authz.Record{recs[1], recs[3]} {
		got, err := s.Lookup(ctx, r.LookupKey())
		if err != nil || !slices.Equal(ids(got), []string{r.ID}) {
			t.Errorf("Lookup(%s) after Prune = %v, %v; want [%s]", r.Value, ids(got), err, r.ID)
		}
	}
	if st := stats(t, s); st.Records != 2 || st.ByKind[authz.KindToken] != 2 || st.Position != 5 {
		t.Errorf("Stats after Prune = %+v", st)
	}
	if n, err := s.Prune(c.Now()); err != nil || n != 0 {
		t.Errorf("second Prune = %d, %v; want 0", n, err)
	}
}

func TestPruneManyBatches(t *testing.T) {
	defer func(n int) { pruneBatch = n }(pruneBatch)
	pruneBatch = 100
	s, _ := newStore(t)
	recs := make([]authz.Record, 2*pruneBatch+5)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Second)
	}
	recs[7].ExpiresAt = t0.Add(time.Hour)
	put(t, s, recs...)
	n, err := s.Prune(t0.Add(time.Second))
	if err != nil || n != len(recs)-1 {
		t.Fatalf("Prune = %d, %v; want %d", n, err, len(recs)-1)
	}
	if st := stats(t, s); st.Records != 1 {
		t.Errorf("Stats after Prune = %+v, want 1 record", st)
	}
}

func TestSecondOpenIsInUse(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, &clock{t: t0})
	s, err := Open(dir, Options{OpenTimeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrInUse) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("second Open error = %v, want ErrInUse", err)
	}
}

// TestPutRefusesExpiryAtNow: an ExpiresAt at the store's now is expired
// already, whatever the CreatedAt.
func TestPutRefusesExpiryAtNow(t *testing.T) {
	s, _ := newStore(t)
	r := authz.Record{Kind: authz.KindKey, Value: "k", CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0}
	if out, err := s.Put(context.Background(), []authz.Record{r}); !errors.Is(err, authz.ErrInvalidRecord) {
		t.Errorf("Put of a record expiring at now = %v, %v; want ErrInvalidRecord", ids(out), err)
	}
	r.ExpiresAt = t0.Add(time.Nanosecond)
	put(t, s, r)
}

// TestStatsWithManyExpired: Stats subtracts every expired record not yet
// pruned, across more than one context check.
func TestStatsWithManyExpired(t *testing.T) {
	s, c := newStore(t)
	recs := make([]authz.Record, 2*ctxCheckEvery+3)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Second)
	}
	recs[5] = authz.Record{Kind: authz.KindKey, Value: "k", ExpiresAt: t0.Add(time.Hour)}
	put(t, s, recs...)
	c.Set(t0.Add(time.Second))
	st := stats(t, s)
	if st.Records != 1 || fmt.Sprint(st.ByKind) != "map[key:1]" || st.Position != uint64(len(recs)) {
		t.Errorf("Stats = %+v, want the one key record at position %d", st, len(recs))
	}
}

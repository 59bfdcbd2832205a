package embedded

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestPutAssignsIDPositionCreatedAt(t *testing.T) {
	s, _ := newStore(t)
	created := t0.Add(-time.Hour)
	in := []authz.Record{
		token("https://idp", "a", time.Hour),
		{Kind: authz.KindSubject, Value: "alice", Before: t0, CreatedAt: created, ExpiresAt: t0.Add(time.Hour)},
		{Kind: authz.KindKey, Value: "kid-1", ID: "caller-id", Position: 99, ExpiresAt: t0.Add(time.Hour)},
	}
	out := put(t, s, in...)
	if len(out) != len(in) {
		t.Fatalf("Put returned %d records, want %d", len(out), len(in))
	}
	seen := map[string]bool{}
	for i, r := range out {
		if !hexID.MatchString(r.ID) || seen[r.ID] {
			t.Errorf("record %d: ID %q is not a fresh 32-digit hex ID", i, r.ID)
		}
		seen[r.ID] = true
		if want := uint64(i + 1); r.Position != want {
			t.Errorf("record %d: Position = %d, want %d", i, r.Position, want)
		}
	}
	if !out[0].CreatedAt.Equal(t0) {
		t.Errorf("zero CreatedAt became %v, want the clock's %v", out[0].CreatedAt, t0)
	}
	if !out[1].CreatedAt.Equal(created) {
		t.Errorf("given CreatedAt became %v, want it kept (%v)", out[1].CreatedAt, created)
	}
	if in[0].ID != "" || !in[0].CreatedAt.IsZero() {
		t.Errorf("Put modified its input: %+v", in[0])
	}
}

func TestPutThenRead(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	recs := put(t, s,
		token("https://idp", "jti-1", time.Hour),
		token("https://idp", "jti-2", time.Hour),
		authz.Record{Kind: authz.KindSession, Issuer: "https://idp", Value: "sid-1", ExpiresAt: t0.Add(time.Hour)},
		authz.Record{Kind: authz.KindSubject, Issuer: "https://idp", Value: "alice", Before: t0, ExpiresAt: t0.Add(time.Hour)},
		authz.Record{Kind: authz.KindKey, Value: "kid-1", ExpiresAt: t0.Add(time.Hour)},
		authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://other", Before: t0, ExpiresAt: t0.Add(time.Hour)},
	)

	for _, want := range recs {
		got, err := s.Lookup(ctx, want.LookupKey())
		if err != nil {
			t.Fatalf("Lookup(%v): %v", want.LookupKey(), err)
		}
		if len(got) != 1 || got[0].ID != want.ID || !got[0].ExpiresAt.Equal(want.ExpiresAt) || got[0].Reason != want.Reason {
			t.Errorf("Lookup(%v) = %+v, want [%+v]", want.LookupKey(), got, want)
		}
		one, err := s.Get(ctx, want.ID)
		if err != nil || one.ID != want.ID || one.Position != want.Position || one.Kind != want.Kind {
			t.Errorf("Get(%s) = %+v, %v; want %+v", want.ID, one, err, want)
		}
	}
	// The subject record is looked up by value alone, whatever its issuer.
	if got, _ := s.Lookup(ctx, authz.LookupKey{Kind: authz.KindSubject, Value: "alice"}); len(got) != 1 {
		t.Errorf("subject lookup without issuer found %d records, want 1", len(got))
	}
	for _, key := range []authz.LookupKey{
		{Kind: authz.KindToken, Issuer: "https://idp", Value: "jti-3"},
		{Kind: authz.KindToken, Issuer: "https://other", Value: "jti-1"},
		{Kind: authz.KindSession, Issuer: "https://idp", Value: "jti-1"},
	} {
		if got, err := s.Lookup(ctx, key); err != nil || len(got) != 0 {
			t.Errorf("Lookup(%v) = %v, %v; want nothing", key, got, err)
		}
	}
	if _, err := s.Get(ctx, "0123456789abcdef0123456789abcdef"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
	}

	list, next, err := s.List(ctx, source.ListQuery{})
	if err != nil || next != "" || !slices.Equal(ids(list), ids(recs)) {
		t.Errorf("List() = %v, %q, %v; want all %v", ids(list), next, err, ids(recs))
	}
	st := stats(t, s)
	want := source.Stats{Records: 6, Position: 6, ByKind: map[authz.Kind]int{
		authz.KindToken: 2, authz.KindSession: 1, authz.KindSubject: 1, authz.KindKey: 1, authz.KindIssuerBefore: 1,
	}}
	if st.Records != want.Records || st.Position != want.Position || fmt.Sprint(st.ByKind) != fmt.Sprint(want.ByKind) {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func TestLookupSeveralRecordsUnderOneKey(t *testing.T) {
	s, c := newStore(t)
	recs := put(t, s,
		token("https://idp", "x", time.Minute),
		token("https://idp", "x", time.Hour),
		token("https://idp", "y", time.Hour),
		token("https://idp", "x", 2*time.Hour),
	)
	key := recs[0].LookupKey()
	got, err := s.Lookup(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{recs[0].ID, recs[1].ID, recs[3].ID}; !slices.Equal(ids(got), want) {
		t.Errorf("Lookup = %v, want %v", ids(got), want)
	}
	c.Set(t0.Add(time.Minute)) // recs[0] expires: ExpiresAt is no longer after now
	got, _ = s.Lookup(context.Background(), key)
	if want := []string{recs[1].ID, recs[3].ID}; !slices.Equal(ids(got), want) {
		t.Errorf("Lookup after the first expired = %v, want %v", ids(got), want)
	}
}

func TestPutInvalidStoresNothing(t *testing.T) {
	good := token("https://idp", "good", time.Hour)
	tests := []struct {
		name string
		bad  authz.Record
	}{
		{"no kind", authz.Record{Issuer: "i", Value: "v", ExpiresAt: t0.Add(time.Hour)}},
		{"unknown kind", authz.Record{Kind: "user", Value: "v", ExpiresAt: t0.Add(time.Hour)}},
		{"token without issuer", authz.Record{Kind: authz.KindToken, Value: "v", ExpiresAt: t0.Add(time.Hour)}},
		{"subject without before", authz.Record{Kind: authz.KindSubject, Value: "alice", ExpiresAt: t0.Add(time.Hour)}},
		{"no expiry", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "v"}},
		{"expiry before creation", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "v", CreatedAt: t0, ExpiresAt: t0.Add(-time.Second)}},
		{"expiry at creation", authz.Record{Kind: authz.KindToken, Issuer: "i", Value: "v", ExpiresAt: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			ctx := context.Background()
			out, err := s.Put(ctx, []authz.Record{good, tt.bad})
			if !errors.Is(err, authz.ErrInvalidRecord) {
				t.Fatalf("Put([good, bad]) = %v, %v; want ErrInvalidRecord", out, err)
			}
			if st := stats(t, s); st.Records != 0 || st.Position != 0 {
				t.Errorf("Stats after a refused Put = %+v, want nothing stored", st)
			}
			if got, _ := s.Lookup(ctx, good.LookupKey()); len(got) != 0 {
				t.Errorf("good record of a refused Put is visible: %v", got)
			}
			if got, _, _ := s.List(ctx, source.ListQuery{}); len(got) != 0 {
				t.Errorf("List after a refused Put = %v", got)
			}
		})
	}
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
	// Before Prune, Lookup already ignores the expired records.
	if got, _ := s.Lookup(ctx, recs[0].LookupKey()); len(got) != 0 {
		t.Errorf("Lookup of an expired record = %v, want nothing", got)
	}
	if got, _ := s.Lookup(ctx, recs[2].LookupKey()); !slices.Equal(ids(got), []string{recs[3].ID}) {
		t.Errorf("Lookup(shared) = %v, want only the live record", ids(got))
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

func TestClosedStore(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, []authz.Record{token("i", "a", time.Hour)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close error = %v, want ErrClosed", err)
	}
	if _, err := s.Lookup(ctx, authz.LookupKey{Kind: authz.KindKey, Value: "k"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Lookup after Close error = %v, want ErrClosed", err)
	}
}

package redis

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/sync/redis/redistest"
)

// TestScopeStore: summaries of several nodes are found under each of
// their indexes, expire with their tokens, and the keys carry a TTL.
func TestScopeStore(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Now()
	s, err := New(srv.URL(), Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	st := s.Scope()
	ctx := context.Background()
	live := ScopeSummary{Key: "k1", Data: []byte(`{"n":1}`), Indexes: []string{"", "subject:alice"}, Expiry: now.Add(time.Hour)}
	short := ScopeSummary{Key: "k2", Data: []byte(`{"n":2}`), Indexes: []string{"", "subject:bob"}, Expiry: now.Add(time.Minute)}
	if err := st.Put(ctx, "node-a", []ScopeSummary{live, short}); err != nil {
		t.Fatal(err)
	}
	live.Data = []byte(`{"n":3}`)
	if err := st.Put(ctx, "node-b", []ScopeSummary{live}); err != nil {
		t.Fatal(err)
	}
	find := func(index string) []string {
		t.Helper()
		blobs, err := st.Find(ctx, index, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range blobs {
			out = append(out, string(b))
		}
		slices.Sort(out)
		return out
	}
	if got := find("subject:alice"); !slices.Equal(got, []string{`{"n":1}`, `{"n":3}`}) {
		t.Errorf("alice: %v", got)
	}
	if got := find(""); len(got) != 3 {
		t.Errorf("all: %v", got)
	}
	for _, k := range []string{st.tok("k1"), st.idx(""), st.idx("subject:alice")} {
		if ttl := s.rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour+time.Second {
			t.Errorf("%s: TTL %v, want about an hour", k, ttl)
		}
	}
	now = now.Add(2 * time.Minute) // k2's token has expired
	if got := find("subject:bob"); len(got) != 0 {
		t.Errorf("an expired token's summary is still found: %v", got)
	}
	if got := find("subject:nobody"); len(got) != 0 {
		t.Errorf("unknown index: %v", got)
	}
}

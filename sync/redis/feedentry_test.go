package redis

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// sameRecords fails unless got and want hold the same records (every
// field, times by instant), in order.
func sameRecords(t *testing.T, what string, got, want []authz.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records %v, want %d %v", what, len(got), positions(got), len(want), positions(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Kind != w.Kind || g.Issuer != w.Issuer || g.Value != w.Value || g.Reason != w.Reason ||
			g.Actor != w.Actor || g.Position != w.Position || g.MaxAgeSeconds != w.MaxAgeSeconds || g.Lifts != w.Lifts ||
			!g.Before.Equal(w.Before) || !g.CreatedAt.Equal(w.CreatedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
			t.Fatalf("%s: record %d = %+v, want %+v", what, i, g, w)
		}
	}
}

// TestBatchEntryRoundTrip: a batch entry gives back every field of its
// records, the ones that share everything but ID, value and expiry and the
// ones that do not (stored whole), whatever the precision of the expiry.
func TestBatchEntryRoundTrip(t *testing.T) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	created := time.Date(2029, 1, 1, 0, 0, 0, 0, time.FixedZone("X", 3600))
	tok := func(id, v string, exp time.Time) authz.Record {
		return authz.Record{ID: id, Kind: authz.KindToken, Issuer: "https://idp", Value: v, Reason: "leak", Actor: "ops", CreatedAt: created, ExpiresAt: exp}
	}
	tests := []struct {
		name     string
		recs     []authz.Record
		outliers int
		unit     int64
	}{
		{"seconds", []authz.Record{tok("a", "1", base), tok("b", "2", base.Add(time.Hour))}, 0, int64(time.Second)},
		{"milliseconds", []authz.Record{tok("a", "1", base), tok("b", "2", base.Add(time.Millisecond))}, 0, int64(time.Millisecond)},
		{"nanoseconds", []authz.Record{tok("a", "1", base.Add(time.Nanosecond)), tok("b", "2", base)}, 0, 0},
		{"odd characters", []authz.Record{tok("a", "\"quoted\" \\ \u2028 é", base), tok("b", "", base)}, 0, int64(time.Second)},
		{"another kind and reason", []authz.Record{
			tok("a", "1", base),
			{ID: "b", Kind: authz.KindSubject, Value: "alice", Reason: "fired", CreatedAt: created, ExpiresAt: base},
			tok("c", "3", base),
			{ID: "d", Kind: authz.KindIssuerBefore, Issuer: "https://idp", Before: base.Add(-time.Hour), Reason: "leak", Actor: "ops", CreatedAt: created, ExpiresAt: base},
		}, 2, int64(time.Second)},
		{"far expiry", []authz.Record{tok("a", "1", base), tok("b", "2", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))}, 1, int64(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := encodeBatch(tt.recs)
			if err != nil {
				t.Fatal(err)
			}
			var e batchEntry
			if err := json.Unmarshal(data, &e); err != nil {
				t.Fatal(err)
			}
			if len(e.O) != tt.outliers || e.U != tt.unit {
				t.Errorf("entry has %d outliers and unit %d, want %d and %d: %s", len(e.O), e.U, tt.outliers, tt.unit, data)
			}
			got, err := decodeBatch(string(data), 7, 7+uint64(len(tt.recs))-1)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Clone(tt.recs)
			for i := range want {
				want[i].Position = 7 + uint64(i)
			}
			sameRecords(t, "decoded", got, want)
		})
	}
}

// TestBatchEntryRefusesMalformed: a payload that does not add up is an
// error, never records made up from it.
func TestBatchEntryRefusesMalformed(t *testing.T) {
	good := `{"v":1,"c":{"kind":"token","issuer":"i"},"i":["a","b"],"k":["1","2"],"u":1000000000,"x":[1900000000,1900000001]}`
	if _, err := decodeBatch(good, 3, 4); err != nil {
		t.Fatalf("the good payload: %v", err)
	}
	tests := []struct {
		name        string
		data        string
		first, last uint64
	}{
		{"not json", "{", 3, 4},
		{"another version", strings.Replace(good, `"v":1`, `"v":2`, 1), 3, 4},
		{"no version", strings.Replace(good, `"v":1,`, ``, 1), 3, 4},
		{"a value short", strings.Replace(good, `"k":["1","2"]`, `"k":["1"]`, 1), 3, 4},
		{"an expiry short", strings.Replace(good, `,1900000001]`, `]`, 1), 3, 4},
		{"empty", `{"v":1,"c":{"kind":"token"},"i":[],"k":[],"x":[]}`, 3, 2},
		{"positions of more records", good, 3, 5},
		{"positions of fewer records", good, 3, 3},
		{"position zero", good, 0, 1},
		{"negative unit", strings.Replace(good, `"u":1000000000`, `"u":-1`, 1), 3, 4},
		{"expiry out of range", strings.Replace(good, `1900000001`, `9223372036854775807`, 1), 3, 4},
		{"outlier out of range", strings.Replace(good, `"x":`, `"o":[{"n":2,"r":{"id":"c","kind":"token"}}],"x":`, 1), 3, 4},
		{"outlier of another id", strings.Replace(good, `"x":`, `"o":[{"n":1,"r":{"id":"z","kind":"token"}}],"x":`, 1), 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if recs, err := decodeBatch(tt.data, tt.first, tt.last); err == nil {
				t.Errorf("decodeBatch(%s, %d, %d) = %v, want an error", tt.data, tt.first, tt.last, recs)
			}
		})
	}
}

// TestFeedAcrossBatchEntries: Feed and List read records from any position
// and with any limit, inside a Put's entries and across them, with single
// record entries (small Puts, lifts) between.
func TestFeedAcrossBatchEntries(t *testing.T) {
	s, srv := newSource(t, Options{})
	var all []authz.Record
	all = append(all, put(t, s, token("https://idp", "one", time.Hour))...)
	all = append(all, put(t, s, tokensN("big-", 1234)...)...) // entries of 500, 500, 234
	lift, err := s.Lift(ctxT(t), all[10].ID, "ops", "mistake")
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, lift)
	for i := range 3 {
		all = append(all, put(t, s, token("https://idp", fmt.Sprint("small-", i), time.Hour))...)
	}
	all = append(all, put(t, s, tokensN("mid-", 700)...)...)
	if n := client(t, srv).XLen(ctxT(t), s.k.feed()).Val(); n != 1+3+1+3+2 {
		t.Fatalf("feed holds %d entries, want 10", n)
	}
	top := uint64(len(all))
	for _, after := range []uint64{0, 1, 2, 250, 500, 501, 1234, 1235, 1236, 1237, 1238, 1239, 1500, top - 1} {
		for _, limit := range []int{1, 7, 499, 500, 1000, 5000} {
			if limit < 100 && top-after > 600 {
				continue // hundreds of reads: the ones near the end show the same
			}
			got := readFeed(t, s, after, limit)
			want := all[after:]
			sameRecords(t, fmt.Sprintf("feed from %d in reads of %d", after, limit), got, want)
		}
	}
	// One read brings at most limit records, and all there are up to it.
	for _, tt := range []struct {
		after uint64
		limit int
	}{{0, 1000}, {250, 1000}, {1235, 1000}, {1234, 3}, {0, 7}} {
		recs, err := s.Feed(ctxT(t), tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(tt.limit, int(top-tt.after)); len(recs) > tt.limit || len(recs) == 0 {
			t.Errorf("Feed(%d, %d) = %d records, want 1 to %d", tt.after, tt.limit, len(recs), want)
		}
	}
	// List pages through the same entries: every live record, once.
	var listed []authz.Record
	cursor := ""
	for {
		page, next, err := s.List(ctxT(t), source.ListQuery{Cursor: cursor, Limit: 333})
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page...)
		if cursor = next; cursor == "" {
			break
		}
	}
	var live []authz.Record
	for _, r := range all {
		if !r.IsLift() && r.ID != all[10].ID {
			live = append(live, r)
		}
	}
	sameRecords(t, "List", listed, live)
}

// tokensN returns n token records with jtis prefix0 ... prefix<n-1>.
func tokensN(prefix string, n int) []authz.Record {
	out := make([]authz.Record, n)
	for i := range out {
		out[i] = token("https://idp", fmt.Sprint(prefix, i), time.Hour)
	}
	return out
}

// readFeed reads the whole feed after after, limit records at a time,
// checking that no read brings more than limit.
func readFeed(t *testing.T, s *Source, after uint64, limit int) []authz.Record {
	t.Helper()
	var out []authz.Record
	for {
		st := stats(t, s)
		if after >= st.Position {
			return out
		}
		recs, err := s.Feed(ctxT(t), after, limit)
		if err != nil {
			t.Fatalf("Feed(%d, %d): %v", after, limit, err)
		}
		if len(recs) == 0 || len(recs) > limit {
			t.Fatalf("Feed(%d, %d) = %d records", after, limit, len(recs))
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Position
	}
}

// TestFeedReadsEntriesOfEarlierVersion: a feed written partly by the
// version before batch entries (one entry per record) and partly by this
// one reads as one feed, and the snapshot check of publish finds its
// oldest position either way.
func TestFeedReadsEntriesOfEarlierVersion(t *testing.T) {
	s, _ := newSource(t, Options{})
	var all []authz.Record
	all = append(all, legacyPut(t, s, tokensN("old-", 30)...)...)
	all = append(all, put(t, s, tokensN("new-", 620)...)...)
	all = append(all, legacyPut(t, s, tokensN("older-", 5)...)...)
	all = append(all, put(t, s, token("https://idp", "last", time.Hour))...)
	if !slices.Equal(positions(all), seqFrom(1, len(all))) {
		t.Fatalf("positions %v, want 1 to %d", positions(all), len(all))
	}
	for _, after := range []uint64{0, 15, 30, 31, 500, 650, 652, 655} {
		for _, limit := range []int{1, 7, 1000} {
			sameRecords(t, fmt.Sprintf("feed from %d in reads of %d", after, limit), readFeed(t, s, after, limit), all[after:])
		}
	}
	page, _, err := s.List(ctxT(t), source.ListQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "List", page, all)
	// A follower reads it all and enforces every record.
	f, rev := newFollower(t, s)
	if err := f.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if f.Position() != uint64(len(all)) {
		t.Fatalf("follower at %d, want %d", f.Position(), len(all))
	}
	for _, r := range all {
		if !rev.Filter().MayContain(r.LookupKey().FilterKey()) {
			t.Fatalf("record %d (%s) not in the follower's filter", r.Position, r.Value)
		}
	}
}

func seqFrom(first uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = first + uint64(i)
	}
	return out
}

// TestFeedBadBatchEntry: a batch entry that does not decode is one
// BadEntryError naming the last position it holds, so that a follower
// skips all of its records (after reloading from the records); the good
// records before it come first.
func TestFeedBadBatchEntry(t *testing.T) {
	s, srv := newSource(t, Options{})
	good := put(t, s, tokensN("good-", 3)...)
	c := client(t, srv)
	if err := c.XAdd(ctxT(t), &goredis.XAddArgs{Stream: s.k.feed(), ID: streamID(10), Values: []any{"f", "4", "b", `{"v":9}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctxT(t), s.k.seq(), 10, 0).Err(); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Feed(ctxT(t), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "Feed(1)", recs, good[1:])
	var bad *source.BadEntryError
	if _, err := s.Feed(ctxT(t), 3, 0); !errors.As(err, &bad) || bad.Position != 10 {
		t.Fatalf("Feed(3) = %v, want a BadEntryError at position 10", err)
	}
	after := put(t, s, token("https://idp", "after", time.Hour))
	recs, err = s.Feed(ctxT(t), 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "Feed(10)", recs, after)
}

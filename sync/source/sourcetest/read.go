package sourcetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/source"
)

// smallBloom sizes the suite's filters.
var smallBloom = bloom.Config{Entries: 10_000, FPRate: 0.001, DeltaEntries: 1000}

func (s *suite) snapshotCases() []testCase {
	return []testCase{
		{"HoldsLiveRecordsAtPosition", s.snapshotHolds},
	}
}

// snapshotHolds: Snapshot returns a filter holding the key of every
// unexpired record up to the position it reflects, or ErrNoSnapshot. With
// no writes meanwhile, a filter the source builds reflects its newest
// position.
func (s *suite) snapshotHolds(t *testing.T) {
	src := s.open(t)
	f, err := src.Snapshot(ctxT(t), smallBloom)
	switch {
	case errors.Is(err, source.ErrNoSnapshot):
	case err != nil:
		t.Fatalf("Snapshot of an empty source: %v", err)
	case f.Position() != 0:
		t.Errorf("Snapshot of an empty source is at position %d, want 0", f.Position())
	}
	now := time.Now()
	recs := put(t, src,
		token("https://a", "1", time.Hour),
		authz.Record{Kind: authz.KindSubject, Issuer: "https://a", Value: "alice", Before: now, ExpiresAt: now.Add(time.Hour)},
		authz.Record{Kind: authz.KindSession, Issuer: "https://a", Value: "s", ExpiresAt: now.Add(time.Hour)},
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: now.Add(time.Hour)},
		authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://a", Before: now, ExpiresAt: now.Add(time.Hour)},
	)
	f, err = src.Snapshot(ctxT(t), smallBloom)
	if errors.Is(err, source.ErrNoSnapshot) {
		return
	}
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if f.Position() != 5 {
		t.Errorf("Snapshot is at position %d, want 5", f.Position())
	}
	for _, r := range recs {
		if !f.MayContain(r.LookupKey().FilterKey()) {
			t.Errorf("Snapshot misses %s %q", r.Kind, r.Value)
		}
	}
	if _, err := src.Snapshot(ctxT(t), bloom.Config{}); err == nil {
		t.Error("Snapshot with an invalid filter configuration: no error")
	}
}

func (s *suite) rangeCases() []testCase {
	return []testCase{
		{"UnexpiredAtNowWithPosition", s.rangeAtNow},
		{"CallbackErrorEnds", s.rangeStops},
	}
}

// rangeAtNow: Range visits every record unexpired at the given now, once,
// and returns the position it reflects (the newest, with no writes
// meanwhile).
func (s *suite) rangeAtNow(t *testing.T) {
	src := s.open(t)
	if got, pos := rangeAll(t, src, time.Now()); len(got) != 0 || pos != 0 {
		t.Errorf("Range of an empty source = %v at %d, want nothing at 0", ids(got), pos)
	}
	recs := put(t, src,
		token("https://idp", "a", time.Hour),
		token("https://idp", "b", 3*time.Hour),
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: time.Now().Add(2 * time.Hour)},
	)
	recs = append(recs, put(t, src, token("https://idp", "c", 3*time.Hour))...)
	now := time.Now()
	tests := []struct {
		name string
		now  time.Time
		want []authz.Record
	}{
		{"all unexpired", now, recs},
		{"some expired", now.Add(90 * time.Minute), []authz.Record{recs[1], recs[2], recs[3]}},
		{"at an expiry", recs[2].ExpiresAt, []authz.Record{recs[1], recs[3]}},
		{"all expired", now.Add(4 * time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pos := rangeAll(t, src, tt.now)
			if pos != 4 {
				t.Errorf("Range position = %d, want 4", pos)
			}
			if !slices.Equal(sortedIDs(got), sortedIDs(tt.want)) {
				t.Errorf("Range visited %v, want %v", sortedIDs(got), sortedIDs(tt.want))
			}
			for _, g := range got {
				if i := slices.IndexFunc(tt.want, func(w authz.Record) bool { return w.ID == g.ID }); i >= 0 && !sameRecord(g, tt.want[i]) {
					t.Errorf("Range visited %+v, want %+v", g, tt.want[i])
				}
			}
		})
	}
}

// rangeStops: an error of the callback ends Range, which returns it.
func (s *suite) rangeStops(t *testing.T) {
	src := s.open(t)
	put(t, src, tokens("https://idp", "r", 10, time.Hour)...)
	stop := errors.New("stop")
	visited := 0
	_, err := src.Range(ctxT(t), time.Now(), func(authz.Record) error {
		visited++
		return stop
	})
	if !errors.Is(err, stop) || visited != 1 {
		t.Errorf("Range whose callback fails = %v after %d records; want the callback's error after 1", err, visited)
	}
}

func (s *suite) listCases() []testCase {
	return []testCase{
		{"Filters", s.listFilters},
		{"PagesInPositionOrder", s.listPages},
		{"PageSizeBounds", s.listBounds},
		{"InvalidCursor", s.listInvalidCursor},
	}
}

// listFilters: List returns the records matching every filter given.
func (s *suite) listFilters(t *testing.T) {
	src := s.open(t)
	recs := put(t, src,
		token("https://a", "1", time.Hour),
		token("https://b", "1", time.Hour),
		authz.Record{Kind: authz.KindSession, Issuer: "https://a", Value: "1", ExpiresAt: time.Now().Add(time.Hour)},
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: time.Now().Add(time.Hour)},
		token("https://a", "2", time.Hour),
	)
	tests := []struct {
		name string
		q    source.ListQuery
		want []authz.Record
	}{
		{"everything", source.ListQuery{}, recs},
		{"kind", source.ListQuery{Kind: authz.KindToken}, []authz.Record{recs[0], recs[1], recs[4]}},
		{"issuer", source.ListQuery{Issuer: "https://a"}, []authz.Record{recs[0], recs[2], recs[4]}},
		{"value", source.ListQuery{Value: "1"}, recs[:3]},
		{"all three", source.ListQuery{Kind: authz.KindToken, Issuer: "https://a", Value: "1"}, recs[:1]},
		{"no match", source.ListQuery{Kind: authz.KindSubject}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, next, err := src.List(ctxT(t), tt.q)
			if err != nil || next != "" {
				t.Fatalf("List(%+v) = %d records, cursor %q, %v; want one page", tt.q, len(got), next, err)
			}
			checkSame(t, fmt.Sprintf("List(%+v)", tt.q), got, tt.want)
		})
	}
}

// listPages: List pages in position order; each page's cursor resumes
// after it, and the last page has none.
func (s *suite) listPages(t *testing.T) {
	src := s.open(t)
	var all []authz.Record
	for i := range 25 {
		iss := "https://a"
		if i%5 == 0 {
			iss = "https://b"
		}
		all = append(all, put(t, src, token(iss, fmt.Sprint("jti-", i), time.Hour))...)
	}
	all = append(all, put(t, src, authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: time.Now().Add(time.Hour)})...)
	bs := []authz.Record{all[0], all[5], all[10], all[15], all[20]}
	tests := []struct {
		name  string
		q     source.ListQuery
		want  []authz.Record
		pages int
	}{
		{"one page", source.ListQuery{}, all, 1},
		{"pages of 10", source.ListQuery{Limit: 10}, all, 3},
		{"pages of 1", source.ListQuery{Limit: 1}, all, len(all)},
		{"filtered, pages of 2", source.ListQuery{Issuer: "https://b", Limit: 2}, bs, 3},
		{"filtered, exact page size", source.ListQuery{Issuer: "https://b", Limit: 5}, bs, 1},
		{"the last record alone", source.ListQuery{Kind: authz.KindKey, Limit: 1}, all[25:], 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := listAll(t, src, tt.q)
			checkSame(t, fmt.Sprintf("paging List(%+v)", tt.q), got, tt.want)
			if pages != tt.pages {
				t.Errorf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
}

// listBounds: a zero Limit pages by source.DefaultListLimit, a larger one
// is capped at source.MaxListLimit, a negative one is an error.
func (s *suite) listBounds(t *testing.T) {
	src := s.open(t)
	all := put(t, src, tokens("https://idp", "l", source.MaxListLimit+5, time.Hour)...)
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"default", 0, source.DefaultListLimit},
		{"capped", 5 * source.MaxListLimit, source.MaxListLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, next, err := src.List(ctxT(t), source.ListQuery{Limit: tt.limit})
			if err != nil || next == "" {
				t.Fatalf("List(Limit %d) = %d records, cursor %q, %v; want a page and a cursor", tt.limit, len(page), next, err)
			}
			checkSame(t, fmt.Sprintf("List(Limit %d)", tt.limit), page, all[:tt.want])
		})
	}
	got, pages := listAll(t, src, source.ListQuery{Limit: 5 * source.MaxListLimit})
	if len(got) != len(all) || pages != 2 {
		t.Errorf("paging by the largest page size: %d records in %d pages, want %d in 2", len(got), pages, len(all))
	}
	if _, _, err := src.List(ctxT(t), source.ListQuery{Limit: -1}); err == nil {
		t.Error("List with a negative limit: no error")
	}
}

// listInvalidCursor: a cursor the source did not issue is
// ErrInvalidCursor, never another page.
func (s *suite) listInvalidCursor(t *testing.T) {
	src := s.open(t)
	put(t, src, tokens("https://idp", "c", 3, time.Hour)...)
	_, next, err := src.List(ctxT(t), source.ListQuery{Limit: 1})
	if err != nil || next == "" {
		t.Fatalf("List(Limit 1) = cursor %q, %v; want a cursor", next, err)
	}
	for _, c := range []string{
		"42", "garbage", "emb1.", "emb1.!!!", "emb1.AAAA", "rds1.", "rds1.!!", "rds1.AAAA", "redis:17-0",
		next + "x", "x" + next, strings.ToUpper(next), strings.Repeat("A", 4096),
	} {
		if page, _, err := src.List(ctxT(t), source.ListQuery{Cursor: c}); !errors.Is(err, source.ErrInvalidCursor) {
			t.Errorf("List(cursor %.40q) = %d records, %v; want ErrInvalidCursor", c, len(page), err)
		}
	}
}

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

func TestListFilters(t *testing.T) {
	s, _ := newStore(t)
	recs := put(t, s,
		token("https://a", "1", time.Hour),
		token("https://b", "1", time.Hour),
		authz.Record{Kind: authz.KindSession, Issuer: "https://a", Value: "1", ExpiresAt: t0.Add(time.Hour)},
		authz.Record{Kind: authz.KindKey, Value: "kid", ExpiresAt: t0.Add(time.Hour)},
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
			got, next, err := s.List(context.Background(), tt.q)
			if err != nil || next != "" || !slices.Equal(ids(got), ids(tt.want)) {
				t.Errorf("List(%+v) = %v, %q, %v; want %v", tt.q, ids(got), next, err, ids(tt.want))
			}
		})
	}
}

func TestListPages(t *testing.T) {
	s, _ := newStore(t)
	recs := make([]authz.Record, 2*MaxListLimit+50)
	for i := range recs {
		kind := authz.KindToken
		if i%2 == 1 {
			kind = authz.KindSession
		}
		recs[i] = authz.Record{Kind: kind, Issuer: "i", Value: fmt.Sprint(i), ExpiresAt: t0.Add(time.Hour)}
	}
	recs = put(t, s, recs...)
	var sessions []string
	for _, r := range recs {
		if r.Kind == authz.KindSession {
			sessions = append(sessions, r.ID)
		}
	}
	tests := []struct {
		name      string
		q         source.ListQuery
		want      []string
		wantPages int
	}{
		{"default limit", source.ListQuery{}, ids(recs), (len(recs) + DefaultListLimit - 1) / DefaultListLimit},
		{"limit above the max", source.ListQuery{Limit: 5000}, ids(recs), 3},
		{"small pages with a filter", source.ListQuery{Kind: authz.KindSession, Limit: 300}, sessions, 4},
		{"exact pages", source.ListQuery{Kind: authz.KindSession, Limit: len(sessions) / 5}, sessions, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			q := tt.q
			pages := 0
			for range 1000 {
				page, next, err := s.List(context.Background(), q)
				if err != nil {
					t.Fatalf("List(%+v): %v", q, err)
				}
				pages++
				got = append(got, ids(page)...)
				if next == "" {
					break
				}
				q.Cursor = next
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("paging returned %d records, want %d in order", len(got), len(tt.want))
			}
			if pages != tt.wantPages {
				t.Errorf("paging took %d pages, want %d", pages, tt.wantPages)
			}
		})
	}
}

func TestListRefusesForeignCursors(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, token("i", "a", time.Hour))
	for _, cursor := range []string{"42", "emb1.", "emb1.!!!", "emb1.AAAA", "redis:17-0", encodeCursor(1) + "x"} {
		t.Run(cursor, func(t *testing.T) {
			_, _, err := s.List(context.Background(), source.ListQuery{Cursor: cursor})
			if !errors.Is(err, ErrInvalidCursor) {
				t.Errorf("List(cursor %q) error = %v, want ErrInvalidCursor", cursor, err)
			}
		})
	}
	if _, _, err := s.List(context.Background(), source.ListQuery{Limit: -1}); err == nil {
		t.Error("List with a negative limit: no error")
	}
}

func TestRange(t *testing.T) {
	s, c := newStore(t)
	recs := put(t, s,
		token("i", "a", time.Hour),
		token("i", "b", time.Second),
		token("i", "c", 2*time.Hour),
	)
	recs = append(recs, put(t, s, token("i", "d", time.Second))...)
	c.Set(t0.Add(3 * time.Hour)) // Range takes its own now, not the clock's
	tests := []struct {
		name string
		now  time.Time
		want []authz.Record
	}{
		{"all live", t0, recs},
		{"some expired", t0.Add(time.Second), []authz.Record{recs[0], recs[2]}},
		{"all expired", t0.Add(2 * time.Hour), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []authz.Record
			pos, err := s.Range(context.Background(), tt.now, func(r authz.Record) error {
				got = append(got, r)
				return nil
			})
			if err != nil || pos != 4 {
				t.Errorf("Range = %d, %v; want position 4", pos, err)
			}
			if !slices.Equal(ids(got), ids(tt.want)) {
				t.Errorf("Range visited %v, want %v", ids(got), ids(tt.want))
			}
		})
	}
}

func TestRangeStops(t *testing.T) {
	s, _ := newStore(t)
	recs := make([]authz.Record, 3*ctxCheckEvery)
	for i := range recs {
		recs[i] = token("i", fmt.Sprint(i), time.Hour)
	}
	put(t, s, recs...)

	ctx, cancel := context.WithCancel(context.Background())
	visited := 0
	_, err := s.Range(ctx, t0, func(authz.Record) error {
		if visited++; visited == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || visited > ctxCheckEvery {
		t.Errorf("Range with ctx canceled after 10 records = %v after %d records; want Canceled within %d",
			err, visited, ctxCheckEvery)
	}

	stop := errors.New("stop")
	visited = 0
	_, err = s.Range(context.Background(), t0, func(authz.Record) error {
		visited++
		return stop
	})
	if err != stop || visited != 1 {
		t.Errorf("Range whose fn fails = %v after %d records; want fn's error after 1", err, visited)
	}
}

func TestRangeCallbackPanicIsNotCorruption(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, token("i", "a", time.Hour))
	defer func() {
		if v := recover(); v != "boom" {
			t.Errorf("recovered %v, want the callback's own panic", v)
		}
		// The store stays usable.
		if _, err := s.Stats(context.Background()); err != nil {
			t.Errorf("Stats after a callback panic: %v", err)
		}
	}()
	_, err := s.Range(context.Background(), t0, func(authz.Record) error { panic("boom") })
	t.Errorf("Range returned %v instead of passing the panic on", err)
}

package sourcetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/source"
)

// Harness tells Run how to open the source under test and what, beyond the
// contract, the suite may use to look at it.
type Harness struct {
	// Open returns a new, empty source on the real clock. Run closes it;
	// Close must accept a second call, so Open may also close it in a
	// cleanup.
	Open func(t *testing.T) source.Source

	// ErrClosed, when set, is the error every call on a closed source
	// wraps.
	ErrClosed error

	// FeedWaiting, when set, reports whether a Feed call on src is waiting
	// for a record. Run then writes only once one is, so that it checks the
	// wake-up of a waiting Feed and not a Feed that found the record at
	// its first read. Without it Run checks only what Feed returns.
	FeedWaiting func(t *testing.T, src source.Source) bool

	// Trim, when set, drops the feed entries of src up to and including
	// position pos (the records stay), as the source's retention would.
	// The suite calls it with a pos that ends a Put.
	// Leave it nil for a source whose feed is never trimmed.
	Trim func(t *testing.T, src source.Source, pos uint64)
}

// Bounds of the suite: every call gets callTimeout; whatever must expire
// does so expireAfter after its Put, and polls give up after pollTimeout.
const (
	callTimeout = 10 * time.Second
	expireAfter = 2 * time.Second
	pollTimeout = 20 * time.Second
	pollEvery   = 20 * time.Millisecond
)

// Run checks src's conformance to the source.Source contract, one subtest
// per point of it, each on a source of its own from h.Open.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("sourcetest: Harness.Open is nil")
	}
	s := &suite{h: h}
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Put", s.putCases()},
		{"Lookup", s.lookupCases()},
		{"Feed", s.feedCases()},
		{"Snapshot", s.snapshotCases()},
		{"Range", s.rangeCases()},
		{"Get", s.getCases()},
		{"List", s.listCases()},
		{"Stats", s.statsCases()},
		{"Lift", s.liftCases()},
		{"Mesh", s.meshCases()},
		{"Expiry", s.expiryCases()},
		{"Close", s.closeCases()},
		{"Concurrency", s.concurrencyCases()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, c.run)
			}
		})
	}
}

// testCase is one point of the contract.
type testCase struct {
	name string
	run  func(t *testing.T)
}

type suite struct{ h Harness }

// open opens a fresh source, closed when the test ends.
func (s *suite) open(t *testing.T) source.Source {
	t.Helper()
	src := s.h.Open(t)
	if src == nil {
		t.Fatal("sourcetest: Harness.Open returned nil")
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

// ctxT returns a context bounding one call by callTimeout.
func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// token returns a token record of iss and jti expiring ttl from now.
func token(iss, jti string, ttl time.Duration) authz.Record {
	return authz.Record{Kind: authz.KindToken, Issuer: iss, Value: jti, Reason: "sourcetest", ExpiresAt: time.Now().Add(ttl)}
}

// tokens returns n token records of iss, expiring ttl from now.
func tokens(iss, prefix string, n int, ttl time.Duration) []authz.Record {
	out := make([]authz.Record, n)
	for i := range out {
		out[i] = token(iss, fmt.Sprint(prefix, i), ttl)
	}
	return out
}

func put(t testing.TB, src source.Source, recs ...authz.Record) []authz.Record {
	t.Helper()
	out, err := src.Put(ctxT(t), recs)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if len(out) != len(recs) {
		t.Fatalf("Put of %d records returned %d", len(recs), len(out))
	}
	return out
}

func lookup(t testing.TB, src source.Source, k authz.LookupKey) []authz.Record {
	t.Helper()
	recs, err := src.Lookup(ctxT(t), k)
	if err != nil {
		t.Fatalf("Lookup(%+v): %v", k, err)
	}
	return recs
}

func stats(t testing.TB, src source.Source) source.Stats {
	t.Helper()
	st, err := src.Stats(ctxT(t))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

// listAll pages through List from q, at most 100 pages, and returns the
// records and the number of pages.
func listAll(t testing.TB, src source.Source, q source.ListQuery) ([]authz.Record, int) {
	t.Helper()
	var out []authz.Record
	for pages := 1; pages <= 100; pages++ {
		page, next, err := src.List(ctxT(t), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		out = append(out, page...)
		if next == "" {
			return out, pages
		}
		q.Cursor = next
	}
	t.Fatalf("List(%+v) did not end within 100 pages", q)
	return nil, 0
}

// rangeAll returns the records Range visits at now, and its position.
func rangeAll(t testing.TB, src source.Source, now time.Time) ([]authz.Record, uint64) {
	t.Helper()
	var out []authz.Record
	pos, err := src.Range(ctxT(t), now, func(r authz.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Range(%v): %v", now, err)
	}
	return out, pos
}

func ids(recs []authz.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// sortedIDs is ids in sorted order, for answers in no particular order.
func sortedIDs(recs []authz.Record) []string {
	out := ids(recs)
	slices.Sort(out)
	return out
}

func positions(recs []authz.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

// sameRecord reports whether a source returned want as it stored it: every
// field, times compared as instants.
func sameRecord(got, want authz.Record) bool {
	return got.ID == want.ID && got.Kind == want.Kind && got.Issuer == want.Issuer &&
		got.Value == want.Value && got.Reason == want.Reason && got.Actor == want.Actor &&
		got.Position == want.Position && got.Before.Equal(want.Before) &&
		got.CreatedAt.Equal(want.CreatedAt) && got.ExpiresAt.Equal(want.ExpiresAt)
}

// checkSame fails unless got holds exactly want's records, in want's order.
func checkSame(t testing.TB, what string, got, want []authz.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s returned %d records %v, want %d %v", what, len(got), ids(got), len(want), ids(want))
		return
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			t.Errorf("%s record %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

// eventually polls cond until it holds, failing after pollTimeout.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, pollTimeout)
		}
		time.Sleep(pollEvery)
	}
}

// feedResult is what a Feed call running in a goroutine returned.
type feedResult struct {
	recs []authz.Record
	err  error
}

// goFeed calls Feed in a goroutine.
func goFeed(ctx context.Context, src source.Source, after uint64, limit int) <-chan feedResult {
	ch := make(chan feedResult, 1)
	go func() {
		recs, err := src.Feed(ctx, after, limit)
		ch <- feedResult{recs, err}
	}()
	return ch
}

// waitFeeding waits until the Feed call on src that ch answers is waiting
// for a record (when the harness can tell), and fails if it has returned.
func (s *suite) waitFeeding(t testing.TB, src source.Source, ch <-chan feedResult) {
	t.Helper()
	if s.h.FeedWaiting != nil {
		tt, ok := t.(*testing.T)
		if !ok {
			t.Fatal("sourcetest: FeedWaiting needs a *testing.T")
		}
		eventually(t, "a Feed call waits for a record", func() bool {
			select {
			case r := <-ch:
				t.Fatalf("Feed returned before any record arrived: %v, %v", ids(r.recs), r.err)
			default:
			}
			return s.h.FeedWaiting(tt, src)
		})
	}
	select {
	case r := <-ch:
		t.Fatalf("Feed returned before any record arrived: %v, %v", ids(r.recs), r.err)
	default:
	}
}

// result waits for the answer of a Feed call started by goFeed.
func result(t testing.TB, ch <-chan feedResult) feedResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(callTimeout + pollTimeout):
		t.Fatalf("Feed did not return within %v", callTimeout+pollTimeout)
		return feedResult{}
	}
}

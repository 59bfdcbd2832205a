// Package audittest is the conformance suite of audit trail stores: every
// audit.Store runs it (the embedded store and the Redis source), so that
// they behave alike, and tampering with the stored data directly is caught
// by Verify in each.
package audittest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/sync/audit"
)

// Harness opens and manipulates the stores of one implementation.
type Harness struct {
	// Open returns an empty trail; the test closes what it holds.
	Open func(t *testing.T) audit.Store
	// Reopen returns the trail of s after a restart of its holder: the
	// embedded store closed and opened again, a new Redis client.
	Reopen func(t *testing.T, s audit.Store) audit.Store
	// Another returns a second writer of the trail of s, as another node
	// would hold it (the same Store where only one process may).
	Another func(t *testing.T, s audit.Store) audit.Store
	// Raw returns the stored entries of s as stored, oldest first.
	Raw func(t *testing.T, s audit.Store) [][]byte
	// Rewrite replaces the stored entries of s (not its head) with data,
	// oldest first, as someone editing the store directly would.
	Rewrite func(t *testing.T, s audit.Store, data [][]byte)
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("RecordListVerify", func(t *testing.T) { testRecordList(t, h) })
	t.Run("Pagination", func(t *testing.T) { testPagination(t, h) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, h) })
	t.Run("GarbageCursor", func(t *testing.T) { testGarbageCursor(t, h) })
	t.Run("Tamper", func(t *testing.T) { testTamper(t, h) })
	t.Run("RemovedOldest", func(t *testing.T) { testRemovedOldest(t, h) })
	t.Run("Restart", func(t *testing.T) { testRestart(t, h) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("OversizedFields", func(t *testing.T) { testOversized(t, h) })
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fill records n entries, kinds and actors alternating, a second apart.
func fill(t *testing.T, l *audit.Log, n int) {
	t.Helper()
	kinds := []audit.Kind{audit.KindRevoke, audit.KindAuthFailure, audit.KindKeySet}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		e := audit.Entry{
			Time:   base.Add(time.Duration(i) * time.Second),
			Kind:   kinds[i%len(kinds)],
			Actor:  fmt.Sprintf("actor-%d", i%2),
			Source: "127.0.0.1:5000",
			Target: fmt.Sprintf("target-%d", i),
			Reason: fmt.Sprintf("reason %d", i),
		}
		if err := l.Record(ctxT(t), e); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
}

func listAll(t *testing.T, l *audit.Log, q audit.Query) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for range 1000 {
		page, next, err := l.List(ctxT(t), q)
		if err != nil {
			t.Fatalf("List %+v: %v", q, err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		if next == q.Cursor {
			t.Fatalf("List returned its own cursor %q", next)
		}
		q.Cursor = next
	}
	t.Fatal("List did not end within 1000 pages")
	return nil
}

func mustVerify(t *testing.T, l *audit.Log, entries int) audit.Report {
	t.Helper()
	rep, err := l.Verify(ctxT(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify of an untouched trail: %v", rep.Broken)
	}
	if rep.Entries != entries || rep.Head.Seq != uint64(entries) {
		t.Fatalf("Verify checked %d entries up to head seq %d, want %d", rep.Entries, rep.Head.Seq, entries)
	}
	return rep
}

func testRecordList(t *testing.T, h Harness) {
	l := audit.NewLog(h.Open(t), audit.WithNode("node-a"))
	rep, err := l.Verify(ctxT(t))
	if err != nil || !rep.OK() || rep.Entries != 0 {
		t.Fatalf("Verify of an empty trail = %+v, %v; want an intact empty chain", rep, err)
	}
	fill(t, l, 5)
	got := listAll(t, l, audit.Query{})
	if len(got) != 5 {
		t.Fatalf("listed %d entries, want 5", len(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Node != "node-a" || e.Target != fmt.Sprintf("target-%d", i) {
			t.Errorf("entry %d = %+v, want seq %d, node node-a, target-%d", i, e, i+1, i)
		}
		if e.Hash != e.Sum() {
			t.Errorf("entry %d: hash %s, its content hashes to %s", i, e.Hash, e.Sum())
		}
		if i > 0 && e.Prev != got[i-1].Hash {
			t.Errorf("entry %d links to %s, want the hash of entry %d", i, e.Prev, i-1)
		}
	}
	mustVerify(t, l, 5)
}

func testPagination(t *testing.T, h Harness) {
	l := audit.NewLog(h.Open(t))
	fill(t, l, 25)
	q := audit.Query{Limit: 10}
	var seqs []uint64
	pages := 0
	for {
		page, next, err := l.List(ctxT(t), q)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		pages++
		for _, e := range page {
			seqs = append(seqs, e.Seq)
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if pages != 3 || len(seqs) != 25 || !slices.IsSorted(seqs) || seqs[0] != 1 || seqs[24] != 25 {
		t.Fatalf("pages of 10: %d pages, seqs %v; want 3 pages of seqs 1 to 25", pages, seqs)
	}
	for _, lim := range []int{-1, audit.MaxListLimit + 1} {
		if _, _, err := l.List(ctxT(t), audit.Query{Limit: lim}); err == nil {
			t.Errorf("List with limit %d: no error", lim)
		}
	}
}

func testFilters(t *testing.T, h Harness) {
	l := audit.NewLog(h.Open(t))
	fill(t, l, 12)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		q    audit.Query
		want int
	}{
		{"kind", audit.Query{Kind: audit.KindRevoke}, 4},
		{"actor", audit.Query{Actor: "actor-1"}, 6},
		{"since", audit.Query{Since: base.Add(10 * time.Second)}, 2},
		{"all three", audit.Query{Kind: audit.KindRevoke, Actor: "actor-0", Since: base.Add(5 * time.Second)}, 1},
		{"none", audit.Query{Actor: "nobody"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := listAll(t, l, tc.q)
			if len(got) != tc.want {
				t.Fatalf("%d entries, want %d", len(got), tc.want)
			}
			for _, e := range got {
				if (tc.q.Kind != "" && e.Kind != tc.q.Kind) || (tc.q.Actor != "" && e.Actor != tc.q.Actor) || e.Time.Before(tc.q.Since) {
					t.Errorf("entry %+v does not match %+v", e, tc.q)
				}
			}
		})
	}
}

func testGarbageCursor(t *testing.T, h Harness) {
	l := audit.NewLog(h.Open(t))
	fill(t, l, 3)
	for _, c := range []string{"garbage", "-1", "1-", "%00", strings.Repeat("9", 400), "1 2", "0x10"} {
		if _, _, err := l.List(ctxT(t), audit.Query{Cursor: c}); !errors.Is(err, audit.ErrInvalidCursor) {
			t.Errorf("List with cursor %q: err %v, want ErrInvalidCursor", c, err)
		}
	}
}

// edit returns data with the entry's Reason changed, its hash kept.
func edit(t *testing.T, data []byte) []byte {
	t.Helper()
	var e audit.Entry
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("decode stored entry: %v", err)
	}
	e.Reason = "nothing to see here"
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func testTamper(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, raw [][]byte) [][]byte
		problem audit.Problem
		seq     uint64
	}{
		{"edited", func(t *testing.T, raw [][]byte) [][]byte {
			raw[3] = edit(t, raw[3])
			return raw
		}, audit.Edited, 4},
		{"edited to garbage", func(t *testing.T, raw [][]byte) [][]byte {
			raw[3] = []byte("{not json")
			return raw
		}, audit.Edited, 0},
		{"removed", func(t *testing.T, raw [][]byte) [][]byte {
			return slices.Delete(raw, 3, 4)
		}, audit.Removed, 5},
		{"removed last", func(t *testing.T, raw [][]byte) [][]byte {
			return raw[:len(raw)-1]
		}, audit.Removed, 8},
		{"reordered", func(t *testing.T, raw [][]byte) [][]byte {
			raw[3], raw[4] = raw[4], raw[3]
			return raw
		}, audit.Reordered, 5},
		{"inserted copy", func(t *testing.T, raw [][]byte) [][]byte {
			return slices.Insert(raw, 4, raw[3])
		}, audit.Inserted, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.Open(t)
			l := audit.NewLog(s)
			fill(t, l, 8)
			mustVerify(t, l, 8)
			h.Rewrite(t, s, tc.tamper(t, h.Raw(t, s)))
			rep, err := l.Verify(ctxT(t))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if rep.OK() {
				t.Fatalf("Verify found no break in a trail %s", tc.name)
			}
			if rep.Broken.Problem != tc.problem || rep.Broken.Seq != tc.seq {
				t.Fatalf("Verify: %v; want %s at seq %d", rep.Broken, tc.problem, tc.seq)
			}
		})
	}
}

// testRemovedOldest removes the oldest entries: a store without retention
// reports it; under retention it cannot be told from trimming, and the
// chain is verified from the oldest entry kept.
func testRemovedOldest(t *testing.T, h Harness) {
	s := h.Open(t)
	l := audit.NewLog(s)
	fill(t, l, 5)
	h.Rewrite(t, s, h.Raw(t, s)[2:])
	rep, err := l.Verify(ctxT(t))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if s.Trims() {
		if !rep.OK() || !rep.Trimmed || rep.First != 3 || rep.Entries != 3 {
			t.Fatalf("Verify of a trail trimmed to seq 3: %+v; want intact, trimmed, from seq 3", rep)
		}
		return
	}
	if rep.OK() || rep.Broken.Problem != audit.Removed || rep.Broken.Seq != 3 {
		t.Fatalf("Verify: %+v; want removed at seq 3", rep)
	}
}

func testRestart(t *testing.T, h Harness) {
	s := h.Open(t)
	fill(t, audit.NewLog(s), 4)
	l := audit.NewLog(h.Reopen(t, s))
	fill(t, l, 2)
	got := listAll(t, l, audit.Query{})
	if len(got) != 6 || got[5].Seq != 6 {
		t.Fatalf("after a restart: %d entries, the last %+v; want 6 ending at seq 6", len(got), got[len(got)-1])
	}
	mustVerify(t, l, 6)
}

func testConcurrent(t *testing.T, h Harness) {
	const writers, each = 4, 25
	s := h.Open(t)
	logs := make([]*audit.Log, writers)
	for i := range logs {
		st := s
		if i > 0 {
			st = h.Another(t, s)
		}
		logs[i] = audit.NewLog(st, audit.WithNode(fmt.Sprintf("node-%d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for i, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := l.Record(context.Background(), audit.Entry{Kind: audit.KindRevoke, Target: fmt.Sprintf("w%d-%d", i, j)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Record: %v", err)
	}
	mustVerify(t, logs[0], writers*each)
	got := listAll(t, logs[0], audit.Query{})
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.Target] = true
	}
	if len(got) != writers*each || len(seen) != writers*each {
		t.Fatalf("%d entries of %d distinct targets, want %d of each", len(got), len(seen), writers*each)
	}
}

func testOversized(t *testing.T, h Harness) {
	l := audit.NewLog(h.Open(t))
	huge := strings.Repeat("é", 1<<20) // 2 MiB
	e := audit.Entry{Kind: audit.KindRevoke, Actor: huge, Target: huge, Reason: huge + "\xff", Source: huge, Node: huge}
	if err := l.Record(ctxT(t), e); err != nil {
		t.Fatalf("Record: %v", err)
	}
	got := listAll(t, l, audit.Query{})
	if len(got) != 1 {
		t.Fatalf("%d entries, want 1", len(got))
	}
	g := got[0]
	for name, v := range map[string]string{"actor": g.Actor, "target": g.Target, "source": g.Source, "node": g.Node} {
		if len(v) > audit.MaxField || !strings.Contains(v, "bytes cut]") {
			t.Errorf("%s: %d bytes (want at most %d, saying what was cut)", name, len(v), audit.MaxField)
		}
	}
	if len(g.Reason) > audit.MaxReason {
		t.Errorf("reason: %d bytes, want at most %d", len(g.Reason), audit.MaxReason)
	}
	mustVerify(t, l, 1)
}

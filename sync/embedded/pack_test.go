package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
)

// The feed and expiry packs, against a model: Puts of sizes around a
// pack's (packMax), lifts and prunes at random, each followed by Feed from
// every kind of position (0, pack boundaries, the middle of a pack, the
// top; its first entries, and the whole feed from 0), Range, Stats and
// Prune's count compared with what the model says.
func TestPacksAgainstModel(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 8))
	type entry struct {
		rec  authz.Record
		gone bool // pruned or lifted: no longer in the feed
	}
	var model []*entry // by position - 1
	sizes := []int{1, 3, packMax - 1, packMax, packMax + 1, 2*packMax + 5}
	check := func(step string) {
		t.Helper()
		line := func(r authz.Record) string { return fmt.Sprintf("%d %s", r.Position, r.ID) }
		var want []string
		for _, e := range model {
			if !e.gone {
				want = append(want, line(e.rec))
			}
		}
		afters := []uint64{0, packMax - 1, packMax, packMax + 1, uint64(len(model))}
		for range 4 {
			afters = append(afters, r.Uint64N(uint64(len(model))+1))
		}
		all := feedOf(t, s)
		for _, after := range afters {
			if after > uint64(len(model)) {
				continue
			}
			var tail []string
			for _, e := range model[after:] {
				if !e.gone && len(tail) < 3 {
					tail = append(tail, line(e.rec))
				}
			}
			got, err := s.feedPage(after, 3, nil)
			if err != nil {
				t.Fatalf("%s: feed after %d: %v", step, after, err)
			}
			lines := make([]string, len(got))
			for j, g := range got {
				lines[j] = line(g)
			}
			if !slices.Equal(lines, tail) {
				t.Fatalf("%s: feed after %d: %q, want %q", step, after, lines, tail)
			}
		}
		if !slices.Equal(all, want) {
			t.Fatalf("%s: feed differs from the model", step)
		}
		var liveIDs []string
		for _, e := range model {
			if !e.gone && !e.rec.IsLift() && e.rec.ExpiresAt.After(c.Now()) {
				liveIDs = append(liveIDs, e.rec.ID)
			}
		}
		if st := stats(t, s); st.Records != len(liveIDs) || st.Position != uint64(len(model)) {
			t.Fatalf("%s: stats %d records at %d, want %d at %d", step, st.Records, st.Position, len(liveIDs), len(model))
		}
		var ranged []string
		if _, err := s.Range(ctx, c.Now(), func(r authz.Record) error { ranged = append(ranged, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ranged, liveIDs) {
			t.Fatalf("%s: Range gives %d records, want %d", step, len(ranged), len(liveIDs))
		}
	}
	for step := range 30 {
		switch op := r.IntN(4); {
		case op <= 1:
			n := sizes[r.IntN(len(sizes))]
			recs := make([]authz.Record, n)
			for i := range recs {
				ttl := time.Duration(1+r.IntN(48)) * time.Hour
				recs[i] = authz.Record{Kind: authz.KindToken, Issuer: "https://a", Value: fmt.Sprint("v", r.IntN(5000)),
					ExpiresAt: c.Now().Add(ttl)}
			}
			for _, rec := range put(t, s, recs...) {
				model = append(model, &entry{rec: rec})
			}
		case op == 2:
			var live []*entry
			for _, e := range model {
				if !e.gone && !e.rec.IsLift() && e.rec.ExpiresAt.After(c.Now()) {
					live = append(live, e)
				}
			}
			if len(live) == 0 {
				continue
			}
			e := live[r.IntN(len(live))]
			lift, err := s.Lift(ctx, e.rec.ID, "test", "model")
			if err != nil {
				t.Fatal(err)
			}
			e.gone = true
			model = append(model, &entry{rec: lift})
		default:
			c.Set(c.Now().Add(time.Duration(r.IntN(7)) * time.Hour))
			want := 0
			for _, e := range model {
				if !e.gone && !e.rec.ExpiresAt.After(c.Now()) {
					e.gone = true
					want++
				}
			}
			if n, err := s.Prune(c.Now()); err != nil || n != want {
				t.Fatalf("step %d: Prune = %d, %v; want %d", step, n, err, want)
			}
		}
		check(fmt.Sprint("step ", step))
	}
}

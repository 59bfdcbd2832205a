package authz

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
)

// TestConfirmHitsKeepHotKeys: confirm-cache hits take the cache's lock
// shared and move a key to the front only every promoteEvery-th hit, so a
// key that is checked all the time must still outlive a stream of keys
// checked once, in a cache far smaller than that stream.
func TestConfirmHitsKeepHotKeys(t *testing.T) {
	src := newMemSource()
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultRevocationConfig()
	cfg.ConfirmCacheSize, cfg.ConfirmTimeout = 4, time.Minute
	r, err := NewRevocations(f, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.SetReady(true)
	ctx := context.Background()
	now := time.Now().Unix()
	hot := testVerified("hot", "", now)
	flag(r, hot, checkToken)
	checkWant(t, r, hot, ReasonOK)
	const cold = 200
	for i := range cold {
		for range 2 * promoteEvery {
			if reason, _ := r.check(ctx, hot, 0); reason != ReasonOK {
				t.Fatalf("hot token: %s", reason)
			}
		}
		v := testVerified(fmt.Sprintf("cold-%d", i), "", now)
		flag(r, v, checkToken)
		checkWant(t, r, v, ReasonOK)
	}
	if got, want := src.count(), 1+cold; got != want {
		t.Errorf("%d source lookups, want %d: the hot key was evicted", got, want)
	}
	if st := r.Stats(); st.ConfirmSize != cfg.ConfirmCacheSize {
		t.Errorf("confirm cache holds %d answers, want %d", st.ConfirmSize, cfg.ConfirmCacheSize)
	}
}

// BenchmarkConfirmHitParallel is the revocation check of a token two of
// whose keys the filter flags and the confirm cache answers, from every
// CPU at once: the revoked mix's path.
func BenchmarkConfirmHitParallel(b *testing.B) {
	r := newTestRevocations(b, newMemSource())
	ctx := context.Background()
	v := testVerified("flagged", "fred", time.Now().Unix())
	flag(r, v, checkToken, checkSubject)
	if reason, _ := r.check(ctx, v, 0); reason != ReasonOK {
		b.Fatal(reason)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.check(ctx, v, 0)
		}
	})
}

// TestEnforceInBulkKeepsDecisions: a batch larger than maxFilledEnforce
// caches no answer for a key without one, and changes no decision: a
// cached answer of a key in the batch gets the batch's rule at once, a key
// without one is looked up in the source (which holds the records), and
// a source that cannot answer gives a deny, not an allow. A small batch
// still fills the cache.
func TestEnforceInBulkKeepsDecisions(t *testing.T) {
	src := newMemSource()
	r := newTestRevocations(t, src)
	now := time.Now().Unix()
	cached := testVerified("cached", "", now)
	flag(r, cached, checkToken) // a false positive, until the batch
	checkWant(t, r, cached, ReasonOK)

	token := func(jti string, pos int) Record {
		return Record{ID: fmt.Sprintf("id-%d", pos), Kind: KindToken, Issuer: benchIssuer, Value: jti, Position: uint64(pos)}
	}
	batch := make([]Record, 0, maxFilledEnforce+1)
	batch = append(batch, token("cached", 1), token("uncached", 2), token("unreachable", 3))
	for len(batch) < cap(batch) {
		batch = append(batch, unrelatedRecord(len(batch)))
		batch[len(batch)-1].Position = uint64(len(batch))
	}
	for _, rec := range batch {
		src.store(rec)
	}
	r.Enforce(batch...)
	if st := r.Stats(); st.ConfirmSize != 1 {
		t.Fatalf("confirm cache holds %d answers after a bulk Enforce, want the 1 it held", st.ConfirmSize)
	}

	lookups := src.count()
	checkWant(t, r, cached, ReasonRevoked)
	if src.count() != lookups {
		t.Fatal("the cached answer was not brought up to date by the batch: looked up again")
	}
	checkWant(t, r, testVerified("uncached", "", now), ReasonRevoked)
	if src.count() != lookups+1 {
		t.Fatalf("%d lookups for a key of the batch without a cached answer, want 1", src.count()-lookups)
	}
	src.setDown(true)
	checkWant(t, r, testVerified("unreachable", "", now), ReasonUnavailable)
	src.setDown(false)

	small := token("small", len(batch)+1)
	src.store(small)
	r.Enforce(small)
	lookups = src.count()
	checkWant(t, r, testVerified("small", "", now), ReasonRevoked)
	if src.count() != lookups {
		t.Fatal("a record enforced alone was looked up: its answer was not cached")
	}
}

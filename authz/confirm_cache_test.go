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

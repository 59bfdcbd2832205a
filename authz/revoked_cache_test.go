package authz

import (
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
)

// TestCachedTokenRemembersRevoked: a cached token found revoked is denied
// again without a filter probe or a confirm-cache visit, with the same
// decision; once the revocation state changes (a record applied, a lift, a
// replaced filter), the check runs again and its answer counts, so that a
// lifted revocation is not kept alive by the cache.
func TestCachedTokenRemembersRevoked(t *testing.T) {
	w := newTestWorld(t, false)
	tok := signClaims(t, w.byAlg["ES256"], w.claims(nil))
	rec := Record{Kind: KindSubject, Value: "alice", Before: time.Unix(w.now, 0)}
	w.snapshot(t, rec) // in the filter; the first check asks the source

	first := w.check(t, authorization(tok))
	if first.Reason != ReasonRevoked || first.RevokedBy != KindSubject {
		t.Fatalf("first check: %s by %q, want revoked by subject", first.Reason, first.RevokedBy)
	}
	maybes, lookups := w.rev.Stats().Maybes, w.src.count()
	for range 3 {
		if d := w.check(t, authorization(tok)); !sameDecision(d, first) {
			t.Fatalf("cached check decides %s %+v, the first %s %+v", d.Reason, d.Claims, first.Reason, first.Claims)
		}
	}
	if st := w.rev.Stats(); st.Maybes != maybes || w.src.count() != lookups {
		t.Errorf("a cached revoked token probed the filter %d times and the source %d times, want 0 and 0",
			st.Maybes-maybes, w.src.count()-lookups)
	}

	// Another revocation, here in the same slot (which a lift moves too):
	// the check runs again, and the token is still revoked.
	other := rec
	k := rec.LookupKey().FilterKey()
	for i := 0; ; i++ {
		other.Value = "other-" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676%26))
		if ok := slotOf(other.LookupKey().FilterKey()) == slotOf(k); ok {
			break
		}
	}
	w.revoke(t, other)
	if d := w.check(t, authorization(tok)); !sameDecision(d, first) {
		t.Fatalf("after a revocation in the same slot: %s, want %s", d.Reason, first.Reason)
	}
	if w.rev.Stats().Maybes == maybes {
		t.Error("after a revocation in the same slot the check did not run again")
	}

	// The record goes (as a lift takes it) and the filter is replaced
	// without it: the token is allowed, as an uncached check decides.
	w.src.mu.Lock()
	delete(w.src.recs, rec.LookupKey())
	w.src.mu.Unlock()
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	w.rev.Replace(f)
	if d := w.check(t, authorization(tok)); d.Reason != ReasonOK {
		t.Fatalf("after the record went and the filter was replaced: %s, want ok", d.Reason)
	}
}

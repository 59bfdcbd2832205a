package authz

import (
	"context"
	"sync"
	"testing"
	"time"
)

// remove drops the record with that ID from the source, as a lift does.
func (s *memSource) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, recs := range s.recs {
		for i, r := range recs {
			if r.ID == id {
				s.recs[k] = append(recs[:i:i], recs[i+1:]...)
			}
		}
	}
}

// liftOf is the feed entry lifting rec, at position pos.
func liftOf(rec Record, pos uint64) Record {
	return Record{ID: "lift-" + rec.ID, Lifts: rec.ID, Kind: rec.Kind, Issuer: rec.Issuer, Value: rec.Value,
		Before: rec.Before, MaxAgeSeconds: rec.MaxAgeSeconds, ExpiresAt: rec.ExpiresAt, Position: pos}
}

// revokeAll stores recs in src and applies them, as the feed would.
func revokeAll(src *memSource, r *Revocations, recs ...Record) {
	for _, rec := range recs {
		src.store(rec)
		r.Apply(rec)
	}
}

// liftIn removes rec from src and applies its lift at pos.
func liftIn(src *memSource, r *Revocations, rec Record, pos uint64) {
	src.remove(rec.ID)
	r.Apply(liftOf(rec, pos))
}

// A lift re-allows exactly what the lifted record alone revoked: a token
// still covered by another record stays denied, whichever is lifted first,
// and the position moves with the lift.
func TestLiftNeverResurrectsATokenCoveredByAnotherRecord(t *testing.T) {
	iat := time.Now().Unix() - 60
	exp := time.Now().Add(time.Hour)
	tok := Record{ID: "t", Kind: KindToken, Issuer: benchIssuer, Value: "j1", ExpiresAt: exp, Position: 1}
	sub := Record{ID: "s", Kind: KindSubject, Value: "alice", Before: time.Unix(iat+10, 0), ExpiresAt: exp, Position: 2}
	tok2 := Record{ID: "t2", Kind: KindToken, Issuer: benchIssuer, Value: "j1", ExpiresAt: exp, Position: 3}
	tests := []struct {
		name  string
		order []Record // lifted in this order; the token is allowed only after the last
	}{
		{"token record, then subject record, then the token's second record", []Record{tok, sub, tok2}},
		{"subject record first", []Record{sub, tok2, tok}},
		{"one of two records under one key first", []Record{tok2, sub, tok}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newMemSource()
			r := newTestRevocations(t, src)
			v := testVerified("j1", "alice", iat)
			other := testVerified("j2", "bob", iat)
			revokeAll(src, r, tok, sub, tok2)
			checkWant(t, r, v, ReasonRevoked)
			for i, rec := range tt.order {
				pos := uint64(10 + i)
				liftIn(src, r, rec, pos)
				want := ReasonRevoked
				if i == len(tt.order)-1 {
					want = ReasonOK
				}
				checkWant(t, r, v, want)
				checkWant(t, r, other, ReasonOK)
				if got := r.Filter().Position(); got != pos {
					t.Fatalf("position %d after the lift at %d", got, pos)
				}
			}
			if st := r.Stats(); st.Lifts != 3 {
				t.Errorf("%d lifts counted, want 3", st.Lifts)
			}
		})
	}
}

// A lookup that read the source before a lift and answers after it is not
// cached: the check that waited asks again and allows.
func TestLiftAppliedWhileLookupInFlight(t *testing.T) {
	iat := time.Now().Unix() - 60
	rec := Record{ID: "s", Kind: KindSubject, Value: "alice", Before: time.Unix(iat+10, 0), ExpiresAt: time.Now().Add(time.Hour), Position: 1}
	src := newMemSource()
	r := newTestRevocations(t, src)
	revokeAll(src, r, rec)
	v := testVerified("j1", "alice", iat)
	started, release := src.hold()
	defer release()
	res := goCheck(context.Background(), r, v)
	receive(t, started, "lookup") // it has read the record
	liftIn(src, r, rec, 2)
	release()
	if got := receive(t, res, "check"); got.reason != ReasonOK {
		t.Fatalf("check across the lift = %s (%s), want ok", got.reason, got.kind)
	}
	checkWant(t, r, v, ReasonOK)
}

// A lift and a new revocation of the same key, applied concurrently in
// either order (as a lift and a revocation racing at the source come out
// of its feed), leave the key revoked by the new record only.
func TestLiftRacesARevocationOfTheSameKey(t *testing.T) {
	iat := time.Now().Unix() - 60
	exp := time.Now().Add(time.Hour)
	for range 50 {
		src := newMemSource()
		r := newTestRevocations(t, src)
		old := Record{ID: "old", Kind: KindToken, Issuer: benchIssuer, Value: "j1", ExpiresAt: exp, Position: 1}
		revokeAll(src, r, old)
		v := testVerified("j1", "alice", iat)
		checkWant(t, r, v, ReasonRevoked)
		renewed := Record{ID: "new", Kind: KindToken, Issuer: benchIssuer, Value: "j1", ExpiresAt: exp, Position: 3}
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); liftIn(src, r, old, 2) }()
		go func() { defer wg.Done(); src.store(renewed); r.Enforce(renewed) }()
		go func() { defer wg.Done(); r.check(context.Background(), v, 0) }()
		wg.Wait()
		r.Apply(renewed)
		checkWant(t, r, v, ReasonRevoked)
		liftIn(src, r, renewed, 4)
		checkWant(t, r, v, ReasonOK)
	}
}

// A lift the writing node enforces ahead of the feed takes effect at
// once; the feed's copy then only moves the position.
func TestLiftEnforcedAheadOfTheFeed(t *testing.T) {
	src := newMemSource()
	r := newTestRevocations(t, src)
	rec := Record{ID: "t", Kind: KindToken, Issuer: benchIssuer, Value: "j1", ExpiresAt: time.Now().Add(time.Hour), Position: 1}
	revokeAll(src, r, rec)
	v := testVerified("j1", "alice", time.Now().Unix())
	checkWant(t, r, v, ReasonRevoked)
	src.remove(rec.ID)
	lift := liftOf(rec, 2)
	r.Enforce(lift)
	checkWant(t, r, v, ReasonOK)
	if got := r.Filter().Position(); got != 1 {
		t.Fatalf("position %d after a lift enforced ahead, want 1", got)
	}
	r.Apply(lift)
	checkWant(t, r, v, ReasonOK)
	if got := r.Filter().Position(); got != 2 {
		t.Fatalf("position %d after the feed's lift, want 2", got)
	}
}

// A clamp denies the tokens of its issuer issued longer ago than its max
// age at the time of each request, lets the fresh ones through, leaves
// other issuers alone, and lifts.
func TestClamp(t *testing.T) {
	now := time.Now().Unix()
	src := newMemSource()
	r := newTestRevocations(t, src)
	clamp := Record{ID: "c", Kind: KindClamp, Issuer: benchIssuer, MaxAgeSeconds: 300, ExpiresAt: time.Now().Add(time.Hour), Position: 1}
	old := testVerified("old", "alice", now-600)
	fresh := testVerified("fresh", "bob", now-60)
	foreign := &verified{claims: Claims{Issuer: "https://other.test", TokenID: "x", IssuedAt: now - 600}}
	for i := 0; i < numChecks; i++ {
		foreign.keys[i] = foreign.lookupKey(i).FilterKey()
	}
	revokeAll(src, r, clamp)
	tests := []struct {
		name string
		v    *verified
		at   int64
		want Reason
	}{
		{"issued 10 min ago", old, now, ReasonClamped},
		{"issued 1 min ago", fresh, now, ReasonOK},
		{"exactly at the max age", testVerified("edge", "eve", now-300), now, ReasonOK},
		{"the fresh token 5 min later", fresh, now + 300, ReasonClamped},
		{"another issuer", foreign, now, ReasonOK},
	}
	for _, tt := range tests {
		got, kind := r.check(context.Background(), tt.v, tt.at)
		if got != tt.want || (got == ReasonClamped && kind != KindClamp) {
			t.Errorf("%s: %s (%s), want %s", tt.name, got, kind, tt.want)
		}
	}
	// The cached path of a clamped issuer allocates nothing.
	if n := testing.AllocsPerRun(1000, func() { r.check(context.Background(), fresh, now) }); n != 0 {
		t.Errorf("%v allocations per check under a clamp, want 0", n)
	}
	liftIn(src, r, clamp, 2)
	if got, _ := r.check(context.Background(), old, now); got != ReasonOK {
		t.Errorf("after the lift: %s, want ok", got)
	}
}

// A clamp combines with the issuer-wide kill switch: each denies what it
// covers.
func TestClampWithIssuerBefore(t *testing.T) {
	now := time.Now().Unix()
	src := newMemSource()
	r := newTestRevocations(t, src)
	revokeAll(src, r,
		Record{ID: "c", Kind: KindClamp, Issuer: benchIssuer, MaxAgeSeconds: 300, Position: 1},
		Record{ID: "k", Kind: KindIssuerBefore, Issuer: benchIssuer, Before: time.Unix(now-120, 0), Position: 2})
	for _, tt := range []struct {
		iat  int64
		want Reason
	}{{now - 600, ReasonRevoked}, {now - 200, ReasonRevoked}, {now - 60, ReasonOK}} {
		if got, _ := r.check(context.Background(), testVerified("j", "s", tt.iat), now); got != tt.want {
			t.Errorf("issued %ds ago: %s, want %s", now-tt.iat, got, tt.want)
		}
	}
}

package authz

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/bloom"
)

// cacheStep changes the world, then checks a token.
type cacheStep struct {
	name   string
	change func(t *testing.T, w *testWorld, jti string) // nil: none
	// token derives the token checked from the case's token; nil checks
	// the case's token.
	token   func(t *testing.T, tok string) string
	want    Reason
	lookups int // source lookups the check makes
}

// TestCacheDecisions: the verified-token cache and the confirm cache
// never change a decision. Each case checks one token (verified and
// cached by its first step) as the world changes around it, and counts
// the lookups at the source, so it shows which cache answered. Decisions
// on the token carry the claims of its first one.
func TestCacheDecisions(t *testing.T) {
	const leeway = 30 // DefaultConfig().Leeway, in seconds
	first := cacheStep{name: "first check", want: ReasonOK}
	again := func(want Reason) cacheStep { return cacheStep{name: "again", want: want} }
	tokenRecord := func(jti string) Record { return Record{Kind: KindToken, Issuer: issA, Value: jti} }
	subjectRecord := func(w *testWorld) Record {
		return Record{Kind: KindSubject, Value: "alice", Before: time.Unix(w.now, 0), Position: 1}
	}
	// fromFeed stores rec in the source and applies it as the follower
	// does: a subject record with a time is not cached by Apply, so the
	// next check asks the source.
	fromFeed := func(rec func(w *testWorld) Record) func(t *testing.T, w *testWorld, _ string) {
		return func(t *testing.T, w *testWorld, _ string) {
			r := rec(w)
			w.store(t, []Record{r})
			w.rev.Apply(r)
		}
	}
	// flagToken makes the filter say "maybe" for the token's jti without
	// any record: a false positive.
	flagToken := func(_ *testing.T, w *testWorld, jti string) {
		w.rev.Filter().Add(tokenRecord(jti).LookupKey().FilterKey(), 0)
	}
	sourceDown := func(down bool) func(*testing.T, *testWorld, string) {
		return func(_ *testing.T, w *testWorld, _ string) { w.src.setDown(down) }
	}
	clockAt := func(offset int64) func(*testing.T, *testWorld, string) {
		return func(_ *testing.T, w *testWorld, _ string) { w.clock.Store(w.now + 3600 + offset) } // from the token's exp
	}

	tests := []struct {
		name  string
		steps []cacheStep
	}{
		{"a cached allow is the first answer", []cacheStep{first, again(ReasonOK), again(ReasonOK)}},
		{"a cached token is verified by its exact string", []cacheStep{
			first,
			{name: "same header and payload, another signature", want: ReasonBadSignature, token: func(t *testing.T, tok string) string {
				i := strings.LastIndexByte(tok, '.')
				return tok[:i+1] + strings.Repeat("A", len(tok)-i-1)
			}},
			{name: "the same token with a character more", want: ReasonBadSignature, token: func(_ *testing.T, tok string) string { return tok + "A" }},
			{name: "its malleated twin verifies on its own", want: ReasonOK, token: func(t *testing.T, tok string) string { return malleate(t, tok) }},
			again(ReasonOK),
		}},
		{"cached, then revoked by its jti", []cacheStep{
			first,
			{name: "revoked", change: func(t *testing.T, w *testWorld, jti string) { w.revoke(t, tokenRecord(jti)) }, want: ReasonRevoked},
			again(ReasonRevoked),
		}},
		{"cached, then revoked by a subject record from the feed", []cacheStep{
			first,
			{name: "record applied, confirmed at the source", change: fromFeed(subjectRecord), want: ReasonRevoked, lookups: 1},
			again(ReasonRevoked), // the confirm cache holds the answer
		}},
		{"cached, then past its exp", []cacheStep{
			first,
			{name: "within the leeway after exp", change: clockAt(leeway - 1), want: ReasonOK},
			{name: "at the end of the leeway", change: clockAt(leeway), want: ReasonExpired},
			again(ReasonExpired),
		}},
		{"a false positive is cached, then revoked", []cacheStep{
			{name: "flagged by the filter without a record", change: flagToken, want: ReasonOK, lookups: 1},
			again(ReasonOK), // the confirm cache answers
			{name: "revoked: the cached answer is replaced", change: func(t *testing.T, w *testWorld, jti string) { w.revoke(t, tokenRecord(jti)) }, want: ReasonRevoked},
			again(ReasonRevoked),
		}},
		{"a failed confirmation denies and is not cached", []cacheStep{
			first,
			{name: "record from the feed, source down", change: func(t *testing.T, w *testWorld, jti string) {
				w.src.setDown(true)
				fromFeed(subjectRecord)(t, w, jti)
			}, want: ReasonUnavailable, lookups: 1},
			{name: "source still down", want: ReasonUnavailable, lookups: 1},
			{name: "source back", change: sourceDown(false), want: ReasonRevoked, lookups: 1},
			again(ReasonRevoked),
		}},
		{"a failed confirmation of a false positive denies and is not cached", []cacheStep{
			first,
			{name: "flagged, source down", change: func(t *testing.T, w *testWorld, jti string) {
				w.src.setDown(true)
				flagToken(t, w, jti)
			}, want: ReasonUnavailable, lookups: 1},
			{name: "source back", change: sourceDown(false), want: ReasonOK, lookups: 1},
			again(ReasonOK),
		}},
		{"cached, then revocation state not loaded", []cacheStep{
			first,
			{name: "not ready", change: func(_ *testing.T, w *testWorld, _ string) { w.rev.SetReady(false) }, want: ReasonNotReady},
			{name: "ready again", change: func(_ *testing.T, w *testWorld, _ string) { w.rev.SetReady(true) }, want: ReasonOK},
		}},
		{"revoked, then the filter replaced by a snapshot holding the record", []cacheStep{
			first,
			{name: "revoked", change: func(t *testing.T, w *testWorld, jti string) { w.revoke(t, tokenRecord(jti)) }, want: ReasonRevoked},
			{name: "snapshot loaded", change: func(t *testing.T, w *testWorld, jti string) {
				f, err := bloom.New(bloom.DefaultConfig())
				if err != nil {
					t.Fatal(err)
				}
				f.Add(tokenRecord(jti).LookupKey().FilterKey(), 1)
				w.rev.Replace(f)
			}, want: ReasonRevoked, lookups: 1}, // every answer is looked up again after a swap
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWorld(t, false)
			claims := w.claims(func(c map[string]any) { c["sid"] = "s-1" })
			jti := claims["jti"].(string)
			tok := signClaims(t, w.byAlg["ES256"], claims)
			var ref *Claims
			for i, st := range tc.steps {
				if st.change != nil {
					st.change(t, w, jti)
				}
				checked := tok
				if st.token != nil {
					checked = st.token(t, tok)
				}
				before := w.src.count()
				d := w.checker.CheckToken(context.Background(), checked)
				if d.Reason != st.want {
					t.Fatalf("step %d (%s): %s (%v), want %s", i, st.name, d.Reason, d.Err, st.want)
				}
				if n := w.src.count() - before; n != st.lookups {
					t.Errorf("step %d (%s): %d source lookups, want %d", i, st.name, n, st.lookups)
				}
				if i == 0 && w.checker.CachedTokens() != 1 {
					t.Fatalf("%d cached tokens after the first check, want 1", w.checker.CachedTokens())
				}
				if checked != tok || d.Reason == ReasonNotReady {
					continue
				}
				if ref == nil {
					ref = &d.Claims
				} else if d.Claims != *ref {
					t.Errorf("step %d (%s): claims %+v, first %+v", i, st.name, d.Claims, *ref)
				}
			}
		})
	}
}

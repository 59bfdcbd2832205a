package authz

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
)

const (
	evIss = "https://idp.test"
	evAud = "jwtguard-client"
)

// eventFixture is a verifier of logout tokens from evIss, keys from a JWKS
// file, at a fixed clock.
type eventFixture struct {
	key, other *mint.Key
	v          *EventVerifier
	now        int64
}

func newEventFixture(t testing.TB, mutate func(*EventVerifierConfig)) *eventFixture {
	t.Helper()
	f := &eventFixture{now: 1_900_000_000}
	var err error
	for _, k := range []**mint.Key{&f.key, &f.other} {
		if *k, err = mint.NewKey("ES256", "idp-1"); err != nil {
			t.Fatal(err)
		}
	}
	jwks, err := mint.JWKS(f.key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultEventVerifierConfig(evIss, evAud)
	cfg.JWKSFile, cfg.Types, cfg.RequireExp = path, []string{LogoutTokenType}, true
	if mutate != nil {
		mutate(&cfg)
	}
	if f.v, err = NewEventVerifier(cfg, WithClock(func() time.Time { return time.Unix(f.now, 0) })); err != nil {
		t.Fatal(err)
	}
	if err := f.v.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// logoutClaims are the claims of a valid logout token at f's clock.
func (f *eventFixture) logoutClaims() map[string]any {
	return map[string]any{
		"iss": evIss, "aud": evAud, "iat": f.now - 5, "exp": f.now + 115, "jti": "j-1", "sid": "s-1", "sub": "alice",
		"events": map[string]any{BackChannelLogoutEvent: map[string]any{}},
	}
}

// signEvent signs claims with k as a logout token, with header's members
// set (a nil value removes one).
func signEvent(t *testing.T, k *mint.Key, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"typ": LogoutTokenType}
	for name, v := range header {
		h[name] = v
	}
	tok, err := k.SignHeader(h, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEventVerifier(t *testing.T) {
	f := newEventFixture(t, nil)
	attacker := mustNewKey(t, "ES256", "evil")
	cases := []struct {
		name   string
		key    *mint.Key
		header map[string]any
		claims func(map[string]any)
		want   Reason
		errHas string
	}{
		{name: "valid", want: ReasonOK},
		{name: "no typ is accepted", header: map[string]any{"typ": nil}, want: ReasonOK},
		{name: "jku and x5u in the header are ignored", header: map[string]any{"jku": "https://evil.test/jwks", "x5u": "https://evil.test/x5u"}, want: ReasonOK},
		{name: "jku to the attacker's keys does not help", key: attacker, header: map[string]any{"jku": "https://evil.test/jwks"}, want: ReasonUnknownKey},
		{name: "another key under the kid", key: f.other, want: ReasonBadSignature},
		{name: "typ of an access token", header: map[string]any{"typ": "JWT"}, want: ReasonUnsupported},
		{name: "alg none", header: map[string]any{"alg": "none"}, want: ReasonBadAlgorithm},
		{name: "wrong issuer", claims: func(c map[string]any) { c["iss"] = "https://other.test" }, want: ReasonWrongIssuer},
		{name: "wrong audience", claims: func(c map[string]any) { c["aud"] = []string{"someone-else"} }, want: ReasonWrongAudience},
		{name: "audience among several", claims: func(c map[string]any) { c["aud"] = []string{"x", evAud} }, want: ReasonOK},
		{name: "iat missing", claims: func(c map[string]any) { delete(c, "iat") }, want: ReasonMalformed, errHas: "iat"},
		{name: "iat in the future", claims: func(c map[string]any) { c["iat"] = f.now + 60 }, want: ReasonIssuedInFuture},
		{name: "iat stale", claims: func(c map[string]any) { c["iat"] = f.now - 3600 }, want: ReasonExpired, errHas: "ago"},
		{name: "expired", claims: func(c map[string]any) { c["exp"] = f.now - 60 }, want: ReasonExpired},
		{name: "exp missing", claims: func(c map[string]any) { delete(c, "exp") }, want: ReasonMalformed, errHas: "exp"},
		{name: "jti missing", claims: func(c map[string]any) { delete(c, "jti") }, want: ReasonMalformed, errHas: "jti"},
		{name: "jti empty", claims: func(c map[string]any) { c["jti"] = "" }, want: ReasonMalformed, errHas: "jti"},
		{name: "jti too long", claims: func(c map[string]any) { c["jti"] = strings.Repeat("j", 300) }, want: ReasonMalformed, errHas: "jti"},
		{name: "events missing", claims: func(c map[string]any) { delete(c, "events") }, want: ReasonMalformed, errHas: "events"},
		{name: "events not an object", claims: func(c map[string]any) { c["events"] = []string{BackChannelLogoutEvent} }, want: ReasonMalformed, errHas: "events"},
		{name: "event payload not an object", claims: func(c map[string]any) { c["events"] = map[string]any{BackChannelLogoutEvent: "x"} }, want: ReasonMalformed, errHas: "events"},
		{name: "sub_id of the wrong type", claims: func(c map[string]any) { c["sub_id"] = "alice" }, want: ReasonMalformed, errHas: "sub_id"},
		{name: "nested complex subject", claims: func(c map[string]any) {
			c["sub_id"] = map[string]any{"user": map[string]any{"user": map[string]any{}}}
		}, want: ReasonMalformed, errHas: "nest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := f.logoutClaims()
			if tc.claims != nil {
				tc.claims(claims)
			}
			key := f.key
			if tc.key != nil {
				key = tc.key
			}
			et, reason, err := f.v.Verify(context.Background(), signEvent(t, key, tc.header, claims))
			if reason != tc.want {
				t.Fatalf("reason %s (%v), want %s", reason, err, tc.want)
			}
			if tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.errHas)
			}
			if tc.want == ReasonOK && (et.ID != "j-1" || et.Session != "s-1" || et.Subject != "alice" || len(et.Events) != 1 || et.Events[0].Type != BackChannelLogoutEvent) {
				t.Fatalf("token %+v", et)
			}
		})
	}
}

func TestEventVerifierReadsEventsAndSubjects(t *testing.T) {
	f := newEventFixture(t, func(c *EventVerifierConfig) { c.Types, c.RequireExp = []string{SETType}, false })
	claims := f.logoutClaims()
	delete(claims, "exp")
	claims["nonce"] = ""
	claims["txn"] = "t-9"
	claims["sub_id"] = map[string]any{"format": "complex",
		"user":    map[string]any{"format": "iss_sub", "iss": evIss, "sub": "alice"},
		"session": map[string]any{"format": "opaque", "id": "s-7"}}
	claims["events"] = map[string]any{
		"https://schemas.openid.net/secevent/caep/event-type/credential-change": map[string]any{
			"event_timestamp": f.now - 30, "change_type": "update", "credential_type": "password",
			"subject": map[string]any{"format": "email", "email": "alice@example.test"},
		},
	}
	et, reason, err := f.v.Verify(context.Background(), signEvent(t, f.key, map[string]any{"typ": SETType}, claims))
	if reason != ReasonOK {
		t.Fatalf("reason %s: %v", reason, err)
	}
	if !et.HasNonce || et.Txn != "t-9" || et.Expiry != 0 || et.AcceptedUntil != et.IssuedAt+300+30+1 {
		t.Fatalf("token %+v", et)
	}
	if s := et.SubjectID; s == nil || s.User == nil || s.User.Sub != "alice" || s.Session == nil || s.Session.ID != "s-7" {
		t.Fatalf("sub_id %+v", et.SubjectID)
	}
	ev := et.Events[0]
	if ev.Time != f.now-30 || ev.Strings["change_type"] != "update" || ev.Subject == nil || ev.Subject.Email != "alice@example.test" {
		t.Fatalf("event %+v", ev)
	}
}

func TestEventVerifierConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*EventVerifierConfig)
		errHas string
	}{
		"no keys":       {func(c *EventVerifierConfig) {}, "jwks"},
		"no audience":   {func(c *EventVerifierConfig) { c.JWKSFile, c.Audience = "x", "" }, "audience"},
		"HMAC":          {func(c *EventVerifierConfig) { c.JWKSFile, c.Algs = "x", []string{"HS256"} }, "public keys only"},
		"no types":      {func(c *EventVerifierConfig) { c.JWKSFile = "x" }, "types"},
		"short max-age": {func(c *EventVerifierConfig) { c.JWKSFile, c.Types, c.MaxAge = "x", []string{SETType}, 0 }, "max-age"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultEventVerifierConfig(evIss, evAud)
			tc.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("Validate: %v, want an error mentioning %q", err, tc.errHas)
			}
		})
	}
}

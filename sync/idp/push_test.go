package idp

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
)

const pushPath = testPrefix + "ssf/push"

// setClaims are those of a SET issued now to the receiver with events.
func (e *env) setClaims(events map[string]any) map[string]any {
	return map[string]any{"iss": testIss, "aud": testAudience, "iat": time.Now().Unix(), "jti": e.jti("set"), "events": events}
}

func issSub(sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": testIss, "sub": sub}
}

func (e *env) push(t *testing.T, tok string) (int, map[string]string) {
	t.Helper()
	return e.post(t, pushPath, "application/secevent+jwt", testPushToken, tok)
}

// TestPushRefused: unauthenticated, mistyped and invalid pushes get the
// status and error code of RFC 8935 and store nothing.
func TestPushRefused(t *testing.T) {
	e := newEnv(t, nil)
	other, err := mint.NewKey("ES256", "idp-1")
	if err != nil {
		t.Fatal(err)
	}
	credChange := map[string]any{EventCredentialChange: map[string]any{"subject": issSub("alice"), "change_type": "update"}}
	valid := func(mutate func(map[string]any)) string {
		c := e.setClaims(credChange)
		mutate(c)
		return sign(t, e.key, authz.SETType, nil, c)
	}
	cases := []struct {
		name, contentType, bearer, body string
		status                          int
		code                            string
	}{
		{"no authorization", "", "-", valid(func(map[string]any) {}), 401, codeAuthentication},
		{"wrong push token", "", "push-token-0123456789abcdeX", valid(func(map[string]any) {}), 401, codeAuthentication},
		{"push token prefix", "", testPushToken[:10], valid(func(map[string]any) {}), 401, codeAuthentication},
		{"wrong content type", "application/jwt", "", valid(func(map[string]any) {}), 400, codeInvalidRequest},
		{"bad signature", "", "", sign(t, other, authz.SETType, nil, e.setClaims(credChange)), 400, codeInvalidKey},
		{"wrong audience", "", "", valid(func(c map[string]any) { c["aud"] = "https://elsewhere.test" }), 400, codeInvalidAudience},
		{"wrong issuer", "", "", valid(func(c map[string]any) { c["iss"] = "https://other.test" }), 400, codeInvalidIssuer},
		{"stale iat", "", "", valid(func(c map[string]any) { c["iat"] = time.Now().Unix() - 3600 }), 400, codeInvalidRequest},
		{"no jti", "", "", valid(func(c map[string]any) { delete(c, "jti") }), 400, codeInvalidRequest},
		{"no events", "", "", valid(func(c map[string]any) { delete(c, "events") }), 400, codeInvalidRequest},
		{"a logout token", "", "", sign(t, e.key, authz.LogoutTokenType, nil, e.setClaims(credChange)), 400, codeInvalidRequest},
		{"oversized", "", "", strings.Repeat("a", maxBodyBytes+1), 400, codeInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct, bearer := tc.contentType, tc.bearer
			if ct == "" {
				ct = "application/secevent+jwt"
			}
			switch bearer {
			case "":
				bearer = testPushToken
			case "-":
				bearer = ""
			}
			status, body := e.post(t, pushPath, ct, bearer, tc.body)
			if status != tc.status || body["err"] != tc.code || body["description"] == "" {
				t.Fatalf("answer %d %v, want %d %s", status, body, tc.status, tc.code)
			}
		})
	}
	if recs := e.records(t); len(recs) != 0 {
		t.Fatalf("refused pushes stored %v", recs)
	}
}

// TestPushEvents is the event mapping table of the package documentation,
// one pushed SET per row.
func TestPushEvents(t *testing.T) {
	now := time.Now().Unix()
	type want struct {
		kind   authz.Kind
		value  string
		before int64 // for subject records; 0: the SET's iat
	}
	cases := []struct {
		name   string
		mutate func(*Config)
		claims func(c map[string]any)
		want   []want // nil: acknowledged, nothing stored
	}{
		{name: "session-revoked with a session", claims: events(EventSessionRevoked, map[string]any{
			"subject": map[string]any{"user": issSub("alice"), "session": map[string]any{"format": "opaque", "id": "s-9"}}}),
			want: []want{{authz.KindSession, "s-9", 0}}},
		{name: "session-revoked with sub_id", claims: func(c map[string]any) {
			c["sub_id"] = map[string]any{"format": "complex", "user": issSub("alice"), "session": map[string]any{"format": "opaque", "id": "s-8"}}
			c["events"] = map[string]any{EventSessionRevoked: map[string]any{}}
		}, want: []want{{authz.KindSession, "s-8", 0}}},
		{name: "session-revoked for a user", claims: events(EventSessionRevoked, map[string]any{"subject": issSub("alice")}),
			want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "credential-change at its event time", claims: events(EventCredentialChange, map[string]any{
			"subject": issSub("alice"), "change_type": "update", "credential_type": "password", "event_timestamp": now - 20}),
			want: []want{{authz.KindSubject, "alice", now - 20}}},
		{name: "credential-change revoke", claims: events(EventCredentialChange, map[string]any{"subject": issSub("alice"), "change_type": "revoke"}),
			want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "credential created", claims: events(EventCredentialChange, map[string]any{"subject": issSub("alice"), "change_type": "create"})},
		{name: "event time after iat is iat", claims: events(EventCredentialChange, map[string]any{
			"subject": issSub("alice"), "change_type": "update", "event_timestamp": now + 3600}),
			want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "assurance-level-change", claims: events(EventAssuranceLevelChange, map[string]any{"subject": issSub("alice")}),
			want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "token-claims-change", claims: events(EventTokenClaimsChange, map[string]any{"subject": issSub("alice")}),
			want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "token-claims-change ignored", mutate: func(c *Config) { c.ClaimsChange = "ignore" },
			claims: events(EventTokenClaimsChange, map[string]any{"subject": issSub("alice")})},
		{name: "account-disabled", claims: events(EventAccountDisabled, map[string]any{"subject": issSub("alice")}), want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "account-purged", claims: events(EventAccountPurged, map[string]any{"subject": issSub("alice")}), want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "credential-compromise", claims: events(EventCredentialCompromise, map[string]any{"subject": issSub("alice")}), want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "sessions-revoked", claims: events(EventSessionsRevoked, map[string]any{"subject": issSub("alice")}), want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "tokens-revoked, subject in sub_id", claims: func(c map[string]any) {
			c["sub_id"] = issSub("alice")
			c["events"] = map[string]any{EventTokensRevoked: map[string]any{}}
		}, want: []want{{authz.KindSubject, "alice", 0}}},
		{name: "two events in one SET", claims: func(c map[string]any) {
			c["events"] = map[string]any{
				EventAccountDisabled:  map[string]any{"subject": issSub("alice")},
				EventCredentialChange: map[string]any{"subject": issSub("bob"), "change_type": "update"},
			}
		}, want: []want{{authz.KindSubject, "alice", 0}, {authz.KindSubject, "bob", 0}}},
		{name: "unknown event", claims: events("https://schemas.openid.net/secevent/ssf/event-type/verification", map[string]any{"state": "x"})},
		{name: "email not mapped by default", claims: events(EventAccountDisabled, map[string]any{"subject": map[string]any{"format": "email", "email": "alice@example.test"}})},
		{name: "email mapped", mutate: func(c *Config) { c.SubjectFormats = []string{"email"} },
			claims: events(EventAccountDisabled, map[string]any{"subject": map[string]any{"format": "email", "email": "alice@example.test"}}),
			want:   []want{{authz.KindSubject, "alice@example.test", 0}}},
		{name: "opaque mapped", mutate: func(c *Config) { c.SubjectFormats = []string{"iss_sub", "opaque"} },
			claims: events(EventAccountDisabled, map[string]any{"subject": map[string]any{"format": "opaque", "id": "u-7"}}),
			want:   []want{{authz.KindSubject, "u-7", 0}}},
		{name: "iss_sub of another issuer", claims: events(EventAccountDisabled, map[string]any{
			"subject": map[string]any{"format": "iss_sub", "iss": "https://other.test", "sub": "alice"}})},
		{name: "complex subject's user", claims: events(EventAccountDisabled, map[string]any{
			"subject": map[string]any{"user": issSub("alice"), "device": map[string]any{"format": "opaque", "id": "d"}}}),
			want: []want{{authz.KindSubject, "alice", 0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mutate)
			c := e.setClaims(nil)
			tc.claims(c)
			if status, body := e.push(t, sign(t, e.key, authz.SETType, nil, c)); status != http.StatusAccepted {
				t.Fatalf("push: %d %v", status, body)
			}
			recs := e.records(t)
			if len(recs) != len(tc.want) {
				t.Fatalf("records %+v, want %d", recs, len(tc.want))
			}
			for _, w := range tc.want {
				before := w.before
				if before == 0 && w.kind == authz.KindSubject {
					before = c["iat"].(int64)
				}
				found := false
				for _, r := range recs {
					if r.Kind == w.kind && r.Value == w.value && r.Issuer == testIss && r.Actor == "idp:test" &&
						(w.kind != authz.KindSubject || r.Before.Unix() == before) {
						found = true
					}
				}
				if !found {
					t.Errorf("no record %+v in %+v", w, recs)
				}
			}
		})
	}
}

// events sets the SET's events to one event of type typ.
func events(typ string, payload map[string]any) func(map[string]any) {
	return func(c map[string]any) { c["events"] = map[string]any{typ: payload} }
}

// TestPushCredentialChange: a password change denies the user's earlier
// tokens and allows one issued after it.
func TestPushCredentialChange(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Unix()
	old := e.accessToken(t, "alice", "s-1", now-60)
	c := e.setClaims(map[string]any{EventCredentialChange: map[string]any{
		"subject": issSub("alice"), "change_type": "update", "credential_type": "password", "event_timestamp": now - 30}})
	if status, body := e.push(t, sign(t, e.key, authz.SETType, nil, c)); status != http.StatusAccepted {
		t.Fatalf("push: %d %v", status, body)
	}
	if r := e.check(t, old); r != authz.ReasonRevoked {
		t.Fatalf("token issued before the change: %s", r)
	}
	if r := e.check(t, e.accessToken(t, "alice", "s-2", now-29)); r != authz.ReasonOK {
		t.Fatalf("token issued after the change: %s", r)
	}
}

// TestPushDuplicate: a SET delivered again is acknowledged and not applied
// again, by the same process and by a fresh one over the same source.
func TestPushDuplicate(t *testing.T) {
	e := newEnv(t, nil)
	tok := sign(t, e.key, authz.SETType, nil, e.setClaims(map[string]any{EventAccountDisabled: map[string]any{"subject": issSub("alice")}}))
	for i := range 2 {
		if status, body := e.push(t, tok); status != http.StatusAccepted {
			t.Fatalf("delivery %d: %d %v", i, status, body)
		}
	}
	e.srv = httptestServer(t, e.newProvider(t, testConfig(e.jwks)))
	if status, body := e.push(t, tok); status != http.StatusAccepted {
		t.Fatalf("delivery after restart: %d %v", status, body)
	}
	if recs := e.records(t); len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
}

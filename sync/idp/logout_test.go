package idp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
)

// TestLogoutRefused sends the logout requests an attacker, a confused
// provider or a broken proxy would: each is answered 400 with the
// specification's error body (405 for a GET), and none writes a record.
func TestLogoutRefused(t *testing.T) {
	e := newEnv(t, nil)
	attacker, err := mint.NewKey("ES256", "idp-1") // the provider's kid, another key
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := mint.NewKey("ES256", "evil")
	if err != nil {
		t.Fatal(err)
	}
	path := testPrefix + "backchannel-logout"
	form := func(tok string) string { return url.Values{"logout_token": {tok}}.Encode() }
	logoutWith := func(mutate func(map[string]any)) string {
		c := e.logoutClaims("s-1", "alice")
		mutate(c)
		return form(sign(t, e.key, authz.LogoutTokenType, nil, c))
	}
	now := time.Now().Unix()
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		errHas      string
	}{
		{"bad signature", "", form(sign(t, attacker, authz.LogoutTokenType, nil, e.logoutClaims("s-1", ""))), 400, "bad_signature"},
		{"jku to the attacker's key set", "", form(sign(t, stranger, authz.LogoutTokenType, map[string]any{"jku": "https://evil.test/jwks", "x5u": "https://evil.test/c"}, e.logoutClaims("s-1", ""))), 400, "unknown_key"},
		{"wrong audience", "", logoutWith(func(c map[string]any) { c["aud"] = "another-client" }), 400, "wrong_audience"},
		{"wrong issuer", "", logoutWith(func(c map[string]any) { c["iss"] = "https://other.test" }), 400, "wrong_issuer"},
		{"stale iat", "", logoutWith(func(c map[string]any) { c["iat"] = now - 3600 }), 400, "ago"},
		{"iat in the future", "", logoutWith(func(c map[string]any) { c["iat"] = now + 3600; c["exp"] = now + 3700 }), 400, "future"},
		{"no iat", "", logoutWith(func(c map[string]any) { delete(c, "iat") }), 400, "iat"},
		{"expired", "", logoutWith(func(c map[string]any) { c["exp"] = now - 120 }), 400, "expired"},
		{"no exp", "", logoutWith(func(c map[string]any) { delete(c, "exp") }), 400, "exp"},
		{"no jti", "", logoutWith(func(c map[string]any) { delete(c, "jti") }), 400, "jti"},
		{"nonce present", "", logoutWith(func(c map[string]any) { c["nonce"] = "n-1" }), 400, "nonce"},
		{"events missing", "", logoutWith(func(c map[string]any) { delete(c, "events") }), 400, "events"},
		{"another event", "", logoutWith(func(c map[string]any) {
			c["events"] = map[string]any{EventSessionRevoked: map[string]any{}}
		}), 400, "backchannel-logout"},
		{"neither sid nor sub", "", logoutWith(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") }), 400, "neither sid nor sub"},
		{"typ of an ID token", "", form(sign(t, e.key, "JWT", nil, e.logoutClaims("s-1", ""))), 400, "typ"},
		{"alg none", "", form(sign(t, e.key, authz.LogoutTokenType, map[string]any{"alg": "none"}, e.logoutClaims("s-1", ""))), 400, "bad_algorithm"},
		{"not a JWT", "", form("not-a-token"), 400, "malformed"},
		{"no logout_token", "", "foo=bar", 400, "missing"},
		{"logout_token twice", "", form(sign(t, e.key, authz.LogoutTokenType, nil, e.logoutClaims("s-1", ""))) + "&logout_token=x", 400, "more than once"},
		{"oversized body", "", "logout_token=" + strings.Repeat("a", maxBodyBytes+1), 400, "larger than"},
		{"JSON content type", "application/json", `{"logout_token":"x"}`, 400, "Content-Type"},
		{"no content type", "-", form("x"), 400, "Content-Type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.contentType
			switch ct {
			case "":
				ct = "application/x-www-form-urlencoded"
			case "-":
				ct = ""
			}
			status, body := e.post(t, path, ct, "", tc.body)
			if status != tc.status || body["error"] != "invalid_request" || !strings.Contains(body["error_description"], tc.errHas) {
				t.Fatalf("answer %d %v, want %d invalid_request mentioning %q", status, body, tc.status, tc.errHas)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
	})
	if recs := e.records(t); len(recs) != 0 {
		t.Fatalf("refused logouts stored %v", recs)
	}
}

// TestLogoutBySession: a logout naming sid denies that session's tokens
// only, on this node before the provider is answered.
func TestLogoutBySession(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Unix()
	s1, s2 := e.accessToken(t, "alice", "s-1", now-10), e.accessToken(t, "alice", "s-2", now-10)
	bob := e.accessToken(t, "bob", "s-3", now-10)
	for _, tok := range []string{s1, s2, bob} {
		if r := e.check(t, tok); r != authz.ReasonOK {
			t.Fatalf("before logout: %s", r)
		}
	}
	// The header names a jku and an x5u: they are ignored, the
	// configured key set verifies.
	status, body := e.logout(t, sign(t, e.key, authz.LogoutTokenType, map[string]any{"jku": "https://evil.test/jwks"}, e.logoutClaims("s-1", "alice")))
	if status != http.StatusOK {
		t.Fatalf("logout: %d %v", status, body)
	}
	for _, c := range []struct {
		tok  string
		want authz.Reason
	}{{s1, authz.ReasonRevoked}, {s2, authz.ReasonOK}, {bob, authz.ReasonOK}} {
		if r := e.check(t, c.tok); r != c.want {
			t.Errorf("after logout: %s, want %s", r, c.want)
		}
	}
	recs := e.records(t)
	if len(recs) != 1 || recs[0].Kind != authz.KindSession || recs[0].Value != "s-1" || recs[0].Issuer != testIss ||
		recs[0].Actor != "idp:test" || !strings.HasPrefix(recs[0].Reason, "backchannel-logout jti=") || recs[0].ExpiresAt.IsZero() {
		t.Fatalf("records %+v", recs)
	}
}

// TestLogoutBySubject: a logout naming only sub denies that user's tokens
// issued at or before the logout, and not one issued after it.
func TestLogoutBySubject(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Unix()
	old := e.accessToken(t, "alice", "", now-60)
	claims := e.logoutClaims("", "alice")
	claims["iat"] = now - 30
	if status, body := e.logout(t, sign(t, e.key, authz.LogoutTokenType, nil, claims)); status != http.StatusOK {
		t.Fatalf("logout: %d %v", status, body)
	}
	later := e.accessToken(t, "alice", "", now-29)
	bob := e.accessToken(t, "bob", "", now-60)
	for _, c := range []struct {
		name string
		tok  string
		want authz.Reason
	}{{"issued before", old, authz.ReasonRevoked}, {"issued after", later, authz.ReasonOK}, {"another user", bob, authz.ReasonOK}} {
		if r := e.check(t, c.tok); r != c.want {
			t.Errorf("%s: %s, want %s", c.name, r, c.want)
		}
	}
}

// TestLogoutReplay: the same logout token is refused the second time, by
// the process that applied it and by a fresh one (a restart, or another
// node) that finds its record at the source; one record is stored.
func TestLogoutReplay(t *testing.T) {
	e := newEnv(t, nil)
	tok := sign(t, e.key, authz.LogoutTokenType, nil, e.logoutClaims("s-1", ""))
	if status, body := e.logout(t, tok); status != http.StatusOK {
		t.Fatalf("first: %d %v", status, body)
	}
	if status, body := e.logout(t, tok); status != http.StatusBadRequest || !strings.Contains(body["error_description"], "replayed") {
		t.Fatalf("replay: %d %v", status, body)
	}
	restarted := httptestServer(t, e.newProvider(t, testConfig(e.jwks)))
	e.srv = restarted
	if status, body := e.logout(t, tok); status != http.StatusBadRequest || !strings.Contains(body["error_description"], "replayed") {
		t.Fatalf("replay after restart: %d %v", status, body)
	}
	if recs := e.records(t); len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
}

package admin

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// TestLiftReallowsOnlyTheLiftedRecord lifts through the API, one by one,
// the two records that cover one token: while either is left, the token
// stays denied on a running node and on a node started afresh from the
// store (no lifted record comes back with a rebuild); once both are
// lifted it is allowed. A second lift, an unknown ID and a lift without a
// reason get clear answers, and every lift is logged with who and why.
func TestLiftReallowsOnlyTheLiftedRecord(t *testing.T) {
	key, jwksPath := signingKey(t)
	clock := &fakeClock{}
	clock.set(time.Now())
	store, err := embedded.Open(t.TempDir(), embedded.Options{Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	running := lifetimeNode(t, store, clock, jwksPath)
	logs := &lockedBuffer{}
	var mu sync.Mutex
	var trail []audit.Entry
	rec := audit.RecorderFunc(func(_ context.Context, e audit.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		trail = append(trail, e)
		return nil
	})
	srv := httptest.NewServer(NewHandler(store, running.Revocations(), Config{Token: testToken, Audit: rec},
		WithLogger(slog.New(slog.NewJSONHandler(logs, nil))), WithClock(clock.now)))
	t.Cleanup(srv.Close)
	client := &Client{BaseURL: srv.URL, Token: testToken, HTTP: srv.Client()}
	ctx := context.Background()

	iat := clock.now().Add(-time.Minute)
	sign := func(jti string) string {
		tok, err := key.Sign(map[string]any{"iss": "https://idp", "sub": "alice", "jti": jti, "iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tok, other := sign("j1"), sign("j2")
	stored, err := client.Revoke(ctx, []authz.Record{
		{Kind: authz.KindToken, Issuer: "https://idp", Value: "j1", Reason: "stolen"},
		{Kind: authz.KindSubject, Issuer: "https://idp", Value: "alice", Reason: "suspended"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := func(step string, tok string, reason authz.Reason) {
		t.Helper()
		for name, c := range map[string]*authz.Checker{"running node": running, "fresh node": lifetimeNode(t, store, clock, jwksPath)} {
			if d := c.CheckToken(ctx, tok); d.Reason != reason {
				t.Fatalf("%s, %s: %s, want %s", step, name, d.Reason, reason)
			}
		}
	}
	want("revoked twice", tok, authz.ReasonRevoked)
	lift, err := client.Lift(ctx, stored[0].ID, "bob", "wrong token")
	if err != nil {
		t.Fatal(err)
	}
	if lift.Lifts != stored[0].ID || lift.Actor != "bob" || lift.Reason != "wrong token" || lift.Position != 3 {
		t.Errorf("lift entry %+v", lift)
	}
	want("token record lifted, subject record left", tok, authz.ReasonRevoked)
	want("token record lifted, another token of the subject", other, authz.ReasonRevoked)
	if _, err := client.Lift(ctx, stored[1].ID, "bob", "wrong user"); err != nil {
		t.Fatal(err)
	}
	want("both lifted", tok, authz.ReasonOK)
	want("both lifted, another token", other, authz.ReasonOK)

	again, err := client.Lift(ctx, stored[0].ID, "carol", "again")
	if !IsStatus(err, http.StatusConflict) || again.ID != lift.ID || !strings.Contains(err.Error(), "by bob") {
		t.Errorf("second lift: %+v, %v; want 409 naming the first lift", again, err)
	}
	if _, err := client.Lift(ctx, "0123456789abcdef0123456789abcdef", "bob", "x"); !IsStatus(err, http.StatusNotFound) {
		t.Errorf("lift of an unknown ID: %v, want 404", err)
	}
	if _, err := client.Lift(ctx, stored[0].ID, "bob", ""); !IsStatus(err, http.StatusBadRequest) {
		t.Errorf("lift without a reason: %v, want 400", err)
	}
	if _, err := client.Get(ctx, stored[0].ID); !IsStatus(err, http.StatusNotFound) {
		t.Errorf("get of a lifted record: %v, want 404", err)
	}
	mu.Lock()
	var lifts []audit.Entry
	for _, e := range trail {
		if e.Kind == audit.KindLift {
			lifts = append(lifts, e)
		}
	}
	mu.Unlock()
	if len(lifts) != 2 || lifts[0].Actor != "bob" || lifts[0].Reason != "wrong token" || !strings.Contains(lifts[0].Target, stored[0].ID) || lifts[0].Source == "" {
		t.Errorf("audit trail lifts %+v, want two, the first by bob naming %s and the client's address", lifts, stored[0].ID)
	}
	log := logs.String()
	for _, w := range []string{`"msg":"revocation lifted"`, `"id":"` + stored[0].ID, `"actor":"bob"`, `"reason":"wrong token"`} {
		if !strings.Contains(log, w) {
			t.Errorf("audit log lacks %s:\n%s", w, log)
		}
	}
}

// A clamp through the API is kept until lifted, like a key record without
// before: no token's exp bounds it.
func TestClampKeptUntilLifted(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	stored, err := e.client.Revoke(context.Background(), []authz.Record{{Kind: authz.KindClamp, Issuer: "https://idp", MaxAgeSeconds: 300, Reason: "breach"}})
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(stored[0].ExpiresAt); until < 50*365*24*time.Hour {
		t.Errorf("clamp expires in %s, want kept until lifted", until)
	}
	if _, err := e.client.Revoke(context.Background(), []authz.Record{{Kind: authz.KindClamp, Issuer: "https://idp"}}); !IsStatus(err, http.StatusBadRequest) {
		t.Errorf("clamp without a max age: %v, want 400", err)
	}
}

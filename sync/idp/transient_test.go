package idp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/source"
)

// failingSource refuses writes while down is set, as an unreachable Redis
// does.
type failingSource struct {
	source.Source
	down atomic.Bool
}

func (s *failingSource) Put(ctx context.Context, recs []authz.Record) ([]authz.Record, error) {
	if s.down.Load() {
		return nil, errors.New("connection refused")
	}
	return s.Source.Put(ctx, recs)
}

// TestSourceDownIsNotAnAnswer: while the source cannot store a record, a
// logout is answered 400 temporarily_unavailable and a pushed SET 503, and
// neither is remembered as applied: delivered again once the source is
// back, both are applied.
func TestSourceDownIsNotAnAnswer(t *testing.T) {
	e := newEnv(t, nil)
	src := &failingSource{Source: e.store}
	src.down.Store(true)
	p, err := New(testConfig(e.jwks), src, admin.Config{}, WithRevocations(e.rev), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.srv = httptestServer(t, p)
	logout := sign(t, e.key, authz.LogoutTokenType, nil, e.logoutClaims("s-1", ""))
	set := sign(t, e.key, authz.SETType, nil, e.setClaims(map[string]any{EventAccountDisabled: map[string]any{"subject": issSub("alice")}}))

	if status, body := e.logout(t, logout); status != http.StatusBadRequest || body["error"] != "temporarily_unavailable" {
		t.Fatalf("logout while the source is down: %d %v", status, body)
	}
	if status, body := e.push(t, set); status != http.StatusServiceUnavailable || !strings.Contains(body["description"], "connection refused") {
		t.Fatalf("push while the source is down: %d %v", status, body)
	}
	if recs := e.records(t); len(recs) != 0 {
		t.Fatalf("records %v", recs)
	}

	src.down.Store(false)
	if status, body := e.logout(t, logout); status != http.StatusOK {
		t.Fatalf("logout again: %d %v", status, body)
	}
	if status, body := e.push(t, set); status != http.StatusAccepted {
		t.Fatalf("push again: %d %v", status, body)
	}
	if recs := e.records(t); len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
}

package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz/mint"
)

const rotIssuer = "https://rotating.test"

// metrics returns s's Prometheus exposition.
func (s *server) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30s: %s", what)
		}
	}
}

// TestServeKeyRotationWatch: through a real server with an issuer whose
// JWKS the test changes: the missed-rotation alarm rises on a key set that
// does not rotate; after a rotation and the grace period, the old key's
// tokens are revoked on the mesh (a key record in the source) while the
// new key's pass; a token of a key that left the set raises its alarm.
func TestServeKeyRotationWatch(t *testing.T) {
	k1 := newKey(t, "k1")
	k2 := newKey(t, "k2")
	var jwks atomic.Pointer[[]byte]
	serveKeys := func(keys ...*mint.Key) {
		b, err := mint.JWKS(keys...)
		if err != nil {
			t.Fatal(err)
		}
		jwks.Store(&b)
	}
	serveKeys(k1)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*jwks.Load())
	}))
	t.Cleanup(idp.Close)
	cfg := filepath.Join(t.TempDir(), "jwtguard.yaml")
	yaml := `issuers:
  - issuer: ` + rotIssuer + `
    audiences: [api]
    jwks-url: ` + idp.URL + `/jwks
    jwks-refresh: 1s
    max-key-age: 2s
    purge-on-rotation: true
    purge-grace: 1s
`
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--config", cfg, "--data-dir", t.TempDir(), "--key-watch-interval", "100ms", "--log-level", "warn")
	sign := func(k *mint.Key, jti string) string {
		now := time.Now()
		tok, err := k.Sign(map[string]any{"iss": rotIssuer, "aud": "api", "sub": "u-" + jti, "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	old := sign(k1, "old")
	if code, msg := s.grpcCheck(t, old); code != codes.OK {
		t.Fatalf("k1 token: %v %s", code, msg)
	}
	alarm := func(kind string) string {
		return `jwtguard_key_rotation_alarm{alarm="` + kind + `",issuer="` + rotIssuer + `"}`
	}
	waitFor(t, "missed rotation alarm", func() bool {
		v, ok := metricValue(s.metrics(t), alarm("missed_rotation"))
		return ok && v == 1
	})
	var st syncBuffer
	if err := run(t.Context(), []string{"status", "--server", "http://" + s.adminAddr, "-o", "json"}, &st, &st); err != nil || !strings.Contains(st.String(), "missed_rotation") {
		t.Errorf("status does not show the alarm (%v):\n%s", err, st.String())
	}
	if !strings.Contains(s.stderr.String(), "alarm=missed_rotation") {
		t.Errorf("no log line for the missed rotation:\n%s", s.stderr.String())
	}

	// Rotate: the old key's tokens are revoked after the grace period.
	serveKeys(k1, k2)
	waitFor(t, "the old key's token revoked", func() bool {
		code, msg := s.grpcCheck(t, old)
		return code == codes.Unauthenticated && msg == "revoked"
	})
	if code, msg := s.grpcCheck(t, sign(k2, "new")); code != codes.OK {
		t.Errorf("a token of the new key: %v %s", code, msg)
	}
	var out syncBuffer
	if err := run(t.Context(), []string{"revocations", "list", "--server", "http://" + s.adminAddr, "--kind", "key"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], " k1 ") || !strings.Contains(lines[1], "key-rotation watch") {
		t.Errorf("key records:\n%s", out.String())
	}

	// k1 leaves the set; a token signed by it still arrives.
	serveKeys(k2)
	waitFor(t, "k1 gone", func() bool {
		return strings.Contains(s.metrics(t), `jwtguard_key_gone_uses_total{issuer="`+rotIssuer+`",kid="k1"}`)
	})
	if code, msg := s.grpcCheck(t, sign(k1, "late")); code != codes.Unauthenticated || msg != "retired_key" {
		t.Fatalf("token of the gone key: %v %s", code, msg)
	}
	waitFor(t, "gone key alarm logged", func() bool { return strings.Contains(s.stderr.String(), "alarm=gone_key_in_use") })

	// The alarms and the purge are in the audit trail.
	waitFor(t, "alarms and purge audited", func() bool {
		var trail syncBuffer
		if err := run(t.Context(), []string{"audit", "--server", "http://" + s.adminAddr, "-o", "json", "--all"}, &trail, &trail); err != nil {
			t.Fatalf("audit: %v\n%s", err, trail.String())
		}
		a := trail.String()
		return strings.Contains(a, "missed_rotation") && strings.Contains(a, "gone_key_in_use") &&
			strings.Contains(a, "key-rotation-alarm") && strings.Contains(a, "jwtguard key-rotation watch")
	})
}

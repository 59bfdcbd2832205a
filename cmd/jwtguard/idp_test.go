package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
)

const (
	meshClient    = "mesh-client"
	meshSSFAud    = "https://jwtguard.mesh.test/ssf"
	meshPushToken = "mesh-push-token-0123456789"
)

// newProviderMesh is a mesh of n nodes on one Redis, each receiving the
// events of provider "corp", the issuer of the mesh's access tokens.
func newProviderMesh(t *testing.T, n int) *mesh {
	t.Helper()
	m := newMesh(t, 0)
	dir := t.TempDir()
	push := filepath.Join(dir, "push-token")
	if err := os.WriteFile(push, []byte(meshPushToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "jwtguard.yaml")
	yaml := "providers:\n  - name: corp\n    issuer: " + meshIssuer + "\n    jwks-file: " + m.jwks +
		"\n    client-id: " + meshClient + "\n    audience: " + meshSSFAud + "\n    push-token-file: " + push + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m.dirs = append(m.dirs, t.TempDir())
		m.nodes = append(m.nodes, m.start(t, i, "--config", cfg))
	}
	return m
}

// sessionToken is an access token of sub in session sid, issued at iat.
func (m *mesh) sessionToken(t *testing.T, sub, sid string, iat time.Time) string {
	t.Helper()
	claims := map[string]any{"iss": meshIssuer, "aud": "mesh", "sub": sub, "jti": sub + "-" + sid + "-" + iat.Format("150405.000"),
		"iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()}
	if sid != "" {
		claims["sid"] = sid
	}
	tok, err := m.key.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signEvent signs claims as the provider with typ.
func signEvent(t *testing.T, k *mint.Key, typ string, claims map[string]any) string {
	t.Helper()
	tok, err := k.SignHeader(map[string]any{"typ": typ}, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestMeshIdentityProviderEvents: a back-channel logout received by one
// node and a SET pushed to another are enforced by all three nodes.
func TestMeshIdentityProviderEvents(t *testing.T) {
	m := newProviderMesh(t, 3)
	now := time.Now()
	s1, s2 := m.sessionToken(t, "alice", "s-1", now.Add(-time.Minute)), m.sessionToken(t, "alice", "s-2", now.Add(-time.Minute))
	bobOld := m.sessionToken(t, "bob", "s-3", now.Add(-time.Minute))
	for i, s := range m.nodes {
		for _, tok := range []string{s1, s2, bobOld} {
			if code, msg := s.grpcCheck(t, tok); code != codes.OK {
				t.Fatalf("node %d denies a valid token: %s", i, msg)
			}
		}
	}

	// Alice logs out of session s-1 at the provider; node 1 receives it.
	logout := signEvent(t, m.key, authz.LogoutTokenType, map[string]any{
		"iss": meshIssuer, "aud": meshClient, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(), "jti": "logout-1",
		"sid": "s-1", "sub": "alice", "events": map[string]any{authz.BackChannelLogoutEvent: map[string]any{}},
	})
	start := time.Now()
	resp, err := http.PostForm("http://"+m.nodes[1].httpAddr+"/idp/corp/backchannel-logout", url.Values{"logout_token": {logout}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout at node 1: %d", resp.StatusCode)
	}
	took := m.waitRevoked(t, s1, start, m.nodes...)
	t.Logf("back-channel logout at node 1 -> enforced on nodes 0, 1, 2 after %v", took)
	for i, s := range m.nodes {
		if code, msg := s.grpcCheck(t, s2); code != codes.OK {
			t.Errorf("node %d denies alice's other session: %s", i, msg)
		}
	}

	// Bob changes his password; node 2 receives the SET by push.
	set := signEvent(t, m.key, authz.SETType, map[string]any{
		"iss": meshIssuer, "aud": meshSSFAud, "iat": now.Unix(), "jti": "set-1",
		"sub_id": map[string]any{"format": "iss_sub", "iss": meshIssuer, "sub": "bob"},
		"events": map[string]any{"https://schemas.openid.net/secevent/caep/event-type/credential-change": map[string]any{
			"change_type": "update", "credential_type": "password", "event_timestamp": now.Add(-10 * time.Second).Unix()}},
	})
	req, err := http.NewRequest(http.MethodPost, "http://"+m.nodes[2].httpAddr+"/idp/corp/ssf/push", strings.NewReader(set))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/secevent+jwt")
	req.Header.Set("Authorization", "Bearer "+meshPushToken)
	start = time.Now()
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push at node 2: %d", resp.StatusCode)
	}
	took = m.waitRevoked(t, bobOld, start, m.nodes...)
	t.Logf("SSF push at node 2 -> enforced on nodes 0, 1, 2 after %v", took)
	bobNew := m.sessionToken(t, "bob", "s-4", now.Add(-5*time.Second))
	for i, s := range m.nodes {
		if code, msg := s.grpcCheck(t, bobNew); code != codes.OK {
			t.Errorf("node %d denies bob's token issued after the change: %s", i, msg)
		}
	}

	// The same logout delivered to node 0 is a replay: refused, found at
	// the source though node 0 never saw it.
	resp, err = http.PostForm("http://"+m.nodes[0].httpAddr+"/idp/corp/backchannel-logout", url.Values{"logout_token": {logout}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed logout at node 0: %d", resp.StatusCode)
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
)

// grpcCheckFrom checks tok over ext_authz as Envoy sends it for a client
// at source, with the request's id, method, host and path.
func (s *server) grpcCheckFrom(t *testing.T, tok, source, id, method, host, path string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := authv3.NewAuthorizationClient(s.conn()).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: source, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 4711}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: id, Method: method, Host: host, Path: path,
			Headers: map[string]string{"authorization": "Bearer " + tok, "user-agent": "secret-agent/1"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// forwardAuthFrom checks tok over forward-auth as a proxy on loopback
// would, naming the client in X-Forwarded-For.
func (s *server) forwardAuthFrom(t *testing.T, tok, xff, id, method, host, uri string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/authz/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Forwarded-For", xff)
	req.Header.Set("X-Request-Id", id)
	req.Header.Set("X-Forwarded-Method", method)
	req.Header.Set("X-Forwarded-Host", host)
	req.Header.Set("X-Forwarded-Uri", uri)
	req.Header.Set("Cookie", "session=secret-cookie")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// decisionLines parses JSON lines by request id (summaries apart).
func decisionLines(t *testing.T, text string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "{") {
			continue // --dev's how-to, on stdout too
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("decision log line %q: %v", sc.Text(), err)
		}
		if id, ok := m["request_id"].(string); ok {
			out[id] = m
		}
	}
	return out
}

// TestDecisionLogThroughTheServers: allows and denies on gRPC and
// forward-auth each leave one line with the request's facts, the client's
// address (from X-Forwarded-For of a trusted proxy) and the token's
// identity, written out by shutdown; no token, signature, cookie or user
// agent ever reaches the file.
func TestDecisionLogThroughTheServers(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	s := startServe(t, "--dev", "--data-dir", dir, "--log-level", "warn", "--node-id", "edge-7",
		"--decision-log", logPath, "--decision-log-allow-sample", "1", "--trusted-proxies", "127.0.0.1/32")
	tok := s.devToken(t)
	jti := jtiOf(t, tok)

	s.grpcCheckFrom(t, tok, "::ffff:203.0.113.7", "g-allow", "POST", "api.test", "/v1/orders?id=1")
	if code := s.forwardAuthFrom(t, tok, "6.6.6.6, 198.51.100.4", "h-allow", "PUT", "shop.test", "/cart"); code != 200 {
		t.Fatalf("forward-auth allow: %d", code)
	}
	body := `{"kind":"token","issuer":"` + node.DevIssuer + `","value":"` + jti + `","reason":"test","actor":"serve_test"}`
	resp, err := http.Post("http://"+s.adminAddr+"/v1/revocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	s.grpcCheckFrom(t, tok, "2001:db8::9", "g-revoked", "GET", "api.test", "/v1/me")
	if code := s.forwardAuthFrom(t, tok, "198.51.100.4", "h-revoked", "DELETE", "shop.test", "/cart/1"); code != 401 {
		t.Fatalf("forward-auth revoked: %d", code)
	}
	garbage := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLWdhcmJhZ2U"
	s.grpcCheckFrom(t, garbage, "203.0.113.66", "g-garbage", "GET", "api.test", "/")
	s.stop(t) // the one shutdown path writes the log out

	raw, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	lines := decisionLines(t, text)
	ident := map[string]any{"iss": node.DevIssuer, "sub": "dev-user", "jti": jti, "token_id": jti}
	tests := []struct {
		id   string
		want map[string]any
	}{
		{"g-allow", map[string]any{"decision": "allow", "reason": "ok", "transport": "grpc", "method": "POST", "host": "api.test", "path": "/v1/orders?id=1", "source": "203.0.113.7"}},
		{"h-allow", map[string]any{"decision": "allow", "reason": "ok", "transport": "http", "method": "PUT", "host": "shop.test", "path": "/cart", "source": "198.51.100.4"}},
		{"g-revoked", map[string]any{"decision": "deny", "reason": "revoked", "revoked_by": "token", "transport": "grpc", "method": "GET", "path": "/v1/me", "source": "2001:db8::9"}},
		{"h-revoked", map[string]any{"decision": "deny", "reason": "revoked", "revoked_by": "token", "transport": "http", "method": "DELETE", "path": "/cart/1", "source": "198.51.100.4"}},
		{"g-garbage", map[string]any{"decision": "deny", "transport": "grpc", "source": "203.0.113.66"}},
	}
	for _, tc := range tests {
		l, ok := lines[tc.id]
		if !ok {
			t.Errorf("no line for %s in\n%s", tc.id, text)
			continue
		}
		if tc.id != "g-garbage" {
			for k, v := range ident {
				tc.want[k] = v
			}
			if l["kid"] == "" || l["kid"] == nil {
				t.Errorf("%s: no kid", tc.id)
			}
		}
		tc.want["node"] = "edge-7"
		for k, v := range tc.want {
			if l[k] != v {
				t.Errorf("%s: %s = %v, want %v", tc.id, k, l[k], v)
			}
		}
		if _, err := time.Parse(time.RFC3339Nano, l["time"].(string)); err != nil {
			t.Errorf("%s: time %v", tc.id, l["time"])
		}
	}
	if r := lines["g-garbage"]["reason"]; r == "ok" || r == nil {
		t.Errorf("garbage token: reason %v", r)
	}
	if len(lines) != len(tests) {
		t.Errorf("%d decision lines, want %d:\n%s", len(lines), len(tests), text)
	}
	parts := strings.Split(tok, ".")
	gparts := strings.Split(garbage, ".")
	for _, secret := range []string{tok, parts[0] + "." + parts[1], parts[2], garbage, gparts[1], gparts[2], "secret-cookie", "secret-agent"} {
		if strings.Contains(text, secret) {
			t.Errorf("the decision log holds %q", secret)
		}
	}
	if fi, err := os.Stat(logPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("decision log mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if strings.Contains(s.stdout.String(), `"decision"`) {
		t.Error("decisions on stdout with a file as the decision log")
	}
}

// TestDecisionLogOnStdoutByDefault: with no setting, denies go to stdout
// as they happen, allows are left out, the peer is the source when no
// proxy is trusted, and shutdown writes the summary of what was left out.
func TestDecisionLogOnStdoutByDefault(t *testing.T) {
	s := startServe(t, "--dev", "--data-dir", t.TempDir(), "--log-level", "warn")
	tok := s.devToken(t)
	if code := s.forwardAuthFrom(t, tok, "198.51.100.4", "h-allow", "GET", "shop.test", "/"); code != 200 {
		t.Fatalf("forward-auth allow: %d", code)
	}
	if code := s.forwardAuthFrom(t, "not-a-jwt", "198.51.100.4", "h-1", "GET", "shop.test", "/"); code != 401 {
		t.Fatalf("forward-auth: %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l, ok := decisionLines(t, s.stdout.String())["h-1"]; ok {
			if l["decision"] != "deny" || l["reason"] != "malformed" || l["source"] != "127.0.0.1" {
				t.Errorf("line %v, want a malformed deny from the peer 127.0.0.1 (X-Forwarded-For not trusted)", l)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision line on stdout after 30s:\n%s", s.stdout.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop(t)
	out := s.stdout.String()
	if _, ok := decisionLines(t, out)["h-allow"]; ok {
		t.Error("an allow logged with the default sampling (none)")
	}
	if !strings.Contains(out, `"summary":{`) || !strings.Contains(out, `"sampled_out":1`) {
		t.Errorf("no summary of the sampled-out allow after shutdown:\n%s", out)
	}
}

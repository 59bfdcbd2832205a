package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/envoy/scope"
)

// checkAt checks tok through ext_authz as Envoy would for a request from
// addr to method path.
func (s *server) checkAt(t *testing.T, tok, addr, method, path string) (codes.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(s.conn()).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: method, Path: path,
			Headers: map[string]string{"authorization": "Bearer " + tok, "user-agent": "scope-test/1"},
		}},
	}})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return codes.Code(resp.GetStatus().GetCode()), resp.GetStatus().GetMessage()
}

// scopeOf runs jwtguard tokens against s with args and decodes its answer.
func scopeOf(t *testing.T, s *server, args ...string) scope.Answer {
	t.Helper()
	var out, errb syncBuffer
	all := append([]string{"tokens", "--server", "http://" + s.adminAddr, "-o", "json"}, args...)
	if err := run(context.Background(), all, &out, &errb); err != nil {
		t.Fatalf("jwtguard %s: %v\n%s", strings.Join(all, " "), err, errb.String())
	}
	var ans scope.Answer
	if err := json.Unmarshal([]byte(out.String()), &ans); err != nil {
		t.Fatalf("decode %q: %v", out.String(), err)
	}
	return ans
}

func tokenIDs(ans scope.Answer) []string {
	var ids []string
	for _, e := range ans.Tokens {
		ids = append(ids, e.TokenID)
	}
	slices.Sort(ids)
	return ids
}

// TestMeshScopeAndRevoke: tokens used on different nodes are listed by
// every node, with the addresses and routes they were used from; revoking
// an answer denies exactly its tokens on every node.
func TestMeshScopeAndRevoke(t *testing.T) {
	m := newMesh(t, 3, "--scope-share-interval", "1s")
	toks := map[string]string{}
	for _, jti := range []string{"a1", "a2", "b1", "c1"} {
		toks[jti] = m.token(t, jti)
	}
	// The intruder's addresses: 203.0.113.0/24, on nodes 1 and 2.
	uses := []struct {
		node      int
		jti, addr string
		method    string
		path      string
	}{
		{1, "a1", "203.0.113.7", "GET", "/v1/users/42?x=1"},
		{2, "a1", "203.0.113.8", "POST", "/v1/orders"},
		{2, "a2", "::ffff:203.0.113.9", "GET", "/admin/keys"},
		{0, "b1", "198.51.100.1", "GET", "/v1/users/7"},
		{1, "c1", "192.0.2.5", "GET", "/"},
	}
	for _, u := range uses {
		if code, msg := m.nodes[u.node].checkAt(t, toks[u.jti], u.addr, u.method, u.path); code != codes.OK {
			t.Fatalf("%s on node %d: %v %s", u.jti, u.node, code, msg)
		}
	}

	// Node 0 saw none of the intruder's requests; it answers for the mesh.
	var ans scope.Answer
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ans = scopeOf(t, m.nodes[0], "--addr", "203.0.113.0/24")
		if slices.Equal(tokenIDs(ans), []string{"a1", "a2"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node 0 answers %v for 203.0.113.0/24, want [a1 a2] (answer %+v)", tokenIDs(ans), ans)
		}
	}
	if !ans.Mesh {
		t.Error("the answer does not say it covers the mesh")
	}
	for _, e := range ans.Tokens {
		if e.TokenID != "a1" {
			continue
		}
		var addrs []string
		for _, a := range e.AddrExamples {
			addrs = append(addrs, a.String())
		}
		slices.Sort(addrs)
		slices.Sort(e.Routes)
		if !slices.Equal(addrs, []string{"203.0.113.7", "203.0.113.8"}) || !slices.Equal(e.Routes, []string{"GET /v1/users", "POST /v1/orders"}) ||
			e.Requests != 2 || len(e.Nodes) != 2 || e.Subject != "user-a1" || e.KeyID != "mesh-1" || e.DistinctAddrs != 2 {
			t.Errorf("a1: addresses %v, routes %v, %+v", addrs, e.Routes, e)
		}
	}
	if got := tokenIDs(scopeOf(t, m.nodes[2], "--route", "/v1/users")); !slices.Contains(got, "a1") || !slices.Contains(got, "b1") {
		t.Errorf("route /v1/users on node 2: %v", got)
	}
	if got := tokenIDs(scopeOf(t, m.nodes[1], "--subject", "user-b1")); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("subject user-b1 on node 1: %v", got)
	}

	// Revoke what the intruder's addresses used, through node 0.
	var out, errb syncBuffer
	if err := run(context.Background(), []string{"tokens", "--server", "http://" + m.nodes[0].adminAddr, "--addr", "203.0.113.0/24",
		"--revoke", "token", "--yes", "--reason", "intruder"}, &out, &errb); err != nil {
		t.Fatalf("tokens --revoke: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "revoked 2") {
		t.Errorf("tokens --revoke printed:\n%s", out.String())
	}
	var trail syncBuffer
	if err := run(context.Background(), []string{"audit", "--server", "http://" + m.nodes[2].adminAddr, "--kind", "revoke", "-o", "json"}, &trail, &trail); err != nil {
		t.Fatalf("audit: %v\n%s", err, trail.String())
	}
	if n := strings.Count(trail.String(), "intruder"); n != 2 {
		t.Errorf("the audit trail holds %d revocations for the intruder, want 2:\n%s", n, trail.String())
	}
	m.waitRevoked(t, toks["a1"], time.Now(), m.nodes...)
	m.waitRevoked(t, toks["a2"], time.Now(), m.nodes...)
	for i, s := range m.nodes {
		for _, jti := range []string{"b1", "c1"} {
			if code, msg := s.grpcCheck(t, toks[jti]); code != codes.OK {
				t.Errorf("node %d denies %s, which was not in the answer: %s", i, jti, msg)
			}
		}
	}
}

// TestTokensCLI: dry-run stores nothing, an unconfirmed --revoke stores
// nothing, a confirmed one revokes the sessions, and bad queries are 400.
func TestTokensCLI(t *testing.T) {
	m := newMesh(t, 1)
	s := m.nodes[0]
	tok := m.sessionToken(t, "alice", "sess-1", time.Now())
	other := m.sessionToken(t, "bob", "sess-2", time.Now())
	for _, tk := range []string{tok, other} {
		if code, msg := s.checkAt(t, tk, "10.1.2.3", "GET", "/app"); code != codes.OK {
			t.Fatalf("check: %v %s", code, msg)
		}
	}
	if got := tokenIDs(scopeOf(t, s, "--subject", "alice")); len(got) != 1 {
		t.Fatalf("alice's tokens: %v", got)
	}
	var table, errt syncBuffer
	if err := run(context.Background(), []string{"tokens", "--server", "http://" + s.adminAddr, "--addr", "10.1.2.0/24"}, &table, &errt); err != nil {
		t.Fatalf("tokens: %v\n%s", err, errt.String())
	}
	for _, want := range []string{"alice", "bob", "sess-1", "10.1.2.3", "GET /app", "2 tokens (every node sharing the source)"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	base := []string{"tokens", "--server", "http://" + s.adminAddr, "--subject", "alice", "--revoke", "session"}
	var out, errb syncBuffer
	if err := run(context.Background(), append(base, "--dry-run"), &out, &errb); err != nil {
		t.Fatalf("dry run: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "sess-1") || strings.Contains(out.String(), "sess-2") {
		t.Errorf("dry run printed:\n%s", out.String())
	}
	stdin = strings.NewReader("n\n")
	t.Cleanup(func() { stdin = os.Stdin })
	if err := run(context.Background(), base, &out, &errb); err == nil || !strings.Contains(err.Error(), "not confirmed") {
		t.Errorf("unconfirmed revoke: %v", err)
	}
	if code, _ := s.grpcCheck(t, tok); code != codes.OK {
		t.Fatal("a dry run or an unconfirmed revoke revoked")
	}
	stdin = strings.NewReader("yes\n")
	if err := run(context.Background(), base, &out, &errb); err != nil {
		t.Fatalf("confirmed revoke: %v\n%s", err, errb.String())
	}
	if code, msg := s.grpcCheck(t, tok); code != codes.Unauthenticated || msg != "revoked" {
		t.Errorf("alice's session token after revoke: %v %s", code, msg)
	}
	if code, _ := s.grpcCheck(t, other); code != codes.OK {
		t.Error("bob's session is denied")
	}
	if err := run(context.Background(), []string{"tokens", "--server", "http://" + s.adminAddr, "--revoke", "token", "--yes"}, &out, &errb); err == nil {
		t.Error("--revoke without a filter was accepted")
	}
	for _, q := range []string{"addr=10.0.0.0/99", "user=alice", "since=soon"} {
		resp, err := http.Get("http://" + s.adminAddr + "/v1/tokens?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /v1/tokens?%s: %d, want 400", q, resp.StatusCode)
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
)

// detectorsFile writes a config file holding yaml (the detectors section)
// and returns the --config argument.
func detectorsFile(t *testing.T, yaml string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwtguard.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", p}
}

// checkFrom checks tok through ext_authz as Envoy would for a client at
// addr, and returns the status code and message.
func (s *server) checkFrom(t *testing.T, tok, addr string) (codes.Code, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(s.conn()).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{"authorization": "Bearer " + tok, ":path": "/", ":method": "GET", "user-agent": "test"},
		}},
	}})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return codes.Code(resp.GetStatus().GetCode()), resp.GetStatus().GetMessage()
}

// metric returns the sum of the series of name whose labels contain every
// one of labels, from s's /metrics.
func (s *server) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	line := regexp.MustCompile(`^` + name + `(\{[^}]*\})? (\S+)$`)
	for _, l := range strings.Split(string(body), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		ok := true
		for _, lb := range labels {
			ok = ok && strings.Contains(m[1], lb)
		}
		if ok {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}

// waitMetric polls s's metric until it reaches at least want.
func (s *server) waitMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); s.metric(t, name, labels...) < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s%v stayed below %v for 30s (at %v)", name, labels, want, s.metric(t, name, labels...))
		}
	}
}

// revocations lists the records a node's admin API holds.
func (s *server) revocations(t *testing.T) []authz.Record {
	t.Helper()
	resp, err := http.Get("http://" + s.adminAddr + "/v1/revocations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lb struct {
		Revocations []authz.Record `json:"revocations"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&lb); err != nil {
		t.Fatal(err)
	}
	return lb.Revocations
}

// TestDetectorRevokesReplayedTokenMeshWide: a token replayed from many
// addresses is revoked by the node that sees it, with the detector and
// the node in the record, and every node of the mesh enforces it.
func TestDetectorRevokesReplayedTokenMeshWide(t *testing.T) {
	m := newMesh(t, 3, detectorsFile(t, `
detectors:
  token-addresses: {threshold: 4, window: 1m, policy: revoke-token}
`)...)
	tok, other := m.token(t, "stolen"), m.token(t, "honest")
	for i := range 5 {
		if code, msg := m.nodes[0].checkFrom(t, tok, fmt.Sprintf("198.51.100.%d", i+1)); code != codes.OK && msg != "revoked" {
			t.Fatalf("replay %d: %v %s", i, code, msg)
		}
		m.nodes[0].checkFrom(t, other, "192.0.2.1")
	}
	m.waitRevoked(t, tok, time.Now(), m.nodes...)
	recs := m.nodes[2].revocations(t)
	if len(recs) != 1 || recs[0].Kind != authz.KindToken || recs[0].Value != "stolen" || recs[0].Actor != "jwtguard/auto:token-addresses" ||
		!strings.Contains(recs[0].Reason, "more than 4 distinct addresses") || !strings.Contains(recs[0].Reason, "; node ") || recs[0].ExpiresAt.IsZero() {
		t.Fatalf("records %+v, want one token record by jwtguard/auto:token-addresses naming node 0", recs)
	}
	if code, _ := m.nodes[1].checkFrom(t, other, "192.0.2.1"); code != codes.OK {
		t.Fatal("a token used from one address was denied")
	}
	if trail := m.nodes[1].auditTrail(t); !strings.Contains(trail, `"actor":"jwtguard/auto:token-addresses"`) || !strings.Contains(trail, `"kind":"revoke"`) {
		t.Fatalf("audit trail %s, want the automatic revocation", trail)
	}
}

// auditTrail is the body of s's GET /v1/audit.
func (s *server) auditTrail(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + s.adminAddr + "/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// detectNode is one node with detectors on its embedded source.
type detectNode struct {
	*server
	key *mint.Key
}

func startDetectNode(t *testing.T, yaml string) *detectNode {
	t.Helper()
	key := newKey(t, "detect-1")
	jwks, err := mint.JWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--data-dir", filepath.Join(dir, "data"), "--issuer", meshIssuer, "--jwks-file", filepath.Join(dir, "jwks.json"),
		"--audience", "mesh", "--log-level", "error"}, detectorsFile(t, yaml)...)
	return &detectNode{server: startServe(t, args...), key: key}
}

func (d *detectNode) token(t *testing.T, jti, sub string) string {
	t.Helper()
	now := time.Now()
	tok, err := d.key.Sign(map[string]any{"iss": meshIssuer, "aud": "mesh", "sub": sub, "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDetectorForgeryFloodBlocksTheAddress(t *testing.T) {
	n := startDetectNode(t, `
detectors:
  bad-signature: {threshold: 20, window: 1m, policy: block, block-for: 2s}
`)
	forger, err := mint.NewKey("ES256", "detect-1") // claims the real key id
	if err != nil {
		t.Fatal(err)
	}
	good := n.token(t, "good", "alice")
	for i := range 21 {
		tok, err := forger.Sign(map[string]any{"iss": meshIssuer, "aud": "mesh", "sub": "x", "jti": fmt.Sprint("forged-", i), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		if code, msg := n.checkFrom(t, tok, "203.0.113.7"); code == codes.OK || msg != "bad_signature" && msg != "blocked" {
			t.Fatalf("forged token: %v %s", code, msg)
		}
	}
	n.waitMetric(t, 1, "jwtguard_detector_fired_total", `outcome="blocked"`)
	if code, msg := n.checkFrom(t, good, "203.0.113.7"); code != codes.PermissionDenied || msg != "blocked" {
		t.Fatalf("a valid token from the blocked address: %v %s, want PermissionDenied blocked", code, msg)
	}
	if code, _ := n.checkFrom(t, good, "203.0.113.8"); code != codes.OK {
		t.Fatal("another address is denied")
	}
	// The block is recorded after the detector fires (and counts it):
	// poll the trail.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		trail := n.auditTrail(t)
		if strings.Contains(trail, `"kind":"block"`) && strings.Contains(trail, `"source":"203.0.113.7"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit trail %s, want the block", trail)
		}
	}
	// The block ends after block-for.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := n.checkFrom(t, good, "203.0.113.7"); code == codes.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the block never ended")
		}
	}
}

func TestDetectorBlocksTokenAndExpires(t *testing.T) {
	n := startDetectNode(t, `
detectors:
  token-rate: {threshold: 5, window: 1m, policy: block, block-for: 2s}
`)
	tok := n.token(t, "busy", "bob")
	for range 6 {
		if code, msg := n.checkFrom(t, tok, "192.0.2.1"); code != codes.OK && msg != "blocked" {
			t.Fatalf("%v %s", code, msg)
		}
	}
	n.waitMetric(t, 1, "jwtguard_detector_fired_total", `detector="token-rate"`, `outcome="blocked"`)
	if code, msg := n.checkFrom(t, tok, "192.0.2.1"); code != codes.PermissionDenied || msg != "blocked" {
		t.Fatalf("blocked token: %v %s, want PermissionDenied blocked", code, msg)
	}
	if code, _ := n.checkFrom(t, n.token(t, "calm", "bob"), "192.0.2.1"); code != codes.OK {
		t.Fatal("another token of the subject is blocked")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := n.checkFrom(t, tok, "192.0.2.1"); code == codes.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the block never ended")
		}
	}
	if len(n.revocations(t)) != 0 {
		t.Fatal("a block wrote a revocation")
	}
}

// replay presents tok from addresses first..first+count-1.
func (d *detectNode) replay(t *testing.T, tok string, count int) {
	t.Helper()
	for i := range count {
		d.checkFrom(t, tok, fmt.Sprintf("198.51.100.%d", i+1))
	}
}

func TestDetectorDryRunChangesNothing(t *testing.T) {
	n := startDetectNode(t, `
detectors:
  dry-run: true
  token-addresses: {threshold: 2, policy: revoke-subject}
  bad-signature: {threshold: 1, policy: block}
`)
	tok := n.token(t, "stolen", "carol")
	n.replay(t, tok, 4)
	n.checkFrom(t, "not.a.token", "203.0.113.9")
	n.checkFrom(t, "not.a.token", "203.0.113.9")
	n.waitMetric(t, 2, "jwtguard_detector_fired_total", `outcome="dry_run"`)
	if code, _ := n.checkFrom(t, tok, "198.51.100.1"); code != codes.OK {
		t.Fatal("dry run: the token is denied")
	}
	if code, msg := n.checkFrom(t, n.token(t, "x", "dave"), "203.0.113.9"); code != codes.OK {
		t.Fatalf("dry run: the address is blocked (%s)", msg)
	}
	if recs := n.revocations(t); len(recs) != 0 {
		t.Fatalf("dry run wrote %+v", recs)
	}
}

func TestDetectorAllowlist(t *testing.T) {
	n := startDetectNode(t, `
detectors:
  allow: {subjects: [svc-batch], addresses: [203.0.113.0/24]}
  token-addresses: {threshold: 2, policy: revoke-token}
  bad-signature: {threshold: 1, policy: block}
`)
	svc := n.token(t, "svc", "svc-batch")
	n.replay(t, svc, 5)
	n.checkFrom(t, "not.a.token", "203.0.113.9")
	n.checkFrom(t, "not.a.token", "203.0.113.9")
	n.waitMetric(t, 7, "jwtguard_detector_events_total")
	// One client off the list, to show the detectors are awake.
	user := n.token(t, "user", "erin")
	n.replay(t, user, 3)
	n.waitMetric(t, 1, "jwtguard_detector_fired_total", `outcome="revoked"`)
	if code, _ := n.checkFrom(t, svc, "198.51.100.1"); code != codes.OK {
		t.Fatal("an allowlisted subject was revoked")
	}
	if code, _ := n.checkFrom(t, n.token(t, "y", "frank"), "203.0.113.9"); code != codes.OK {
		t.Fatal("an allowlisted address was blocked")
	}
	if recs := n.revocations(t); len(recs) != 1 || recs[0].Value != "user" {
		t.Fatalf("records %+v, want the one of the client off the list", recs)
	}
}

func TestDetectorRevocationCap(t *testing.T) {
	n := startDetectNode(t, `
detectors:
  max-revocations-per-minute: 2
  token-addresses: {threshold: 1, policy: revoke-token}
`)
	start := time.Now()
	for i := range 5 {
		n.replay(t, n.token(t, fmt.Sprint("t", i), fmt.Sprint("user-", i)), 2)
	}
	n.waitMetric(t, 5, "jwtguard_detector_fired_total", `detector="token-addresses"`)
	capped := n.metric(t, "jwtguard_detector_fired_total", `outcome="capped"`)
	revoked := n.metric(t, "jwtguard_detector_fired_total", `outcome="revoked"`)
	// The cap counts per minute of the clock: a run that crosses a minute
	// boundary may revoke twice as many.
	allowed := 2.0
	if start.Truncate(time.Minute) != time.Now().Truncate(time.Minute) {
		allowed = 4
	}
	if revoked > allowed || revoked+capped != 5 || capped < 5-allowed {
		t.Fatalf("%v revoked and %v capped of 5, want at most %v revoked", revoked, capped, allowed)
	}
	if recs := n.revocations(t); float64(len(recs)) != revoked {
		t.Fatalf("%d records for %v revocations", len(recs), revoked)
	}
}

// TestDetectorCatchesReplaySpreadOverTheMesh: a token replayed from 12
// addresses spread over 3 nodes, each seeing 4 (under the threshold of
// 10), is still revoked: the nodes share what they saw through Redis.
func TestDetectorCatchesReplaySpreadOverTheMesh(t *testing.T) {
	m := newMesh(t, 3, detectorsFile(t, `
detectors:
  share-interval: 50ms
  token-addresses: {threshold: 10, window: 1m, policy: revoke-token, share-from: 2}
`)...)
	tok := m.token(t, "spread")
	for i := range 12 {
		s := m.nodes[i%3]
		if code, msg := s.checkFrom(t, tok, fmt.Sprintf("198.51.100.%d", i+1)); code != codes.OK && msg != "revoked" {
			t.Fatalf("replay %d: %v %s", i, code, msg)
		}
	}
	m.waitRevoked(t, tok, time.Now(), m.nodes...)
	recs := m.nodes[0].revocations(t)
	if len(recs) != 1 || recs[0].Actor != "jwtguard/auto:token-addresses" || !strings.Contains(recs[0].Reason, "across the mesh") {
		t.Fatalf("records %+v, want one mesh-wide revocation (claimed by one node)", recs)
	}
	for i, s := range m.nodes {
		if local := s.metric(t, "jwtguard_detector_fired_total", `outcome="revoked"`); local > 1 {
			t.Fatalf("node %d revoked %v times", i, local)
		}
	}
}

// TestDetectorRetiredKeyRevokesSubject: after the issuer's key set drops a
// key, a client still presenting a token of that key is denied
// retired_key, and the retired-key detector revokes its subject: a record
// by jwtguard/auto:retired-key, in the audit trail, that also denies the
// subject's other tokens issued before it, new key or not.
func TestDetectorRetiredKeyRevokesSubject(t *testing.T) {
	k1 := newKey(t, "k1")
	k2 := newKey(t, "k2")
	dir := t.TempDir()
	jwksPath := filepath.Join(dir, "jwks.json")
	writeJWKS := func(keys ...*mint.Key) {
		t.Helper()
		b, err := mint.JWKS(keys...)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(jwksPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeJWKS(k1, k2)
	conf := filepath.Join(dir, "jwtguard.yaml")
	if err := os.WriteFile(conf, []byte("issuers:\n- issuer: "+meshIssuer+"\n  audiences: [mesh]\n  jwks-file: "+jwksPath+
		"\n  jwks-min-refetch: 0s\ndetectors:\n  retired-key: {policy: revoke-subject}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startServe(t, "--data-dir", filepath.Join(dir, "data"), "--config", conf, "--log-level", "error")
	sign := func(k *mint.Key, jti, sub string) string {
		t.Helper()
		now := time.Now()
		tok, err := k.Sign(map[string]any{"iss": meshIssuer, "aud": "mesh", "sub": sub, "jti": jti, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	old, fresh, bystander := sign(k1, "old", "carol"), sign(k2, "fresh", "carol"), sign(k2, "other", "dave")
	for _, tok := range []string{old, fresh, bystander} {
		if code, msg := n.checkFrom(t, tok, "192.0.2.9"); code != codes.OK {
			t.Fatalf("before the rotation: %v %s", code, msg)
		}
	}

	// The issuer drops k1; a token naming a kid the node does not know
	// makes it reload the set (k3 is not published: that token is refused).
	writeJWKS(k2)
	k3 := newKey(t, "k3")
	if code, msg := n.checkFrom(t, sign(k3, "probe", "eve"), "192.0.2.9"); code == codes.OK || msg != "unknown_key" {
		t.Fatalf("a kid never published: %v %s, want unknown_key", code, msg)
	}
	if code, msg := n.checkFrom(t, old, "192.0.2.9"); code != codes.Unauthenticated || msg != "retired_key" {
		t.Fatalf("a token of the dropped key: %v %s, want Unauthenticated retired_key", code, msg)
	}
	n.waitMetric(t, 1, "jwtguard_detector_fired_total", `detector="retired-key"`, `outcome="revoked"`)
	recs := n.revocations(t)
	if len(recs) != 1 || recs[0].Kind != authz.KindSubject || recs[0].Value != "carol" || recs[0].Actor != "jwtguard/auto:retired-key" ||
		!strings.Contains(recs[0].Reason, "signed by key k1, which left the key set") {
		t.Fatalf("records %+v, want one subject record of carol by jwtguard/auto:retired-key naming k1", recs)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, msg := n.checkFrom(t, fresh, "192.0.2.9"); msg == "revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the subject's token of the current key was never revoked")
		}
	}
	if code, msg := n.checkFrom(t, bystander, "192.0.2.9"); code != codes.OK {
		t.Fatalf("another subject's token: %v %s", code, msg)
	}
	if trail := n.auditTrail(t); !strings.Contains(trail, `"actor":"jwtguard/auto:retired-key"`) {
		t.Fatalf("audit trail %s, want the automatic revocation", trail)
	}
}

// newKey is a new ES256 signing key named kid.
func newKey(t *testing.T, kid string) *mint.Key {
	t.Helper()
	k, err := mint.NewKey("ES256", kid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

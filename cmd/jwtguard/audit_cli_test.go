package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/audit"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// runCLI runs "jwtguard args..." and returns its output.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

// A mesh of two nodes on one Redis keeps one audit trail: a revocation
// through node 0's admin API and one written by revoke --redis are both
// listed by node 1, each with its node, actor and address, and the chain
// verifies.
func TestMeshAuditTrail(t *testing.T) {
	m := newMesh(t, 0)
	for i := range 2 {
		m.dirs = append(m.dirs, t.TempDir())
		m.nodes = append(m.nodes, m.start(t, i, "--node-id", []string{"node-a", "node-b"}[i]))
	}
	if st := revokeVia(t, m.nodes[0], "a"); st != 201 {
		t.Fatalf("revoke through node 0: %d", st)
	}
	if _, stderr, err := runCLI(t, "revoke", "--redis", m.redis.URL(), "--jti", "b", "--issuer", meshIssuer, "--reason", "direct", "--actor", "carol"); err != nil {
		t.Fatalf("revoke --redis: %v\n%s", err, stderr)
	}
	server := []string{"--server", "http://" + m.nodes[1].adminAddr}

	out, stderr, err := runCLI(t, append([]string{"audit", "--kind", "revoke", "-o", "json"}, server...)...)
	if err != nil {
		t.Fatalf("audit: %v\n%s", err, stderr)
	}
	var entries []audit.Entry
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatalf("audit -o json: %v\n%s", err, out)
	}
	if len(entries) != 2 {
		t.Fatalf("%d revoke entries, want 2:\n%s", len(entries), out)
	}
	if e := entries[0]; e.Node != "node-a" || !strings.HasPrefix(e.Source, "127.0.0.1:") || !strings.Contains(e.Target, " a ") {
		t.Errorf("admin API entry %+v: want node-a, the client's address and jti a", e)
	}
	if e := entries[1]; !strings.HasPrefix(e.Node, "jwtguard revoke@") || e.Actor != "carol" || e.Reason != "direct" || e.Seq != 2 || e.Prev != entries[0].Hash {
		t.Errorf("revoke --redis entry %+v: want the tool as node, actor carol, linked after the first", e)
	}

	out, _, err = runCLI(t, append([]string{"audit", "--actor", "carol", "--since", "1h"}, server...)...)
	if err != nil || !strings.Contains(out, "SEQ") || !strings.Contains(out, "carol") || strings.Count(out, "\n") != 2 {
		t.Fatalf("audit table: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, append([]string{"audit", "export"}, server...)...)
	if err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("audit export: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil || e.Hash != e.Sum() {
			t.Fatalf("export line %q: %v (or its hash does not match)", line, err)
		}
	}
	out, _, err = runCLI(t, append([]string{"audit", "verify"}, server...)...)
	if err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

// auditServer serves the admin API over the embedded store in dir, with
// its audit trail.
func auditServer(t *testing.T, dir string) (*embedded.Store, []string) {
	t.Helper()
	store, err := embedded.Open(dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	log := audit.NewLog(store.Audit(), audit.WithNode("solo"))
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	srv := httptest.NewServer(admin.NewHandler(store, rev, admin.Config{Token: cliAdminToken, Audit: log}, admin.WithLogger(quiet), admin.WithAuditTrail(log)))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { store.Close() })
	return store, []string{"--server", srv.URL, "--admin-token-file", writeTestFile(t, "admin-token", cliAdminToken)}
}

// audit verify exits non-zero, naming the first broken entry, once an
// entry of the data file is edited.
func TestAuditVerifyNamesBrokenEntry(t *testing.T) {
	dir := t.TempDir()
	store, flags := auditServer(t, dir)
	for _, jti := range []string{"one", "two", "three"} {
		if _, stderr, err := runCLI(t, append([]string{"revoke", "--jti", jti, "--issuer", "https://idp", "--actor", "alice"}, flags...)...); err != nil {
			t.Fatalf("revoke: %v\n%s", err, stderr)
		}
	}
	if _, _, err := runCLI(t, append([]string{"audit", "verify"}, flags...)...); err != nil {
		t.Fatalf("verify of an untouched trail: %v", err)
	}
	// Someone edits the second entry in the data file.
	store.Close()
	db, err := bolt.Open(filepath.Join(dir, embedded.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k, v := b.Cursor().First()
		k, v = b.Cursor().Seek(append(k[:7:7], k[7]+1))
		return b.Put(k, bytes.Replace(v, []byte("alice"), []byte("mallory"), 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, flags = auditServer(t, dir)

	out, _, err := runCLI(t, append([]string{"audit", "verify"}, flags...)...)
	if err == nil || !strings.Contains(err.Error(), "broken at seq 2") || !strings.Contains(err.Error(), "edited") || !strings.Contains(out, "BROKEN") {
		t.Fatalf("audit verify of an edited trail: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, append([]string{"audit", "--limit", "2"}, flags...)...)
	if err != nil || !strings.Contains(out, "mallory") {
		t.Fatalf("audit still lists the trail: %v\n%s", err, out)
	}
}

func TestAuditFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"audit", "--since", "yesterday"},
		{"audit", "--since", "-1h"},
		{"audit", "--limit", "0"},
		{"audit", "-o", "yaml"},
		{"audit", "extra"},
		{"audit", "verify", "extra"},
	} {
		// No server listens there: the flags must be refused before any call.
		_, _, err := runCLI(t, append(args, "--server", "http://127.0.0.1:1", "--timeout", "1s")...)
		if err == nil || strings.Contains(err.Error(), "connect") {
			t.Errorf("%v: %v, want the flags refused", args, err)
		}
	}
}

// A running node records a wrong admin token and a key set change (a key
// replaced in the JWKS file, found by the refetch of an unknown kid).
func TestServeRecordsAuthFailureAndKeySetChange(t *testing.T) {
	const iss = "https://keys.test"
	k1 := newKey(t, "k1")
	k2 := newKey(t, "k2")
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS := func(k *mint.Key) {
		t.Helper()
		b, err := mint.JWKS(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(jwks, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeJWKS(k1)
	conf := writeTestFile(t, "jwtguard.yaml", "issuers:\n- issuer: "+iss+"\n  audiences: [api]\n  jwks-file: "+jwks+"\n  jwks-min-refetch: 0s\n")
	tokenFile := writeTestFile(t, "admin-token", cliAdminToken)
	s := startServe(t, "--config", conf, "--data-dir", t.TempDir(), "--admin-token-file", tokenFile, "--node-id", "edge-1", "--log-level", "error")
	sign := func(k *mint.Key) string {
		now := time.Now()
		tok, err := k.Sign(map[string]any{"iss": iss, "aud": "api", "sub": "u", "jti": k.KID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if code, msg := s.grpcCheck(t, sign(k1)); code != codes.OK {
		t.Fatalf("token of k1: %s", msg)
	}
	writeJWKS(k2)
	if code, msg := s.grpcCheck(t, sign(k2)); code != codes.OK {
		t.Fatalf("token of k2 after the key set changed: %s", msg)
	}
	if _, _, err := runCLI(t, "status", "--server", "http://"+s.adminAddr, "--admin-token-file", writeTestFile(t, "wrong", "wrong-token-0123456789")); err == nil {
		t.Fatal("status with a wrong admin token succeeded")
	}
	flags := []string{"--server", "http://" + s.adminAddr, "--admin-token-file", tokenFile, "-o", "json"}
	var entries []audit.Entry
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		out, stderr, err := runCLI(t, append([]string{"audit"}, flags...)...)
		if err != nil {
			t.Fatalf("audit: %v\n%s", err, stderr)
		}
		entries = nil
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			t.Fatal(err)
		}
		if len(entries) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("within 30s the trail holds %+v; want an auth failure and a key set change", entries)
		}
	}
	kinds := map[audit.Kind]audit.Entry{}
	for _, e := range entries {
		kinds[e.Kind] = e
	}
	if f, ok := kinds[audit.KindAuthFailure]; !ok || f.Node != "edge-1" || !strings.HasPrefix(f.Source, "127.0.0.1:") || f.Target != "GET /v1/status" {
		t.Errorf("auth failure entry %+v: want node edge-1, the address and the request", f)
	}
	if k, ok := kinds[audit.KindKeySet]; !ok || k.Target != iss || k.Reason != "added k2; removed k1" {
		t.Errorf("key set entry %+v: want issuer %s, added k2; removed k1", k, iss)
	}
}

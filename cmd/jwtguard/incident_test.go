package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/sync/admin"
)

// meshConfirm gives the nodes of the tests that check a decision at once
// (after --wait) a confirm timeout that a loaded machine under -race does
// not run out of: the default's 100ms would make a node deny
// revocation_unavailable, right by policy, but not what the test checks.
var meshConfirm = []string{"--confirm-timeout", "10s"}

// cli runs a jwtguard command against node 0's admin API and returns its
// stdout, failing the test on error.
func (m *mesh) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := m.cliErr(args...)
	if err != nil {
		t.Fatalf("jwtguard %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// cliErr is cli returning the error.
func (m *mesh) cliErr(args ...string) (stdout, stderr string, err error) {
	var out, errOut syncBuffer
	err = run(context.Background(), append(args, "--server", "http://"+m.nodes[0].adminAddr), &out, &errOut)
	return out.String(), errOut.String(), err
}

// signed is a token of the mesh's issuer signed by key, issued at iat and
// valid for an hour from then.
func (m *mesh) signed(t *testing.T, key *mint.Key, jti, sub string, iat time.Time) string {
	t.Helper()
	tok, err := key.Sign(map[string]any{"iss": meshIssuer, "aud": "mesh", "sub": sub, "jti": jti,
		"iat": iat.Unix(), "exp": iat.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// decided checks tok on every given node now and fails unless each says
// want ("ok" for allowed, else the deny reason).
func decided(t *testing.T, tok, want string, nodes ...*server) {
	t.Helper()
	for i, s := range nodes {
		if got := decision(t, s, tok); got != want {
			t.Fatalf("node %d: %s, want %s", i, got, want)
		}
	}
}

// eventuallyDecided polls every given node until it says want of tok.
func eventuallyDecided(t *testing.T, tok, want string, nodes ...*server) {
	t.Helper()
	for i, s := range nodes {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			got := decision(t, s, tok)
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d still says %s after 30s, want %s", i, got, want)
			}
		}
	}
}

func decision(t *testing.T, s *server, tok string) string {
	t.Helper()
	code, msg := s.grpcCheck(t, tok)
	if code == codes.OK {
		return "ok"
	}
	return msg
}

// storedRecords decodes the -o json output of revoke or clamp.
func storedRecords(t *testing.T, out string) []authz.Record {
	t.Helper()
	var recs []authz.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("output is not a JSON list of records: %v\n%s", err, out)
	}
	return recs
}

// TestMeshLiftAndClamp: on three nodes of one Redis, a lift re-allows
// exactly the lifted token on every node (and --wait returns only once
// every node has applied it: each decides at once); a clamp denies the
// old tokens of its issuer and lets fresh ones through on every node, then
// is lifted.
func TestMeshLiftAndClamp(t *testing.T) {
	m := newMesh(t, 3, meshConfirm...)
	a, b := m.token(t, "a"), m.token(t, "b")
	var ids []string
	for _, jti := range []string{"a", "b"} {
		out := m.cli(t, "revoke", "--jti", jti, "--issuer", meshIssuer, "--reason", "stolen", "--wait", "-o", "json")
		ids = append(ids, storedRecords(t, out)[0].ID)
	}
	decided(t, a, "revoked", m.nodes...)
	decided(t, b, "revoked", m.nodes...)

	m.cli(t, "revocations", "lift", ids[0], "--reason", "revoked by mistake", "--wait")
	decided(t, a, "ok", m.nodes...)
	decided(t, b, "revoked", m.nodes...)
	if _, errOut, err := m.cliErr("revocations", "lift", ids[0], "--reason", "again"); err == nil || !strings.Contains(err.Error(), "lifted already") {
		t.Errorf("second lift: %v\n%s", err, errOut)
	}
	// A node restarted from its snapshot does not enforce the lift again.
	m.nodes[2].stop(t)
	m.start(t, 2, meshConfirm...)
	decided(t, a, "ok", m.nodes[2])
	decided(t, b, "revoked", m.nodes[2])

	now := time.Now()
	old := m.signed(t, m.key, "old", "user-old", now.Add(-10*time.Minute))
	fresh := m.signed(t, m.key, "fresh", "user-fresh", now)
	decided(t, old, "ok", m.nodes...)
	m.cli(t, "clamp", "--issuer", meshIssuer, "--max-age", "5m", "--reason", "breach", "--wait")
	decided(t, old, "clamped", m.nodes...)
	decided(t, fresh, "ok", m.nodes...)
	m.cli(t, "clamp", "--issuer", meshIssuer, "--off", "--reason", "incident closed", "--wait")
	decided(t, old, "ok", m.nodes...)
	decided(t, b, "revoked", m.nodes...)
	if _, _, err := m.cliErr("clamp", "--issuer", meshIssuer, "--off", "--reason", "again"); err == nil || !strings.Contains(err.Error(), "no clamp") {
		t.Errorf("clamp --off without a clamp: %v", err)
	}
}

// TestMeshWaitAndStatus: --wait returns once every live node has applied
// a revocation, and times out naming a node that was stopped (its report
// has not lapsed yet); status --mesh flags that straggler and a node whose
// key set differs.
func TestMeshWaitAndStatus(t *testing.T) {
	// Reports lapse after three heartbeats: 30s, longer than the test
	// needs the stopped node listed.
	m := newMesh(t, 3, append(meshConfirm, "--heartbeat-interval", "10s")...)
	other := newKey(t, "other-1")
	jwks, err := mint.JWKS(other)
	if err != nil {
		t.Fatal(err)
	}
	otherJWKS := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(otherJWKS, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, "--source", m.redis.URL(), "--data-dir", t.TempDir(), "--node-id", "odd-keys", "--issuer", meshIssuer,
		"--jwks-file", otherJWKS, "--audience", "mesh", "--log-level", "error", "--heartbeat-interval", "10s")

	var st admin.MeshStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := json.Unmarshal([]byte(m.cli(t, "status", "--mesh", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		if len(st.Nodes) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --mesh lists %d nodes after 30s, want 4", len(st.Nodes))
		}
	}
	m.cli(t, "revoke", "--jti", "w1", "--issuer", meshIssuer, "--reason", "test", "--wait")
	decided(t, m.token(t, "w1"), "revoked", m.nodes...)

	m.nodes[2].stop(t)
	_, errOut, err := m.cliErr("revoke", "--jti", "w2", "--issuer", meshIssuer, "--reason", "test", "--wait", "--wait-timeout", "10s")
	if err == nil || !strings.Contains(err.Error(), "node-2 (at ") || strings.Contains(err.Error(), "node-0") || strings.Contains(err.Error(), "odd-keys") {
		t.Fatalf("revoke --wait with node 2 stopped: %v\n%s", err, errOut)
	}
	eventuallyDecided(t, m.token(t, "w2"), "revoked", m.nodes[0], m.nodes[1])

	out := m.cli(t, "status", "--mesh", "-o", "json")
	var got struct {
		admin.MeshStatus
		Flags map[string][]string `json:"flags"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if f := got.Flags["node-2"]; !strings.Contains(strings.Join(f, ","), admin.FlagBehind) {
		t.Errorf("node-2 flags %v, want %s\n%s", f, admin.FlagBehind, out)
	}
	if f := got.Flags["odd-keys"]; !strings.Contains(strings.Join(f, ","), admin.FlagKeysDiffer) {
		t.Errorf("odd-keys flags %v, want %s\n%s", f, admin.FlagKeysDiffer, out)
	}
	for _, id := range []string{"node-0", "node-1"} {
		if f := got.Flags[id]; len(f) != 0 {
			t.Errorf("%s flagged %v\n%s", id, f, out)
		}
	}
	table := m.cli(t, "status", "--mesh")
	for _, want := range []string{"node-0", "node-2", "behind", "keys-differ", "4 live nodes"} {
		if !strings.Contains(table, want) {
			t.Errorf("status --mesh table lacks %q:\n%s", want, table)
		}
	}
}

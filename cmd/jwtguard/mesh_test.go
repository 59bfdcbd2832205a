package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/sync/redis/redistest"
)

const meshIssuer = "https://mesh.test"

// mesh is several `serve` nodes following one real Redis.
type mesh struct {
	redis *redistest.Server
	key   *mint.Key
	jwks  string
	nodes []*server
	dirs  []string
}

func newMesh(t *testing.T, n int, extra ...string) *mesh {
	t.Helper()
	m := &mesh{redis: redistest.Start(t, redistest.Persistent())}
	var err error
	if m.key, err = mint.NewKey("ES256", "mesh-1"); err != nil {
		t.Fatal(err)
	}
	jwks, err := mint.JWKS(m.key)
	if err != nil {
		t.Fatal(err)
	}
	m.jwks = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(m.jwks, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m.dirs = append(m.dirs, t.TempDir())
		m.nodes = append(m.nodes, m.start(t, i, extra...))
	}
	return m
}

// start runs node i (again) with its own data dir.
func (m *mesh) start(t *testing.T, i int, extra ...string) *server {
	t.Helper()
	s := startServe(t, m.args(i, extra...)...)
	if i < len(m.nodes) {
		m.nodes[i] = s
	}
	return s
}

// args are the serve arguments of node i.
func (m *mesh) args(i int, extra ...string) []string {
	return append([]string{"--source", m.redis.URL(), "--data-dir", m.dirs[i], "--node-id", fmt.Sprintf("node-%d", i), "--issuer", meshIssuer,
		"--jwks-file", m.jwks, "--audience", "mesh", "--log-level", "error", "--publish-interval", "200ms"}, extra...)
}

func (m *mesh) token(t *testing.T, jti string) string {
	t.Helper()
	now := time.Now()
	tok, err := m.key.Sign(map[string]any{"iss": meshIssuer, "aud": "mesh", "sub": "user-" + jti, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// revokeVia posts a token revocation to node s's admin API.
func revokeVia(t *testing.T, s *server, jti string) int {
	t.Helper()
	body := `{"kind":"token","issuer":"` + meshIssuer + `","value":"` + jti + `","reason":"mesh test"}`
	resp, err := http.Post("http://"+s.adminAddr+"/v1/revocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitRevoked polls every node until it denies tok as revoked and returns
// how long each took from start.
func (m *mesh) waitRevoked(t *testing.T, tok string, start time.Time, nodes ...*server) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(nodes))
	for i, s := range nodes {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if code, msg := s.grpcCheck(t, tok); code == codes.Unauthenticated && msg == "revoked" {
				took[i] = time.Since(start)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not enforce the revocation within 10s", i)
			}
		}
	}
	return took
}

func TestMeshRevocationReachesEveryNode(t *testing.T) {
	m := newMesh(t, 3)
	a, b := m.token(t, "a"), m.token(t, "b")
	for i, s := range m.nodes {
		if code, msg := s.grpcCheck(t, a); code != codes.OK {
			t.Fatalf("node %d denies a valid token: %s", i, msg)
		}
	}
	start := time.Now()
	if st := revokeVia(t, m.nodes[1], "a"); st != http.StatusCreated {
		t.Fatalf("revoke through node 1: %d", st)
	}
	took := m.waitRevoked(t, a, start, m.nodes...)
	t.Logf("admin API of node 1 -> enforced on nodes 0, 1, 2 after %v", took)

	start = time.Now()
	var out syncBuffer
	if err := run(context.Background(), []string{"revoke", "--redis", m.redis.URL(), "--jti", "b", "--issuer", meshIssuer, "--reason", "test"}, &out, &out); err != nil {
		t.Fatalf("revoke --redis: %v\n%s", err, out.String())
	}
	took = m.waitRevoked(t, b, start, m.nodes...)
	t.Logf("jwtguard revoke --redis -> enforced on nodes 0, 1, 2 after %v", took)
	if code, _ := m.nodes[0].grpcCheck(t, m.token(t, "c")); code != codes.OK {
		t.Error("an unrevoked token is denied")
	}
}

// checkLoad checks tokens on every node until stopped, counting any
// decision that is not the expected one and any failed call.
type checkLoad struct {
	wrong, failed, done atomic.Int64
	stop                chan struct{}
	wg                  sync.WaitGroup
}

func (m *mesh) load(t *testing.T, allowed, revoked string, nodes ...*server) *checkLoad {
	t.Helper()
	l := &checkLoad{stop: make(chan struct{})}
	for _, s := range nodes {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
				select {
				case <-l.stop:
					return
				default:
				}
				codeA, _ := s.grpcCheckQuiet(allowed)
				codeR, msgR := s.grpcCheckQuiet(revoked)
				switch {
				case codeA == codes.Unavailable || codeR == codes.Unavailable && msgR != "revoked":
					l.failed.Add(1)
				case codeA != codes.OK || codeR != codes.Unauthenticated:
					l.wrong.Add(1)
				}
				l.done.Add(2)
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *checkLoad) finish() { close(l.stop); l.wg.Wait() }

func TestMeshKeepsEnforcingWhileRedisIsDown(t *testing.T) {
	m := newMesh(t, 3)
	good, stolen := m.token(t, "good"), m.token(t, "stolen")
	if st := revokeVia(t, m.nodes[0], "stolen"); st != http.StatusCreated {
		t.Fatalf("revoke: %d", st)
	}
	m.waitRevoked(t, stolen, time.Now(), m.nodes...)

	l := m.load(t, good, stolen, m.nodes[0], m.nodes[1])
	time.Sleep(200 * time.Millisecond)
	m.redis.Stop()
	time.Sleep(time.Second)
	// Nothing can be acknowledged while Redis is down.
	if st := revokeVia(t, m.nodes[1], "during-outage"); st == http.StatusCreated {
		t.Fatal("a revocation was acknowledged while Redis was down")
	}
	// A node cut off from the mesh: stopped now, back after new revocations.
	m.nodes[2].stop(t)
	m.redis.Restart()
	time.Sleep(200 * time.Millisecond)
	after := m.token(t, "after")
	start := time.Now()
	for deadline := time.Now().Add(10 * time.Second); revokeVia(t, m.nodes[1], "after") != http.StatusCreated; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("revocations still refused 10s after Redis returned")
		}
	}
	took := m.waitRevoked(t, after, start, m.nodes[0], m.nodes[1])
	l.finish()
	t.Logf("load: %d checks, %d wrong, %d failed; revocation after the outage enforced after %v", l.done.Load(), l.wrong.Load(), l.failed.Load(), took)
	if l.wrong.Load() != 0 || l.failed.Load() != 0 {
		t.Fatalf("%d wrong decisions and %d failed checks during the outage", l.wrong.Load(), l.failed.Load())
	}
	// The node that was away catches up when it reconnects.
	back := m.start(t, 2)
	m.waitRevoked(t, after, time.Now(), back)
	// Denied as revoked; a confirm lookup that times out on a loaded
	// machine denies as revocation_unavailable meanwhile, never allows.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, msg := back.grpcCheck(t, stolen)
		if code == codes.OK {
			t.Fatal("returning node allowed a token revoked before")
		}
		if msg == "revoked" {
			break
		}
		if msg != "revocation_unavailable" || time.Now().After(deadline) {
			t.Fatalf("returning node: %v %s for a token revoked before", code, msg)
		}
	}
}

func TestMeshNodeStartsFromItsSnapshotWhileRedisIsDown(t *testing.T) {
	m := newMesh(t, 1)
	tok := m.token(t, "x")
	if st := revokeVia(t, m.nodes[0], "x"); st != http.StatusCreated {
		t.Fatalf("revoke: %d", st)
	}
	m.nodes[0].stop(t) // saves its snapshot
	m.redis.Stop()
	s := m.start(t, 0) // ready without Redis
	// The snapshot holds the filter, not the records: a match it cannot
	// confirm is denied (the failure policy), never allowed.
	if code, msg := s.grpcCheck(t, tok); code == codes.OK || (msg != "revoked" && msg != "revocation_unavailable") {
		t.Fatalf("%v %s, want the revoked token denied from the node's snapshot", code, msg)
	}
	if code, _ := s.grpcCheck(t, m.token(t, "y")); code != codes.OK {
		t.Fatal("an unrevoked token is denied")
	}
}

func TestMeshNodeFarBehindReloadsASnapshot(t *testing.T) {
	m := newMesh(t, 2, "--redis-feed-retention", "5")
	m.nodes[1].stop(t)
	var jtis []string
	for i := 0; i < 40; i++ {
		jti := fmt.Sprintf("far-%d", i)
		if st := revokeVia(t, m.nodes[0], jti); st != http.StatusCreated {
			t.Fatalf("revoke %s: %d", jti, st)
		}
		jtis = append(jtis, jti)
	}
	var out syncBuffer
	if err := run(context.Background(), []string{"publish", "--redis", m.redis.URL()}, &out, &out); err != nil {
		t.Fatalf("publish: %v\n%s", err, out.String())
	}
	back := m.start(t, 1, "--redis-feed-retention", "5")
	for _, jti := range slices.Concat(jtis[:3], jtis[len(jtis)-3:]) {
		m.waitRevoked(t, m.token(t, jti), time.Now(), back)
	}
	metrics := get(t, "http://"+back.httpAddr+"/metrics")
	if n, ok := metricValue(metrics, "jwtguard_snapshot_reloads_total"); !ok || n < 1 {
		t.Errorf("no snapshot reload counted (%v, %v):\n%s", n, ok, grepLines(metrics, "reloads"))
	}
}

// metricValue returns the value of the unlabelled sample name in a
// Prometheus text exposition, and whether there is exactly one.
func metricValue(exposition, name string) (float64, bool) {
	var v float64
	found := 0
	for _, line := range strings.Split(exposition, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != name {
			continue // a comment, another metric, or one with labels
		}
		f, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			return 0, false
		}
		v, found = f, found+1
	}
	return v, found == 1
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestMetricValue(t *testing.T) {
	const name = "jwtguard_snapshot_reloads_total"
	tests := []struct {
		name, exposition string
		want             float64
		ok               bool
	}{
		{"one", "# HELP x\n" + name + " 1\n", 1, true},
		{"ten is not one", name + " 10\n", 10, true},
		{"a longer name is another metric", name + "_more 1\n", 0, false},
		{"labelled samples are others", name + `{a="b"} 1` + "\n", 0, false},
		{"missing", "other 1\n", 0, false},
		{"not a number", name + " x\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := metricValue(tt.exposition, name)
			if got != tt.want || ok != tt.ok {
				t.Errorf("metricValue = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestMeshRedisLostItsDataKeepsDenying: after Redis loses its data, a node
// that never confirmed a subject revocation (its confirm cache has no
// answer) must not look the record up in the emptied Redis, find nothing
// and allow the token: it denies, and reports the source diverged at once.
func TestMeshRedisLostItsDataKeepsDenying(t *testing.T) {
	m := newMesh(t, 2)
	tok := m.token(t, "alice") // sub user-alice, issued before the revocation's time
	before := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	body := `{"kind":"subject","issuer":"` + meshIssuer + `","value":"user-alice","before":"` + before + `","reason":"mesh test"}`
	resp, err := http.Post("http://"+m.nodes[0].adminAddr+"/v1/revocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke subject: %d", resp.StatusCode)
	}
	// Node 1 applies it from the feed without checking a token of alice,
	// so its confirm cache holds no answer for her.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if pos, ok := metricValue(get(t, "http://"+m.nodes[1].httpAddr+"/metrics"), "jwtguard_feed_position"); ok && pos >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node 1 did not apply the revocation within 10s")
		}
	}
	if out := redisCLIFlushAll(t, m.redis.Addr()); !strings.Contains(out, "OK") {
		t.Fatalf("FLUSHALL: %s", out)
	}
	if code, msg := m.nodes[1].grpcCheck(t, tok); code == codes.OK || (msg != "revoked" && msg != "revocation_unavailable") {
		t.Fatalf("after Redis lost its data: %v %q, want the subject-revoked token denied", code, msg)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if v, ok := metricValue(get(t, "http://"+m.nodes[1].httpAddr+"/metrics"), "jwtguard_source_diverged"); ok && v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("jwtguard_source_diverged did not rise within 10s")
		}
	}
	if code, _ := m.nodes[1].grpcCheck(t, m.token(t, "bob")); code != codes.OK {
		t.Error("an unrevoked token is denied")
	}
}

// redisCLIFlushAll empties the Redis at addr with redis-cli.
func redisCLIFlushAll(t *testing.T, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "FLUSHALL").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli FLUSHALL: %v\n%s", err, out)
	}
	return string(out)
}

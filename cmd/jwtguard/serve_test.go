package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/jwtguard/jwtguard/cmd/jwtguard/node"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// server is a `jwtguard serve` running in the test process.
type server struct {
	grpcAddr, httpAddr, adminAddr string
	stdout, stderr                *syncBuffer
	cancel                        context.CancelFunc
	done                          chan error
	connOnce                      sync.Once
	grpcConn                      *grpc.ClientConn
}

// startServe runs a node as `jwtguard serve args...` would, on free
// loopback ports, and waits until it is ready.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	s, run := newServe(t, args...)
	run()
	return s
}

// newServe assembles a node as `jwtguard serve args...` would, its
// listeners bound to free loopback ports (s's addresses are known), and
// returns run, which serves it and waits until it is ready.
func newServe(t *testing.T, args ...string) (s *server, run func()) {
	t.Helper()
	s = &server{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan error, 1)}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	all := append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, args...)
	cfg, err := node.Load(all, os.Getenv, fs)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, node.WithLogger(newLogger(cfg, s.stderr)), node.WithOutput(s.stdout))
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	a := n.Addrs()
	s.grpcAddr, s.httpAddr, s.adminAddr = a.GRPC.String(), a.HTTP.String(), a.Admin.String()
	return s, func() {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		go func() { s.done <- n.Run(ctx) }()
		t.Cleanup(func() { s.stop(t) })
		s.waitReady(t)
	}
}

func (s *server) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			t.Fatalf("serve exited: %v\nstderr:\n%s", err, s.stderr.String())
		default:
		}
		resp, err := http.Get("http://" + s.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not ready after 20s\nstderr:\n%s", s.stderr.String())
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	if s.grpcConn != nil {
		s.grpcConn.Close()
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Error("serve did not stop within 20s of SIGTERM")
	}
}

var tokenLine = regexp.MustCompile(`export TOKEN=(\S+)`)

func (s *server) devToken(t *testing.T) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		if m := tokenLine.FindStringSubmatch(s.stdout.String()); m != nil {
			return m[1]
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("no token printed; stdout:\n%s", s.stdout.String())
	return ""
}

// conn is the server's gRPC client connection, made once.
func (s *server) conn() *grpc.ClientConn {
	s.connOnce.Do(func() {
		s.grpcConn, _ = grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	})
	return s.grpcConn
}

// grpcCheck checks tok through ext_authz as Envoy would and returns the
// status code and message.
func (s *server) grpcCheck(t *testing.T, tok string) (codes.Code, string) {
	t.Helper()
	code, msg := s.grpcCheckQuiet(tok)
	if code == codes.Unavailable && msg == "" {
		t.Fatalf("gRPC check failed")
	}
	return code, msg
}

// grpcCheckQuiet is grpcCheck for goroutines: a failed call is
// codes.Unavailable with an empty message.
func (s *server) grpcCheckQuiet(tok string) (codes.Code, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(s.conn()).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{"authorization": "Bearer " + tok, ":path": "/", ":method": "GET"},
		}},
	}})
	if err != nil {
		return codes.Unavailable, ""
	}
	return codes.Code(resp.GetStatus().GetCode()), resp.GetStatus().GetMessage()
}

// healthy reports whether gRPC health says the ext_authz service serves.
func (s *server) healthy(t *testing.T) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc, err := healthpb.NewHealthClient(s.conn()).Check(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	return err == nil && hc.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

func (s *server) forwardAuth(t *testing.T, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/authz/orders", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("X-Forwarded-Uri", "/orders")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func jtiOf(t *testing.T, tok string) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ JTI string }
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.JTI
}

// TestServeDevEndToEnd runs `serve --dev` as a user would: the printed
// token is allowed over gRPC and forward-auth, revoked through the admin
// API, denied at once, and still denied after a restart.
func TestServeDevEndToEnd(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, "--dev", "--data-dir", dir, "--log-level", "warn")
	tok := s.devToken(t)
	if strings.Contains(s.stderr.String(), tok) {
		t.Error("the token appears in the logs")
	}
	if !s.healthy(t) {
		t.Error("gRPC health does not say SERVING once ready")
	}
	if code, msg := s.grpcCheck(t, tok); code != codes.OK {
		t.Fatalf("gRPC check: %v %s", code, msg)
	}
	if resp := s.forwardAuth(t, tok); resp.StatusCode != 200 || resp.Header.Get("X-Jwt-Sub") != "dev-user" {
		t.Fatalf("forward-auth: %d, x-jwt-sub %q", resp.StatusCode, resp.Header.Get("X-Jwt-Sub"))
	}

	body := `{"kind":"token","issuer":"` + node.DevIssuer + `","value":"` + jtiOf(t, tok) + `","reason":"test","actor":"serve_test"}`
	resp, err := http.Post("http://"+s.adminAddr+"/v1/revocations", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	// Enforced by this server before the API answered.
	if code, msg := s.grpcCheck(t, tok); code != codes.Unauthenticated || msg != "revoked" {
		t.Fatalf("after revoke: %v %q, want UNAUTHENTICATED revoked", code, msg)
	}
	if resp := s.forwardAuth(t, tok); resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error_description="revoked"`) {
		t.Fatalf("forward-auth after revoke: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	metrics := get(t, "http://"+s.httpAddr+"/metrics")
	for _, want := range []string{
		`jwtguard_decisions_total{reason="revoked",transport="grpc"} 1`, `jwtguard_decisions_total{reason="revoked",transport="http"} 1`,
		`jwtguard_decisions_total{reason="ok",transport="grpc"} 1`, `jwtguard_decisions_total{reason="ok",transport="http"} 1`, "jwtguard_ready 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Enforced by the admin API, then brought by the feed: one filter key.
	waitMetric(t, s, "jwtguard_feed_position", 1)
	if v, ok := metricValue(get(t, "http://"+s.httpAddr+"/metrics"), "jwtguard_filter_entries"); !ok || v != 1 {
		t.Errorf("jwtguard_filter_entries %v (%v), want 1 for one revocation", v, ok)
	}
	s.stop(t)

	// A restart keeps the revocation (and the dev key, so the token verifies).
	s2 := startServe(t, "--dev", "--data-dir", dir, "--log-level", "warn")
	if code, msg := s2.grpcCheck(t, tok); code != codes.Unauthenticated || msg != "revoked" {
		t.Fatalf("after restart: %v %q, want revoked", code, msg)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestServeRefusesUnsafeAdminAddress(t *testing.T) {
	err := run(context.Background(), []string{"serve", "--dev", "--data-dir", t.TempDir(), "--admin-addr", "0.0.0.0:0",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "admin-token-file") {
		t.Fatalf("err = %v, want a refusal naming --admin-token-file", err)
	}
}

// A corrupt data file or node snapshot stops serve with an error naming
// it; it never starts from a silently empty state.
func TestServeRefusesCorruptState(t *testing.T) {
	for _, file := range []string{"filter.snap", "revocations.db"} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			s := startServe(t, "--dev", "--data-dir", dir, "--log-level", "error")
			s.stop(t)
			if err := os.WriteFile(filepath.Join(dir, file), bytes.Repeat([]byte("corrupt!"), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), []string{"serve", "--dev", "--data-dir", dir, "--log-level", "error",
				"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), file) {
				t.Fatalf("err = %v, want an error naming %s", err, file)
			}
		})
	}
}

// waitMetric waits until the node's metric name is at least want.
func waitMetric(t *testing.T, s *server, name string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if v, ok := metricValue(get(t, "http://"+s.httpAddr+"/metrics"), name); ok && v >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s below %v after 10s", name, want)
		}
	}
}

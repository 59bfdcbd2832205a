package examples

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// upstream is the app behind nginx: it records what reaches it.
type upstream struct {
	mu   sync.Mutex
	subs []string // x-jwt-sub of each request that arrived
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.subs = append(u.subs, r.Header.Get("X-Jwt-Sub"))
	u.mu.Unlock()
	fmt.Fprintf(w, "hello %s\n", r.Header.Get("X-Jwt-Sub"))
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.subs...)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func freePort(t *testing.T) string {
	t.Helper()
	l := listen(t)
	defer l.Close()
	return l.Addr().String()
}

// forwardAuthServer runs jwtguard's HTTP forward-auth over a real checker
// and embedded source, trusting key for issuer "https://idp.test".
func forwardAuthServer(t *testing.T, key *mint.Key) (addr string, revoke func(authz.Record)) {
	t.Helper()
	dir := t.TempDir()
	jwks, err := mint.JWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := embedded.Open(filepath.Join(dir, "data"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	filter, err := bloom.New(bloom.Config{Entries: 1000, FPRate: 0.001, DeltaEntries: 100})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev.SetReady(true)
	cfg := authz.DefaultConfig()
	ic := authz.DefaultIssuerConfig("https://idp.test")
	ic.JWKSFile, ic.Audiences = jwksPath, []string{"shop"}
	cfg.Issuers = []authz.IssuerConfig{ic}
	checker, err := authz.NewChecker(cfg, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/authz/", envoy.NewAuthorization(checker))
	l := listen(t)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), func(r authz.Record) {
		r.ExpiresAt = time.Now().Add(time.Hour)
		stored, err := store.Put(context.Background(), []authz.Record{r})
		if err != nil {
			t.Fatal(err)
		}
		rev.Enforce(stored...)
	}
}

// startNginx runs the example nginx.conf, its addresses pointed at the
// test's servers, until the test ends.
func startNginx(t *testing.T, jwtguardAddr, appAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Fatal("nginx is not on PATH; install it: apt-get install -y nginx-light (the project's test command does)")
	}
	listenAddr := freePort(t)
	conf := string(readExample(t, nginxConf))
	for old, repl := range map[string]string{
		"server 127.0.0.1:8181;": "server " + jwtguardAddr + ";",
		"server 127.0.0.1:8000;": "server " + appAddr + ";",
		"listen 8080;":           "listen " + listenAddr + ";",
		"worker_processes auto;": "worker_processes 1;",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("%s no longer contains %q: update this test", nginxConf, old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	dir := t.TempDir()
	path := writeRelocated(t, conf, dir)
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path, "-g", "daemon off; master_process off;")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listenAddr); err == nil {
			c.Close()
			return listenAddr
		}
	}
	logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	t.Fatalf("nginx did not listen on %s:\n%s\n%s", listenAddr, out, logs)
	return ""
}

func TestNginxForwardAuthEndToEnd(t *testing.T) {
	key, err := mint.NewKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	jwtguardAddr, revoke := forwardAuthServer(t, key)
	app := &upstream{}
	appL := listen(t)
	appSrv := &http.Server{Handler: app, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = appSrv.Serve(appL) }()
	t.Cleanup(func() { appSrv.Close() })
	nginx := startNginx(t, jwtguardAddr, appL.Addr().String())

	now := time.Now()
	token := func(sub, jti string) string {
		tok, err := key.Sign(map[string]any{"iss": "https://idp.test", "aud": "shop", "sub": sub, "jti": jti,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good, stolen := token("alice", "j-1"), token("bob", "j-2")
	injected, nul := token("alice\r\nX-Admin: true", "j-3"), token("alice\x00", "j-4")
	revoke(authz.Record{Kind: authz.KindToken, Issuer: "https://idp.test", Value: "j-2"})

	tests := []struct {
		name      string
		headers   map[string]string
		path      string
		status    int
		upstream  string // x-jwt-sub the app must see; "" = the app must not be reached; "-" = reached without one
		challenge string // part of WWW-Authenticate on a deny
		second    string // a second Authorization header
	}{
		{"valid token", map[string]string{"Authorization": "Bearer " + good}, "/orders", 200, "alice", "", ""},
		{"a client's own x-jwt-sub is replaced", map[string]string{"Authorization": "Bearer " + good, "X-Jwt-Sub": "admin"}, "/orders", 200, "alice", "", ""},
		{"no token", nil, "/orders", 401, "", "Bearer", ""},
		{"bad signature", map[string]string{"Authorization": "Bearer " + good[:len(good)-4] + "AAAA"}, "/orders", 401, "", `error_description="bad_signature"`, ""},
		{"revoked token", map[string]string{"Authorization": "Bearer " + stolen}, "/orders", 401, "", `error_description="revoked"`, ""},
		{"health path is not checked", nil, "/healthz", 200, "", "", ""},
		{"CRLF in the subject: no header, none smuggled", map[string]string{"Authorization": "Bearer " + injected, "X-Jwt-Sub": "admin"}, "/orders", 200, "-", "", ""},
		{"NUL in the subject: no header, no 500", map[string]string{"Authorization": "Bearer " + nul}, "/orders", 200, "-", "", ""},
		{"two Authorization headers", map[string]string{"Authorization": "Bearer " + good}, "/orders", 400, "", "", "Bearer " + stolen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(app.seen())
			req, _ := http.NewRequest("GET", "http://"+nginx+tc.path, nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			if tc.second != "" {
				req.Header.Add("Authorization", tc.second)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			seen := app.seen()[before:]
			switch {
			case tc.upstream == "" && len(seen) > 0:
				t.Errorf("the app was reached: %v", seen)
			case tc.upstream == "-" && (len(seen) != 1 || seen[0] != ""):
				t.Errorf("the app saw x-jwt-sub %q, want one request without it", seen)
			case tc.upstream != "" && tc.upstream != "-" && (len(seen) != 1 || seen[0] != tc.upstream):
				t.Errorf("the app saw x-jwt-sub %v, want [%s]", seen, tc.upstream)
			}
			if tc.challenge != "" {
				if got := resp.Header.Values("Www-Authenticate"); len(got) != 1 || !strings.Contains(got[0], tc.challenge) {
					t.Errorf("WWW-Authenticate %q, want one containing %q", got, tc.challenge)
				}
			}
		})
	}
}

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// oidcProviderVersion is the oidc-provider release the end-to-end test
// installs (panva's certified OpenID provider, from the npm registry).
const oidcProviderVersion = "9.13.3"

// installOIDCProvider installs oidc-provider once per version under the
// user's cache directory, with the test's provider script beside it, and
// returns that directory.
func installOIDCProvider(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: the oidc-provider end-to-end test needs Node.js and npm (apt-get install nodejs npm)", tool)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "jwtguard-test", "oidc-provider-"+oidcProviderVersion)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json")); err != nil {
		// Install beside, then rename: a process killed halfway leaves no
		// half-installed directory behind.
		tmp, err := os.MkdirTemp(filepath.Dir(mkdirAll(t, dir)), "install-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private":true,"type":"module"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact", "oidc-provider@"+oidcProviderVersion)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm install oidc-provider@%s: %v\n%s", oidcProviderVersion, err, out)
		}
		os.RemoveAll(dir)
		if err := os.Rename(tmp, dir); err != nil {
			t.Fatal(err)
		}
	}
	script, err := os.ReadFile(filepath.Join("testdata", "oidc-provider", "provider.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "provider.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mkdirAll(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// oidcProvider is the provider script running under node.
type oidcProvider struct {
	issuer string
	stdin  io.WriteCloser
	stderr *syncBuffer
	lines  *bufio.Scanner
}

const (
	e2eClientID     = "jwtguard-rp"
	e2eClientSecret = "jwtguard-rp-secret-0123456789abcdef"
	e2eRedirectURI  = "http://127.0.0.1:1/cb" // never fetched: the login stops at its redirect
	e2eAudience     = "urn:jwtguard:api"
)

// startOIDCProvider starts the provider script on a loopback port; it is
// configured by configure.
func startOIDCProvider(t *testing.T, dir string) *oidcProvider {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "provider.mjs")
	cmd.Dir = dir
	p := &oidcProvider{stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	p.lines = bufio.NewScanner(out)
	var hello struct{ Issuer string }
	p.readLine(t, &hello)
	p.issuer = hello.Issuer
	return p
}

// readLine decodes the script's next line of output into v, waiting at
// most a minute (the cleanup ends the script when it hangs).
func (p *oidcProvider) readLine(t *testing.T, v any) {
	t.Helper()
	read := make(chan bool, 1)
	go func() { read <- p.lines.Scan() }()
	select {
	case ok := <-read:
		if !ok {
			t.Fatalf("provider script ended: %v\nstderr:\n%s", p.lines.Err(), p.stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("provider script silent for a minute\nstderr:\n%s", p.stderr.String())
	}
	if err := json.Unmarshal(p.lines.Bytes(), v); err != nil {
		t.Fatalf("provider script said %q: %v", p.lines.Text(), err)
	}
}

// configure gives the provider its signing key and jwtguard's
// back-channel logout URI, and waits until it serves.
func (p *oidcProvider) configure(t *testing.T, key *mint.Key, logoutURI string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.jwk")
	if err := key.Save(path); err != nil {
		t.Fatal(err)
	}
	jwk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, err := json.Marshal(map[string]any{"jwk": json.RawMessage(jwk), "client_id": e2eClientID, "client_secret": e2eClientSecret,
		"redirect_uri": e2eRedirectURI, "backchannel_logout_uri": logoutURI, "audience": e2eAudience})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	var ready struct{ Ready bool }
	p.readLine(t, &ready)
}

// browser is one user agent with its own cookies (its own login session).
type browser struct {
	c   *http.Client
	iss string
}

func newBrowser(t *testing.T, iss string) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	redirect, _ := url.Parse(e2eRedirectURI)
	return &browser{iss: iss, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host == redirect.Host || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		}}}
}

func (b *browser) do(t *testing.T, method, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.iss+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(data)
}

var interactionPath = regexp.MustCompile(`^/interaction/[A-Za-z0-9_-]+$`)

// login signs user in through the provider's development login and consent
// pages, exchanges the code, and returns the JWT access token.
func (b *browser) login(t *testing.T, user string) string {
	t.Helper()
	verifier := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {e2eClientID}, "response_type": {"code"}, "scope": {"openid api"},
		"redirect_uri": {e2eRedirectURI}, "state": {"st"}, "nonce": {"n"}, "resource": {e2eAudience},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, body := b.do(t, http.MethodGet, "/auth?"+q.Encode(), nil)
	var code string
	for step := 0; code == ""; step++ {
		if step == 4 {
			t.Fatalf("no code after %d interactions; last answer %d:\n%.2000s", step, resp.StatusCode, body)
		}
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, e2eRedirectURI) {
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			if code = u.Query().Get("code"); code == "" {
				t.Fatalf("redirected without a code: %s", loc)
			}
			break
		}
		path := resp.Request.URL.Path
		if resp.StatusCode != http.StatusOK || !interactionPath.MatchString(path) {
			t.Fatalf("at %s: %d\n%.2000s", path, resp.StatusCode, body)
		}
		form := url.Values{"prompt": {"consent"}}
		if strings.Contains(body, `name="login"`) {
			form = url.Values{"prompt": {"login"}, "login": {user}, "password": {"any"}}
		}
		resp, body = b.do(t, http.MethodPost, path, form)
	}
	req, err := http.NewRequest(http.MethodPost, b.iss+"/token", strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {e2eRedirectURI}, "code_verifier": {verifier}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(e2eClientID, e2eClientSecret)
	tresp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer tresp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(tresp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %d %v %+v", tresp.StatusCode, err, tok)
	}
	return tok.AccessToken
}

var xsrfField = regexp.MustCompile(`name="xsrf" value="([^"]+)"`)

// logout ends the browser's session at the provider (RP-initiated logout,
// confirmed), which sends jwtguard the back-channel logout before it
// answers.
func (b *browser) logout(t *testing.T) {
	t.Helper()
	resp, body := b.do(t, http.MethodGet, "/session/end?client_id="+e2eClientID, nil)
	m := xsrfField.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("logout page: %d\n%.2000s", resp.StatusCode, body)
	}
	resp, body = b.do(t, http.MethodPost, "/session/end/confirm", url.Values{"xsrf": {m[1]}, "logout": {"yes"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout confirm: %d\n%.2000s", resp.StatusCode, body)
	}
}

// claimsOf returns the claims of a JWS without verifying it (for test
// messages only).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWS (%d parts)", len(parts))
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOIDCProviderBackChannelLogout: a user logs in twice at a real OpenID
// provider and logs out of one session; the provider's back-channel logout
// to one jwtguard node denies that session's access tokens on all three
// nodes of the mesh, and only those.
func TestOIDCProviderBackChannelLogout(t *testing.T) {
	op := startOIDCProvider(t, installOIDCProvider(t))
	m := newMesh(t, 0)
	cfg := filepath.Join(t.TempDir(), "jwtguard.yaml")
	yaml := fmt.Sprintf(`issuers:
  - issuer: %[1]s
    jwks-url: %[1]s/jwks
    audiences: [%[2]s]
    algs: [ES256]
providers:
  - name: op
    issuer: %[1]s
    jwks-url: %[1]s/jwks
    algs: [ES256]
    client-id: %[3]s
`, op.issuer, e2eAudience, e2eClientID)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var runs []func()
	for i := range 3 {
		m.dirs = append(m.dirs, t.TempDir())
		s, run := newServe(t, m.args(i, "--config", cfg)...)
		m.nodes, runs = append(m.nodes, s), append(runs, run)
	}
	op.configure(t, m.key, "http://"+m.nodes[0].httpAddr+"/idp/op/backchannel-logout")
	for _, run := range runs {
		run()
	}

	first, second := newBrowser(t, op.issuer), newBrowser(t, op.issuer)
	tok1, tok2 := first.login(t, "alice"), second.login(t, "alice")
	c1, c2 := claimsOf(t, tok1), claimsOf(t, tok2)
	if c1["sid"] == nil || c1["sid"] == c2["sid"] || c1["sub"] != "alice" {
		t.Fatalf("access tokens' claims: %v and %v; want alice in two sessions", c1, c2)
	}
	for i, s := range m.nodes {
		for _, tok := range []string{tok1, tok2} {
			if code, msg := s.grpcCheck(t, tok); code != codes.OK {
				t.Fatalf("node %d denies a fresh access token: %s", i, msg)
			}
		}
	}

	start := time.Now()
	first.logout(t)
	// The provider reports the back-channel call before it answers; its
	// stderr reaches the buffer through a pipe, so wait for the line.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(op.stderr.String(), "backchannel.success"); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(op.stderr.String(), "backchannel.error") || time.Now().After(deadline) {
			t.Fatalf("the provider's back-channel logout did not succeed:\n%s", op.stderr.String())
		}
	}
	took := m.waitRevoked(t, tok1, start, m.nodes...)
	t.Logf("logout at oidc-provider -> enforced on nodes 0, 1, 2 after %v", took)
	for i, s := range m.nodes {
		if code, msg := s.grpcCheck(t, tok2); code != codes.OK {
			t.Errorf("node %d denies the other session's token: %s", i, msg)
		}
	}
}

package main

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc/codes"

	"github.com/jwtguard/jwtguard/bench/loadgen"
)

// chromium returns the browser the console test drives: Debian's
// chromium, which .ci/test installs when it is missing.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: .ci/test installs Debian's chromium package")
	return ""
}

// browserContext starts a headless chromium for the test.
func browserContext(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // the tests run as root on CI
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser, on a context without a deadline
	// (a deadline on it would end the browser); each step then has its own.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs the browser steps named name within a minute.
func do(t *testing.T, ctx context.Context, name string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		body, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s (at %s): %v\npage:\n%s", name, loc, err, body)
	}
}

// screenshotDir is where the test saves a screenshot of each view:
// JWTGUARD_SCREENSHOTS (docs/console when refreshing the README's
// pictures), or a temporary folder.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("JWTGUARD_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestConsoleInBrowser drives the console in a real browser: sign in with
// the admin token, watch the live rates move under bench/loadgen traffic,
// revoke a user's tokens from the page, and find the revocation, by the
// console, enforced through gRPC.
func TestConsoleInBrowser(t *testing.T) {
	dir := t.TempDir()
	keys, err := loadgen.CreateKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	const adminTok = "browser-test-admin-token-0123456789abcdef"
	tokFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokFile, []byte(adminTok), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--issuer", loadgen.Issuer, "--audience", loadgen.Audience, "--jwks-file", keys.JWKSFile,
		"--admin-token-file", tokFile, "--data-dir", filepath.Join(dir, "data"))
	now := time.Now()
	mallory, err := keys.Signing.Sign(map[string]any{"iss": loadgen.Issuer, "aud": loadgen.Audience, "sub": "mallory",
		"jti": "mallory-1", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if code, msg := s.grpcCheck(t, mallory); code != codes.OK {
		t.Fatalf("mallory's token before: %v %s", code, msg)
	}

	base := "http://" + s.adminAddr + "/console/"
	shots := screenshotDir(t)
	ctx := browserContext(t)
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, t)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}

	// Sign in.
	do(t, ctx, "open the sign-in page",
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		shot("login"))
	do(t, ctx, "type the token", chromedp.SendKeys(chromedp.CSS(`#token`), adminTok))
	do(t, ctx, "submit", chromedp.Submit(chromedp.CSS(`#token`)))
	do(t, ctx, "sign in",
		chromedp.WaitVisible(chromedp.CSS(`canvas#rates`)))

	// The live rates move while loadgen sends traffic (five points drawn).
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan error, 1)
	go func() {
		cfg := loadgen.DefaultRunConfig()
		cfg.Target, cfg.Keys, cfg.Conns, cfg.Streams = s.grpcAddr, keys, 1, 4
		cfg.Mix, cfg.RepeatedTokens, cfg.Expect = loadgen.Mix{loadgen.Repeated: 100}, 8, false
		cfg.Duration, cfg.MaxDuration = 60*time.Second, 60*time.Second
		_, err := loadgen.Run(loadCtx, cfg)
		loadDone <- err
	}()
	moved := false
	attr := func(name string) string {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		a, err := chromedp.Run(actx, chromedp.AttributeValue(chromedp.CSS(`canvas#rates`), name))
		if err != nil {
			t.Fatalf("read the chart's %s: %v", name, err)
		}
		return a.Value
	}
	for deadline := time.Now().Add(45 * time.Second); time.Now().Before(deadline) && !moved; {
		allowed, points := attr("data-allowed"), attr("data-points")
		v, _ := strconv.ParseFloat(allowed, 64)
		if n, _ := strconv.Atoi(points); v > 0 && n >= 5 {
			moved = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	do(t, ctx, "overview screenshot", shot("overview"))
	stopLoad()
	<-loadDone
	if !moved {
		t.Fatal("the overview's allowed rate never moved under load")
	}

	// A request without the session cookie changes nothing.
	resp, err := http.PostForm(base+"revoke", url.Values{"kind": {"subject"}, "issuer": {loadgen.Issuer}, "value": {"mallory"},
		"reason": {"forged"}, "confirm": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoke without a session: %d, want 401", resp.StatusCode)
	}
	if code, _ := s.grpcCheck(t, mallory); code != codes.OK {
		t.Fatal("a request without a session revoked mallory")
	}

	// Search mallory's live tokens, revoke them by subject from the page,
	// confirm, and see it enforced. The scope table learns of a token off
	// the hot path: search until it is listed.
	found := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		do(t, ctx, "search mallory's tokens", chromedp.Navigate(base+"tokens?subject=mallory"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := chromedp.Run(qctx, chromedp.Evaluate[int](`document.querySelectorAll("button[data-kind=subject]").length`))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			found = true
			break
		}
	}
	if !found {
		t.Fatal("the live-token search never listed mallory's token")
	}
	do(t, ctx, "revoke by subject from the search",
		shot("tokens"),
		chromedp.SendKeys(chromedp.CSS(`form.revoke-found:has(button[data-kind=subject]) input[name=reason]`), "account taken over"),
		chromedp.Submit(chromedp.CSS(`form.revoke-found:has(button[data-kind=subject])`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		shot("confirm"),
		chromedp.Click(chromedp.CSS(`#confirm`)),
		chromedp.WaitVisible(chromedp.CSS(`p.note`)))
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, msg := s.grpcCheck(t, mallory)
		if code != codes.OK {
			if !strings.Contains(msg, "revoked") {
				t.Errorf("mallory denied with %v %q, want revoked", code, msg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mallory's token still allowed 30s after the console revoked it")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The revocation feed names the console as the actor.
	do(t, ctx, "revocations view",
		chromedp.Navigate(base+"revocations"),
		chromedp.WaitVisible(chromedp.CSS(`main table`)),
		shot("revocations"))
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	feed, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`main table`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(feed, "mallory") || !strings.Contains(feed, "console") {
		t.Errorf("revocations view does not show the console's record:\n%s", feed)
	}

	// The audit trail names the console as the actor of the revocation.
	do(t, ctx, "audit view", chromedp.Navigate(base+"audit"), chromedp.WaitVisible(chromedp.CSS(`main table`)))
	tctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	trail, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`main table`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(trail, "console") || !strings.Contains(trail, "mallory") {
		t.Errorf("audit view does not name the console's revocation:\n%s", trail)
	}

	// Lifting the record from the page lets mallory's token in again.
	do(t, ctx, "lift from the page",
		chromedp.Navigate(base+"revocations"),
		chromedp.WaitVisible(chromedp.CSS(`form.lift input[name=reason]`)),
		chromedp.SendKeys(chromedp.CSS(`form.lift input[name=reason]`), "wrong user"),
		chromedp.Submit(chromedp.CSS(`form.lift`)),
		chromedp.WaitVisible(chromedp.CSS(`p.note`)))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := s.grpcCheck(t, mallory); code == codes.OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mallory's token still denied 30s after the console lifted its revocation")
		}
	}

	// Every other view renders (its data or a note that this build lacks it).
	for _, v := range []string{"revoke", "detectors", "mesh", "keys", "audit"} {
		do(t, ctx, "view "+v, chromedp.Navigate(base+v), chromedp.WaitVisible(chromedp.CSS(`main h1`)), shot(v))
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		text, err := chromedp.Run(vctx, chromedp.Text(chromedp.CSS(`main`)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text, "not available") || strings.Contains(text, "HTTP 5") {
			t.Errorf("view %s shows an error:\n%s", v, text)
		}
		if v == "keys" && !strings.Contains(text, loadgen.Issuer) {
			t.Errorf("keys view does not list the issuer's key set:\n%s", text)
		}
	}
	t.Logf("screenshots in %s", shots)
}

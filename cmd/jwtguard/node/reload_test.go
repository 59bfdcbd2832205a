package node

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
)

// TestReload: a changed --config file brings a new issuer in without a
// restart; a bad one is refused, the running configuration kept and the
// refusal counted; revocations survive both.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	keyA, err := mint.NewKey("ES256", "a")
	if err != nil {
		t.Fatal(err)
	}
	keyB, err := mint.NewKey("ES256", "b")
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*mint.Key{"a.jwks": keyA, "b.jwks": keyB} {
		j, err := mint.JWKS(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), j, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	confDir := filepath.Join(dir, "conf")
	if err := os.Mkdir(confDir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(confDir, "jwtguard.yaml")
	write := func(body string) {
		t.Helper()
		// Written aside and renamed in, as editors and ConfigMaps do.
		tmp := conf + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, conf); err != nil {
			t.Fatal(err)
		}
	}
	base := "grpc-addr: 127.0.0.1:0\nhttp-addr: 127.0.0.1:0\nadmin-addr: 127.0.0.1:0\ndata-dir: " + filepath.Join(dir, "data") + "\n"
	issuerA := "  - issuer: https://a.test\n    jwks-file: " + filepath.Join(dir, "a.jwks") + "\n"
	issuerB := "  - issuer: https://b.test\n    jwks-file: " + filepath.Join(dir, "b.jwks") + "\n"
	write(base + "issuers:\n" + issuerA)

	load := func() (*Config, error) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return Load([]string{"--config", conf}, func(string) string { return "" }, fs)
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, WithReload(load))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, "ready", n.Ready)

	now := time.Now().Unix()
	token := func(k *mint.Key, iss, jti string) string {
		tok, err := k.Sign(map[string]any{"iss": iss, "sub": "alice", "jti": jti, "iat": now - 10, "exp": now + 600})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	decide := func(tok string) authz.Reason {
		return n.checker.Load().Check(context.Background(), authz.MapHeaders{"authorization": "Bearer " + tok}).Reason
	}
	tokA, revokedA, tokB := token(keyA, "https://a.test", "a-1"), token(keyA, "https://a.test", "a-2"), token(keyB, "https://b.test", "b-1")
	rec, err := authz.TokenRecord(revokedA)
	if err != nil {
		t.Fatal(err)
	}
	rec.Reason, rec.Actor = "test", "test"
	stored, err := n.src.Put(context.Background(), []authz.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	n.rev.Enforce(stored...)
	if r := decide(tokB); r != authz.ReasonWrongIssuer {
		t.Fatalf("issuer B before the reload: %s", r)
	}

	write(base + "issuers:\n" + issuerA + issuerB)
	waitFor(t, "issuer B accepted after the file changed", func() bool { return decide(tokB) == authz.ReasonOK })
	if r := decide(tokA); r != authz.ReasonOK {
		t.Errorf("issuer A after the reload: %s", r)
	}
	if r := decide(revokedA); r != authz.ReasonRevoked {
		t.Errorf("a revoked token after the reload: %s, want revoked", r)
	}
	if got := testutil.ToFloat64(n.reloads.WithLabelValues("ok")); got < 1 {
		t.Errorf("reloads ok %v", got)
	}

	// A bad file: refused, the running configuration kept, counted.
	write(base + "issuers:\n  - issuer: https://c.test\n    jwks-url: http://idp.example/keys\n")
	waitFor(t, "the bad file refused", func() bool { return testutil.ToFloat64(n.reloads.WithLabelValues("error")) >= 1 })
	for _, tc := range []struct {
		tok  string
		want authz.Reason
	}{{tokA, authz.ReasonOK}, {tokB, authz.ReasonOK}, {revokedA, authz.ReasonRevoked}} {
		if r := decide(tc.tok); r != tc.want {
			t.Errorf("after the bad file: %s, want %s", r, tc.want)
		}
	}
	// A key set that cannot load is refused too.
	write(base + "issuers:\n" + strings.Replace(issuerA, "a.jwks", "missing.jwks", 1))
	waitFor(t, "the missing key set refused", func() bool { return testutil.ToFloat64(n.reloads.WithLabelValues("error")) >= 2 })
	if r := decide(tokA); r != authz.ReasonOK {
		t.Errorf("after the missing key set: %s", r)
	}
}

// waitFor polls cond until it holds, for up to 30 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

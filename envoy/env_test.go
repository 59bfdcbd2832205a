package envoy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
	"github.com/jwtguard/jwtguard/sync/embedded"
)

// Issuers of the test world.
const (
	issA = "https://issuer-a.test" // every asymmetric algorithm, keys from a JWKS file
	issB = "https://issuer-b.test" // ES256 from a JWKS URL, two audiences
	issH = "https://issuer-h.test" // HS256 from a secret file
	audA = "api-a"
)

// world holds the keys of the test issuers, made once per test binary.
type world struct {
	byAlg map[string]*mint.Key // issuer A, kid "a-<alg>"
	b     *mint.Key            // issuer B
	h     *mint.Key            // issuer H
	other *mint.Key            // an attacker's ES256 key
}

var (
	worldOnce sync.Once
	theWorld  world
)

func keys(t testing.TB) *world {
	t.Helper()
	worldOnce.Do(func() {
		w := world{byAlg: map[string]*mint.Key{}}
		for _, alg := range authz.AsymmetricAlgorithms {
			w.byAlg[alg] = mustKey(t, alg, "a-"+alg)
		}
		w.b = mustKey(t, "ES256", "b-1")
		w.h = mustKey(t, "HS256", "")
		w.other = mustKey(t, "ES256", "a-ES256")
		theWorld = w
	})
	return &theWorld
}

func mustKey(t testing.TB, alg, kid string) *mint.Key {
	t.Helper()
	k, err := mint.NewKey(alg, kid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// env is a running ext_authz server on loopback with a real embedded
// source, and a real gRPC client to it.
type env struct {
	client  authv3.AuthorizationClient
	checker *authz.Checker
	rev     *authz.Revocations
	store   *embedded.Store
	jwksB   *httptest.Server
	addr    string // of the gRPC server
	now     time.Time
}

func newEnv(t testing.TB, mods ...func(*authz.Config)) *env {
	t.Helper()
	w := keys(t)
	dir := t.TempDir()
	var aKeys []*mint.Key
	for _, alg := range authz.AsymmetricAlgorithms {
		aKeys = append(aKeys, w.byAlg[alg])
	}
	jwksA := writeFile(t, dir, "a.jwks.json", mustJWKS(t, aKeys...))
	secret := writeFile(t, dir, "h.secret", w.h.Secret())
	jwksB := mustJWKS(t, w.b)
	srvB := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(jwksB)
	}))
	t.Cleanup(srvB.Close)

	cfg := authz.DefaultConfig()
	a := authz.DefaultIssuerConfig(issA)
	a.JWKSFile, a.Audiences = jwksA, []string{audA}
	b := authz.DefaultIssuerConfig(issB)
	b.JWKSURL, b.Audiences, b.Algs = srvB.URL, []string{"api-b1", "api-b2"}, []string{"ES256"}
	h := authz.DefaultIssuerConfig(issH)
	h.HMACSecretFile, h.Algs = secret, []string{"HS256"}
	cfg.Issuers = []authz.IssuerConfig{a, b, h}
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, authz.ClaimHeader{Claim: "email", Header: "x-jwt-email"})
	for _, m := range mods {
		m(&cfg)
	}

	store, err := embedded.Open(filepath.Join(dir, "data"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	filter, err := bloom.New(bloom.Config{Entries: 10_000, FPRate: 0.001, DeltaEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(filter, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev.SetReady(true)
	e := &env{rev: rev, store: store, jwksB: srvB, now: time.Now()}
	e.checker, err = authz.NewChecker(cfg, rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := envoy.NewGRPCServer(envoy.NewAuthorization(e.checker), health.NewServer(), envoy.TLSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.client = authv3.NewAuthorizationClient(conn)
	return e
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustJWKS(t testing.TB, ks ...*mint.Key) []byte {
	t.Helper()
	b, err := mint.JWKS(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claims are the standard claims of a fresh, valid token of issuer A.
func (e *env) claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": issA, "aud": audA, "sub": "alice", "jti": "jti-" + base64.RawURLEncoding.EncodeToString([]byte(time.Now().String())),
		"iat": e.now.Add(-time.Minute).Unix(), "exp": e.now.Add(time.Hour).Unix(), "email": "alice@example.test",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t testing.TB, k *mint.Key, claims any) string {
	t.Helper()
	tok, err := k.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signRaw signs exact header and payload JSON.
func signRaw(t testing.TB, k *mint.Key, header, payload string) string {
	t.Helper()
	tok, err := k.SignRaw([]byte(header), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// check sends a CheckRequest as Envoy does, with the given headers.
func (e *env) check(t testing.TB, headers map[string]string) *authv3.CheckResponse {
	t.Helper()
	h := map[string]string{":authority": "app.test", ":path": "/v1/things", ":method": "GET", "x-request-id": "r-1"}
	for k, v := range headers {
		h[k] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/v1/things", Host: "app.test", Headers: h, Scheme: "https", Protocol: "HTTP/1.1",
		}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

func (e *env) checkToken(t testing.TB, tok string) *authv3.CheckResponse {
	t.Helper()
	return e.check(t, map[string]string{"authorization": "Bearer " + tok})
}

// hmacWithPublicKey forges the classic algorithm-confusion token: HS256
// keyed with the issuer's public key, which an attacker knows.
func hmacWithPublicKey(t testing.TB, k *mint.Key, payload string) string {
	t.Helper()
	pub, err := k.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	secret, err := json.Marshal(pub)
	if err != nil {
		t.Fatal(err)
	}
	forger, err := mint.FromPrivate("HS256", k.KID, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signRaw(t, forger, `{"alg":"HS256","typ":"JWT","kid":"`+k.KID+`"}`, payload)
}

// withEmbeddedKey signs with the attacker's key and names it in the header
// the way the given member would (jwk, jku or x5u), under a real kid.
func withEmbeddedKey(t testing.TB, w *world, member, payload string) string {
	t.Helper()
	header := map[string]any{"alg": "ES256", "typ": "JWT", "kid": "a-ES256"}
	switch member {
	case "jwk":
		pub, err := w.other.PublicJWK()
		if err != nil {
			t.Fatal(err)
		}
		header["jwk"] = pub
	case "jku":
		header["jku"] = "https://attacker.test/jwks.json"
	case "x5u":
		header["x5u"] = "https://attacker.test/cert.pem"
	}
	return signRaw(t, w.other, mustJSON(t, header), payload)
}

package envoy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/authz/mint"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/envoy"
)

// The decisions themselves are tested in authz; these tests need one
// issuer to map decisions of each class to Envoy's messages.
const (
	issA = "https://issuer-a.test"
	audA = "api-a"
	kidA = "a-ES256"
)

var (
	keyOnce sync.Once
	theKey  *mint.Key
)

// signingKey is issuer A's ES256 key, made once per test binary.
func signingKey(t testing.TB) *mint.Key {
	t.Helper()
	keyOnce.Do(func() {
		k, err := mint.NewKey("ES256", kidA)
		if err != nil {
			t.Fatal(err)
		}
		theKey = k
	})
	if theKey == nil {
		t.Fatal("no signing key")
	}
	return theKey
}

// env is a running ext_authz server on loopback over a checker of issuer
// A (token header X-Access-Token and cookie "session" configured, the
// claim header x-jwt-email added), and a real gRPC client to it.
type env struct {
	client  authv3.AuthorizationClient
	checker *authz.Checker
	rev     *authz.Revocations
	src     *memLookup
	health  *health.Server // served with ext_authz
	key     *mint.Key
	addr    string // of the gRPC server
	now     time.Time
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with the checker's configuration changed by mod.
func newEnvWith(t testing.TB, mod func(*authz.Config)) *env {
	t.Helper()
	e := &env{src: &memLookup{recs: map[authz.LookupKey][]authz.Record{}}, key: signingKey(t), now: time.Now()}
	jwks, err := mint.JWKS(e.key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := authz.DefaultConfig()
	a := authz.DefaultIssuerConfig(issA)
	a.JWKSFile, a.Audiences = writeFile(t, t.TempDir(), "a.jwks.json", jwks), []string{audA}
	cfg.Issuers = []authz.IssuerConfig{a}
	cfg.TokenHeader, cfg.TokenCookie = "X-Access-Token", "session"
	cfg.ClaimHeaders = append(cfg.ClaimHeaders, authz.ClaimHeader{Claim: "email", Header: "x-jwt-email"})
	if mod != nil {
		mod(&cfg)
	}

	filter, err := bloom.New(bloom.Config{Entries: 10_000, FPRate: 0.001, DeltaEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	rc := authz.DefaultRevocationConfig()
	rc.ConfirmTimeout = time.Minute // an in-memory lookup, on a busy machine
	e.rev, err = authz.NewRevocations(filter, e.src, rc)
	if err != nil {
		t.Fatal(err)
	}
	e.rev.SetReady(true)
	e.checker, err = authz.NewChecker(cfg, e.rev)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.checker.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.health = health.NewServer()
	srv, err := envoy.NewGRPCServer(envoy.NewAuthorization(e.checker), e.health, envoy.TLSConfig{})
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
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e.client = authv3.NewAuthorizationClient(conn)
	return e
}

// memLookup is a revocation source in memory, which the test can take down.
type memLookup struct {
	mu   sync.Mutex
	recs map[authz.LookupKey][]authz.Record
	down bool
}

func (m *memLookup) Lookup(_ context.Context, k authz.LookupKey) ([]authz.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errors.New("source unreachable")
	}
	return append([]authz.Record(nil), m.recs[k]...), nil
}

func (m *memLookup) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// revoke stores recs in the source and enforces them, as the admin API does.
func (e *env) revoke(recs ...authz.Record) {
	e.src.mu.Lock()
	defer e.src.mu.Unlock()
	for i := range recs {
		recs[i].ExpiresAt = e.now.Add(48 * time.Hour)
		recs[i].Actor, recs[i].Reason = "test", "test"
		k := recs[i].LookupKey()
		e.src.recs[k] = append(e.src.recs[k], recs[i])
	}
	e.rev.Enforce(recs...)
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// token signs the standard claims of a valid token of issuer A, changed
// by mod.
func (e *env) token(t testing.TB, mod func(map[string]any)) string {
	t.Helper()
	c := map[string]any{
		"iss": issA, "aud": audA, "sub": "alice", "jti": "jti-1",
		"iat": e.now.Add(-time.Minute).Unix(), "exp": e.now.Add(time.Hour).Unix(), "email": "alice@example.test",
	}
	if mod != nil {
		mod(c)
	}
	tok, err := e.key.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// check sends a CheckRequest as Envoy does, with the given headers, to
// the server through the gRPC client.
func (e *env) check(t testing.TB, headers map[string]string) *authv3.CheckResponse {
	t.Helper()
	return e.checkMetadata(t, headers, nil)
}

// checkMetadata is check with the metadata ext_authz sends from the
// namespaces of its metadata_context_namespaces.
func (e *env) checkMetadata(t testing.TB, headers map[string]string, md map[string]*structpb.Struct) *authv3.CheckResponse {
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
	if md != nil {
		req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: md}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.client.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// checkWith calls the gRPC adapter a in process, with the request's
// attributes hr.
func checkWith(t *testing.T, a *envoy.Authorization, hr *authv3.AttributeContext_HttpRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := a.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: hr}}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// withHeaders are a request's attributes with Envoy's header map.
func withHeaders(h map[string]string) *authv3.AttributeContext_HttpRequest {
	return &authv3.AttributeContext_HttpRequest{Headers: h}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

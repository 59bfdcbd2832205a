package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// discoveryServer is an OpenID provider over TLS on loopback: its
// configuration document (changed by doc) and its key set.
func discoveryServer(t *testing.T, key *mint.Key, doc func(base string) any) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	jwks, err := mint.JWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	var docs atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case discoveryPath:
			docs.Add(1)
			switch d := doc(srv.URL).(type) {
			case string:
				_, _ = w.Write([]byte(d))
			default:
				_ = json.NewEncoder(w).Encode(d)
			}
		case "/keys":
			_, _ = w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &docs
}

func discoveryChecker(t *testing.T, srv *httptest.Server) *Checker {
	t.Helper()
	cfg := DefaultConfig()
	ic := DefaultIssuerConfig(srv.URL)
	ic.Discovery = true
	cfg.Issuers = []IssuerConfig{ic}
	c, err := NewChecker(cfg, newTestRevocations(t, newMemSource()), WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiscovery(t *testing.T) {
	key := testKeys(t).byAlg["ES256"]
	good := func(base string) any {
		return map[string]any{"issuer": base, "jwks_uri": base + "/keys", "authorization_endpoint": base + "/auth"}
	}
	srv, docs := discoveryServer(t, key, good)
	c := discoveryChecker(t, srv)
	if err := c.LoadKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	tok := signClaims(t, key, map[string]any{"iss": srv.URL, "sub": "alice", "jti": "d-1", "iat": now - 10, "exp": now + 600})
	if d := c.Check(context.Background(), authorization(tok)); !d.Allowed() {
		t.Fatalf("token of the discovered key set: %s (%v)", d.Reason, d.Err)
	}
	// A refresh reuses the jwks_uri it found.
	if err := c.LoadKeys(context.Background()); err != nil || docs.Load() != 1 {
		t.Fatalf("second load: %v, %d documents fetched, want 1", err, docs.Load())
	}

	refused := []struct {
		name string
		doc  func(base string) any
		want string
	}{
		{"another issuer", func(base string) any {
			return map[string]any{"issuer": "https://evil.test", "jwks_uri": base + "/keys"}
		}, "names issuer"},
		{"issuer with a trailing slash", func(base string) any { return map[string]any{"issuer": base + "/", "jwks_uri": base + "/keys"} }, "names issuer"},
		{"no jwks_uri", func(base string) any { return map[string]any{"issuer": base} }, "no jwks_uri"},
		{"plain http jwks_uri", func(base string) any { return map[string]any{"issuer": base, "jwks_uri": "http://idp.test/keys"} }, "plain http"},
		{"jwks_uri not a string", func(base string) any { return map[string]any{"issuer": base, "jwks_uri": 7} }, "cannot unmarshal"},
		{"too large", func(base string) any { return strings.Repeat(" ", maxDiscoveryBytes+1) + "{}" }, "larger than"},
		{"not JSON", func(string) any { return "<html>" }, "invalid character"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := discoveryServer(t, key, tc.doc)
			c := discoveryChecker(t, srv)
			err := c.LoadKeys(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKeys: %v, want an error mentioning %q", err, tc.want)
			}
			if c.Ready() {
				t.Fatal("ready without keys")
			}
		})
	}
}

func TestDiscoveryConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		issuer string
		mod    func(*IssuerConfig)
		want   string
	}{
		{"plain http issuer", "http://idp.test", nil, "plain http"},
		{"with jwks-url", "https://idp.test", func(ic *IssuerConfig) { ic.JWKSURL = "https://idp.test/keys" }, "exclusive"},
		{"not a URL", "idp", nil, "scheme must be https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ic := DefaultIssuerConfig(tc.issuer)
			ic.Discovery = true
			if tc.mod != nil {
				tc.mod(&ic)
			}
			if err := ic.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

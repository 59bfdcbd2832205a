package node

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadFor(t *testing.T, file string, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	if file != "" {
		p := filepath.Join(t.TempDir(), "jwtguard.yaml")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(args, func(k string) string { return env[k] }, fs)
}

const twoIssuers = `
grpc-addr: ":7000"
leeway: 10s
max-token-bytes: 4096
claim-header: ["sub=x-user", "email=x-email"]
issuers:
  - issuer: https://a.test
    audiences: [api]
    jwks-url: https://a.test/jwks
    algs: [RS256]
    jwks-refresh: 1m
  - issuer: legacy
    hmac-secret-file: /secret
    algs: [HS256]
`

func TestConfigPrecedence(t *testing.T) {
	c, err := loadFor(t, twoIssuers, map[string]string{"JWTGUARD_GRPC_ADDR": ":7001", "JWTGUARD_LEEWAY": "20s"}, "--leeway", "5s")
	if err != nil {
		t.Fatal(err)
	}
	if c.GRPCAddr != ":7001" {
		t.Errorf("grpc-addr %q: the variable must win over the file", c.GRPCAddr)
	}
	if c.Authz.Leeway != 5*time.Second {
		t.Errorf("leeway %s: the flag must win", c.Authz.Leeway)
	}
	if c.Authz.MaxTokenBytes != 4096 || len(c.Authz.Issuers) != 2 || c.Authz.Issuers[0].JWKSRefresh != time.Minute {
		t.Errorf("file values not applied: %+v", c.Authz)
	}
	if len(c.Authz.ClaimHeaders) != 2 || c.Authz.ClaimHeaders[1].Header != "x-email" {
		t.Errorf("claim headers %+v", c.Authz.ClaimHeaders)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		args       []string
		want       string
	}{
		{"unknown key", "grpc-adr: x\nissuer: a\njwks-file: /j\n", nil, nil, `unknown key "grpc-adr"`},
		{"no issuer", "", nil, nil, "issuers: none configured; give one with --issuer"},
		{"bad duration in a variable", "", map[string]string{"JWTGUARD_LEEWAY": "soon"}, []string{"--issuer", "a", "--jwks-file", "/j"}, "JWTGUARD_LEEWAY"},
		{"HMAC without secret", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--algs", "HS256"}, "HMAC needs hmac-secret-file"},
		{"alg none", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--algs", "none"}, `"none" is not supported`},
		{"plain http key set", "", nil, []string{"--issuer", "a", "--jwks-url", "http://idp.test/jwks"}, "plain http"},
		{"bad log format", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--log-format", "xml"}, "log-format"},
		{"bad claim header", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--claim-header", "sub"}, "want claim=header"},
		{"issuer keys without issuer", "", nil, []string{"--jwks-file", "/j"}, "need --issuer"},
		{"bad issuers entry", "issuers:\n  - issuer: a\n    jwks-file: /j\n    jwks-refersh: 1m\n", nil, nil, "jwks-refersh"},
		{"bad payload-missing", "", nil, []string{"--issuer", "a", "--revocation-only", "--payload-missing", "allow"}, "payload-missing"},
		{"revocation-only verify without keys", "", nil, []string{"--issuer", "a", "--revocation-only", "--payload-missing", "verify"}, "needs discovery, jwks-url"},
		{"payload key without the mode", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--payload-metadata-key", "p"}, "need revocation-only"},
		{"leeway too large", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--leeway", "1h"}, "leeway"},
		{"bad trusted proxy", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--trusted-proxies", "10.0.0.0/8,10.0.0.300"}, "trusted-proxies"},
		{"trusted proxy with a zone", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--trusted-proxies", "fe80::1%eth0"}, "trusted-proxies"},
		{"decision log a directory", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--decision-log", "/"}, "decision-log"},
		{"allow sample above 1", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--decision-log-allow-sample", "2"}, "decision-log-allow-sample"},
		{"allow sample NaN", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--decision-log-allow-sample", "NaN"}, "decision-log-allow-sample"},
		{"negative deny rate", "", map[string]string{"JWTGUARD_DECISION_LOG_DENY_RATE": "-1"}, []string{"--issuer", "a", "--jwks-file", "/j"}, "decision-log-deny-rate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFor(t, tc.file, tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestConfigRulesAndIntrospection(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "client.secret")
	if err := os.WriteFile(secret, []byte("s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := `
issuers:
  - issuer: https://a.test
    jwks-url: https://a.test/jwks
  - issuer: https://as.test
    audiences: [api]
    introspection:
      url: https://as.test/introspect
      client-id: jwtguard
      client-secret-file: ` + secret + `
      scopes: [read]
      cache-ttl: 30s
      cache-size: 500
      timeout: 1s
rules:
  - name: public
    match: { path-prefix: /public }
    public: true
  - name: orders
    match: { context-extensions: { service: orders }, methods: [POST] }
    scopes: [orders:write]
    claims:
      - { claim: tenant, equals-header: x-tenant }
  - name: default
`
	c, err := loadFor(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := c.Authz.Issuers[1].Introspection
	if in == nil || in.URL != "https://as.test/introspect" || in.CacheTTL != 30*time.Second || in.CacheSize != 500 || in.Timeout != time.Second || in.Scopes[0] != "read" {
		t.Errorf("introspection %+v", in)
	}
	if r := c.Authz.Rules; len(r) != 3 || r[1].Match.ContextExtensions["service"] != "orders" || r[1].Claims[0].EqualsHeader != "x-tenant" || !r[0].Public {
		t.Errorf("rules %+v", r)
	}

	for _, tc := range []struct{ name, file, want string }{
		{"unknown rule key", "issuers: [{issuer: a, jwks-url: https://a.test/j}]\nrules: [{name: x, requires: y}]\n", "unknown field"},
		{"bad rule", "issuers: [{issuer: a, jwks-url: https://a.test/j}]\nrules: [{}, {match: {path: /x}}]\n", "default rule last"},
		{"rule names an unknown issuer", "issuers: [{issuer: a, jwks-url: https://a.test/j}]\nrules: [{issuers: [b]}]\n", "not a configured issuer"},
		{"plain http introspection", "issuers: [{issuer: a, introspection: {url: 'http://as.test/i', client-id: c, client-secret-file: /s}}]\n", "loopback"},
		{"bad ttl", "issuers: [{issuer: a, introspection: {url: 'https://as.test/i', client-id: c, client-secret-file: /s, cache-ttl: soon}}]\n", "cache-ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadFor(t, tc.file, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A revocation-only issuer needs no keys; the file names jwt_authn's
// metadata keys as Envoy's configuration does.
func TestConfigRevocationOnly(t *testing.T) {
	c, err := loadFor(t, `
issuers:
  - issuer: https://mesh.test
    revocation-only: true
  - issuer: https://edge.test
    revocation-only: true
    payload-metadata-key: jwt_payload
    header-metadata-key: jwt_header
    payload-missing: verify
    jwks-url: https://edge.test/jwks
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	mesh, edge := c.Authz.Issuers[0], c.Authz.Issuers[1]
	if !mesh.RevocationOnly || mesh.PayloadKey != "" || !edge.RevocationOnly || edge.PayloadKey != "jwt_payload" || edge.HeaderKey != "jwt_header" || edge.PayloadMissing != "verify" {
		t.Fatalf("issuers %+v", c.Authz.Issuers)
	}
}

// TestDecisionLogSettings: the defaults a user expects (decisions to
// stdout, no allow, 100 denies a second, no proxy trusted),
// and each setting from a flag, a variable and the file.
func TestDecisionLogSettings(t *testing.T) {
	c, err := loadFor(t, "", nil, "--issuer", "a", "--jwks-file", "/j")
	if err != nil {
		t.Fatal(err)
	}
	if c.DecisionLog != "stdout" || c.DecisionLogAllowSample != 0 || c.DecisionLogDenyRate != 100 || len(c.TrustedProxies) != 0 {
		t.Errorf("defaults: log %q, allow sample %v, deny rate %d, trusted proxies %v",
			c.DecisionLog, c.DecisionLogAllowSample, c.DecisionLogDenyRate, c.TrustedProxies)
	}
	file := "issuer: a\njwks-file: /j\ndecision-log: /var/log/decisions.jsonl\ndecision-log-allow-sample: 0.01\ntrusted-proxies: [10.0.0.0/8, \"fd00::/8\"]\nnode-id: edge-1\n"
	c, err = loadFor(t, file, map[string]string{"JWTGUARD_DECISION_LOG_DENY_RATE": "7"}, "--trusted-proxies", "192.0.2.1,192.0.2.2")
	if err != nil {
		t.Fatal(err)
	}
	if c.DecisionLog != "/var/log/decisions.jsonl" || c.DecisionLogAllowSample != 0.01 || c.DecisionLogDenyRate != 7 || c.NodeID != "edge-1" {
		t.Errorf("from file and variable: log %q, allow sample %v, deny rate %d, node id %q", c.DecisionLog, c.DecisionLogAllowSample, c.DecisionLogDenyRate, c.NodeID)
	}
	got, err := trustedProxies(c.TrustedProxies)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[192.0.2.1/32 192.0.2.2/32]" {
		t.Errorf("trusted proxies %v: the flag wins over the file", got)
	}
	c, err = loadFor(t, file, map[string]string{"JWTGUARD_DECISION_LOG": "off"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := trustedProxies(c.TrustedProxies); fmt.Sprint(got) != "[10.0.0.0/8 fd00::/8]" || c.DecisionLog != "off" {
		t.Errorf("trusted proxies %v, decision log %q", got, c.DecisionLog)
	}
	if got, err := trustedProxies([]string{"::ffff:10.1.0.0/112", "10.1.2.3/8"}); err != nil || fmt.Sprint(got) != "[10.1.0.0/16 10.0.0.0/8]" {
		t.Errorf("IPv4-mapped and unmasked prefixes: %v, %v", got, err)
	}
}

package examples

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// serveFlags mirrors the flags of `jwtguard serve -h`: container args and
// the keys of a --config file must be among them. Keep it in step with
// cmd/jwtguard until the test reads `serve -h` itself.
var serveFlags = []string{
	"config", "grpc-addr", "http-addr", "admin-addr", "admin-token-file",
	"data-dir", "source", "log-format", "log-level", "dev",
	"tls-cert", "tls-key", "client-ca", "remove-authorization",
	"forward-auth-prefix", "max-staleness", "shutdown-grace",
	"snapshot-interval", "rebuild-interval",
	"issuer", "audience", "jwks-file", "jwks-url", "hmac-secret-file", "algs",
	"leeway", "max-token-bytes", "typ", "token-header", "token-cookie",
	"claim-header", "cache-size", "max-token-lifetime",
	"confirm-cache-size", "confirm-timeout", "allow-unconfirmed",
	"bloom-entries", "bloom-fp-rate",
}

// Ports and paths jwtguard serves by default.
const (
	grpcPort    = 9191
	httpPort    = 8181
	healthzPath = "/healthz"
	readyzPath  = "/readyz"
	authzPrefix = "/authz/"
)

// readExample returns the bytes of an example file, path relative to examples/.
func readExample(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read example: %v", err)
	}
	return b
}

// yamlJSON converts one YAML document to JSON, failing the test on error.
func yamlJSON(t *testing.T, path string, doc []byte) []byte {
	t.Helper()
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		t.Fatalf("%s: YAML to JSON: %v", path, err)
	}
	return j
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// yamlDocs splits a multi-document YAML file on "---" lines, dropping
// documents that hold only comments or blank lines.
func yamlDocs(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(raw), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeStrict decodes JSON into v, rejecting fields v does not have.
func decodeStrict(j []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// flagName returns the flag an argument sets ("--grpc-addr=:9191" and
// "-grpc-addr" give "grpc-addr"), or "" if the argument is no flag.
func flagName(arg string) string {
	if !strings.HasPrefix(arg, "-") || arg == "-" || arg == "--" {
		return ""
	}
	name := strings.TrimLeft(arg, "-")
	name, _, _ = strings.Cut(name, "=")
	return name
}

func TestFlagName(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"--grpc-addr=:9191", "grpc-addr"},
		{"-source", "source"},
		{"--dev", "dev"},
		{"serve", ""},
		{":9191", ""},
		{"--", ""},
	} {
		if got := flagName(tc.arg); got != tc.want {
			t.Errorf("flagName(%q) = %q, want %q", tc.arg, got, tc.want)
		}
	}
}

// checkServeArgs fails the test for a flag in args that serve does not have.
func checkServeArgs(t *testing.T, where string, args []string) {
	t.Helper()
	for _, a := range args {
		if name := flagName(a); name != "" && !slices.Contains(serveFlags, name) {
			t.Errorf("%s: argument %q: jwtguard serve has no flag --%s", where, a, name)
		}
	}
}

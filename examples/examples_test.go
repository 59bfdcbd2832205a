package examples

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// serveFlags returns the flags of the real `jwtguard serve -h`: container
// args and the keys of a --config file must be among them.
func serveFlags(t *testing.T) []string {
	t.Helper()
	serveFlagsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// -h exits non-zero after printing the flags; the output is what counts.
		out, _ := exec.CommandContext(ctx, "go", "run", "../cmd/jwtguard", "serve", "-h").CombinedOutput()
		for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
			serveFlagList = append(serveFlagList, m[1])
		}
		if len(serveFlagList) == 0 {
			serveFlagErr = string(out)
		}
	})
	if serveFlagErr != "" {
		t.Fatalf("no flags in `jwtguard serve -h`:\n%s", serveFlagErr)
	}
	return serveFlagList
}

var (
	serveFlagsOnce sync.Once
	serveFlagList  []string
	serveFlagErr   string
	flagLine       = regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
)

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
		if name := flagName(a); name != "" && !slices.Contains(serveFlags(t), name) {
			t.Errorf("%s: argument %q: jwtguard serve has no flag --%s", where, a, name)
		}
	}
}

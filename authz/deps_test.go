package authz

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the decision free of what it must not know: the
// proxy adapters, the sources, gRPC and source client libraries.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/jwtguard/jwtguard/authz").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/jwtguard/jwtguard/envoy",
		"github.com/jwtguard/jwtguard/sync/",
		"github.com/jwtguard/jwtguard/cmd/",
		"google.golang.org/grpc",
		"github.com/envoyproxy/",
		"github.com/redis/",
		"go.etcd.io/bbolt",
		"github.com/prometheus/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("authz depends on %s", pkg)
			}
		}
	}
}

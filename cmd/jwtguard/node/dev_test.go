package node

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/authz/mint"
)

// The dev banner's revoke command works as printed: this binary (or go
// run under go test's temporary build) and the admin token when one is set.
func TestDevBannerCommands(t *testing.T) {
	key, err := mint.NewKey("ES256", "dev")
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8182}
	for _, tc := range []struct {
		name string
		d    devSetup
		want []string
	}{
		{"no admin token", devSetup{key: key}, []string{"go run ./cmd/jwtguard revoke --server http://127.0.0.1:8182 --token"}},
		{"token file", devSetup{key: key, adminTokenFile: "/run/my secrets/admin"}, []string{"revoke --server http://127.0.0.1:8182 --admin-token-file '/run/my secrets/admin' --token"}},
		{"token variable", devSetup{key: key, adminTokenEnv: true}, []string{"JWTGUARD_ADMIN_TOKEN set in this shell"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.d.printHowTo(&out, addr, addr, addr)
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("banner lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote: %s", got)
	}
}

package node

import (
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/envoy/keywatch"
)

// TestKeyWatchSettings: the issuers' rotation policies come from the file,
// an issuer without one takes --max-key-age, and wrong values are named.
func TestKeyWatchSettings(t *testing.T) {
	const file = `
issuers:
  - issuer: https://a.test
    jwks-url: https://a.test/jwks
    purge-on-rotation: true
    purge-grace: 15m
  - issuer: https://b.test
    jwks-url: https://b.test/jwks
`
	c, err := loadFor(t, file, nil, "--max-key-age", "720h")
	if err != nil {
		t.Fatal(err)
	}
	want := keywatch.IssuerPolicy{MaxKeyAge: 720 * time.Hour, Purge: true, PurgeGrace: 15 * time.Minute}
	if got := c.KeyWatch.Issuers["https://a.test"]; got != want {
		t.Errorf("a.test policy %+v, want %+v", got, want)
	}
	if _, ok := c.KeyWatch.Issuers["https://b.test"]; ok || c.KeyWatch.Default.MaxKeyAge != 720*time.Hour {
		t.Errorf("b.test should take the default: %+v", c.KeyWatch)
	}
	for _, tc := range []struct{ file, args, want string }{
		{"issuers:\n  - issuer: x\n    jwks-file: /k\n    purge-grace: 1h\n", "", "purge-on-rotation is off"},
		{"issuers:\n  - issuer: x\n    jwks-file: /k\n    max-key-age: soon\n", "", "max-key-age"},
		{"", "--issuer x --jwks-file /k --max-key-age -1h", "max-key-age"},
		{"", "--issuer x --jwks-file /k --key-refresh-alarm 0s", "key-refresh-alarm"},
		{"", "--issuer x --jwks-file /k --scope-route-depth 0", "scope-route-depth"},
		{"", "--issuer x --jwks-file /k --scope-bytes 10", "scope-bytes"},
	} {
		_, err := loadFor(t, tc.file, nil, strings.Fields(tc.args)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: err %v, want one naming %s", tc.file, tc.args, err, tc.want)
		}
	}
}

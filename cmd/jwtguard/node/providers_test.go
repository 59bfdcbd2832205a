package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigProviders(t *testing.T) {
	dir := t.TempDir()
	push := filepath.Join(dir, "push-token")
	if err := os.WriteFile(push, []byte("push-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := `
issuer: https://idp.test
jwks-file: /j
providers:
  - name: corp
    issuer: https://idp.test
    jwks-url: https://idp.test/jwks
    client-id: jwtguard
    audience: https://jwtguard.test/ssf
    push-token-file: ` + push + `
    poll-url: https://idp.test/ssf/poll
    poll-interval: 10s
    subject-formats: [iss_sub, email]
    claims-change: ignore
    max-age: 2m
`
	c, err := loadFor(t, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Providers) != 1 {
		t.Fatalf("providers %+v", c.Providers)
	}
	p := c.Providers[0]
	if p.Name != "corp" || p.ClientID != "jwtguard" || p.PushToken != "push-token-0123456789" || p.PollInterval != 10*time.Second ||
		p.MaxAge != 2*time.Minute || p.ClaimsChange != "ignore" || len(p.SubjectFormats) != 2 || p.PollMaxEvents != 100 {
		t.Fatalf("provider %+v", p)
	}

	const base = "issuer: https://idp.test\njwks-file: /j\nproviders:\n"
	for _, tc := range []struct{ name, entry, want string }{
		{"unknown key", "  - name: a\n    issuer: i\n    jwks-file: /j\n    client-id: c\n    clientid: c\n", "clientid"},
		{"no endpoint", "  - name: a\n    issuer: i\n    jwks-file: /j\n", "needs client-id"},
		{"bad name", "  - name: A/B\n    issuer: i\n    jwks-file: /j\n    client-id: c\n", "name"},
		{"no keys", "  - name: a\n    issuer: i\n    client-id: c\n", "jwks"},
		{"audience without delivery", "  - name: a\n    issuer: i\n    jwks-file: /j\n    audience: x\n", "push-token"},
		{"missing push token file", "  - name: a\n    issuer: i\n    jwks-file: /j\n    audience: x\n    push-token-file: /nonexistent\n", "push-token-file"},
		{"plain http poll", "  - name: a\n    issuer: i\n    jwks-file: /j\n    audience: x\n    poll-url: http://idp.test/poll\n", "poll-url"},
		{"bad duration", "  - name: a\n    issuer: i\n    jwks-file: /j\n    client-id: c\n    max-age: soon\n", "max-age"},
		{"unknown subject format", "  - name: a\n    issuer: i\n    jwks-file: /j\n    client-id: c\n    subject-formats: [handle]\n", "subject-formats"},
		{"name twice", "  - name: a\n    issuer: i\n    jwks-file: /j\n    client-id: c\n  - name: a\n    issuer: i\n    jwks-file: /j\n    client-id: c\n", "used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFor(t, base+tc.entry, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

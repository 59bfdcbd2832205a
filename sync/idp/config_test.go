package idp

import (
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/sync/admin"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // "" when valid
	}{
		{"both endpoints", func(*Config) {}, ""},
		{"logout only", func(c *Config) { c.Audience, c.PushToken = "", "" }, ""},
		{"poll only", func(c *Config) { c.ClientID, c.PushToken, c.PollURL = "", "", "http://127.0.0.1:1/poll" }, ""},
		{"nothing to receive", func(c *Config) { c.ClientID, c.Audience, c.PushToken = "", "", "" }, "needs client-id"},
		{"short push token", func(c *Config) { c.PushToken = "short" }, "push-token"},
		{"push token without audience", func(c *Config) { c.Audience = "" }, "need audience"},
		{"poll to a remote http URL", func(c *Config) { c.PollURL = "http://idp.test/poll" }, "poll-url"},
		{"no issuer", func(c *Config) { c.Issuer = "" }, "issuer"},
		{"no key set", func(c *Config) { c.JWKSFile = "" }, "jwks"},
		{"HMAC", func(c *Config) { c.Algs = []string{"HS256"} }, "HS256"},
		{"claims-change", func(c *Config) { c.ClaimsChange = "maybe" }, "claims-change"},
		{"poll-max-events", func(c *Config) { c.PollMaxEvents = 0 }, "poll-max-events"},
		{"name", func(c *Config) { c.Name = "../x" }, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("/jwks.json")
			tc.mutate(&c)
			err := c.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestNewRefusesMaxAgeBeyondRecords: a replay must still find its record at
// the source for as long as the token is accepted.
func TestNewRefusesMaxAgeBeyondRecords(t *testing.T) {
	c := testConfig("/jwks.json")
	c.MaxAge = 2 * time.Hour
	if _, err := New(c, nil, admin.Config{MaxTokenLifetime: time.Hour}); err == nil || !strings.Contains(err.Error(), "max-age") {
		t.Fatalf("New: %v", err)
	}
}

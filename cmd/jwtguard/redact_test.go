package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// secretPassword must never appear in a log line or an error message.
const secretPassword = "s3cret-Pa55word"

// TestURLPasswordsNeverPrinted starts serve against a Redis URL holding a
// password (a closed port, so the start fails after logging), and feeds
// config and CLI errors such URLs: no output carries the password.
func TestURLPasswordsNeverPrinted(t *testing.T) {
	t.Run("serve start-up", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		args := []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--issuer", "https://a.test", "--jwks-file", writeTestFile(t, "jwks.json", `{"keys":[]}`),
			"--source", "redis://jwtguard:" + secretPassword + "@" + freeAddr(t) + "/0"}
		err := run(ctx, args, stdout, stderr)
		if err == nil {
			t.Fatal("serve started against a closed Redis port with no snapshot")
		}
		out := stdout.String() + stderr.String() + err.Error()
		if !strings.Contains(out, "source=redis://jwtguard:xxxxx@") {
			t.Errorf("the start-up log does not name the (redacted) source:\n%s", out)
		}
		if strings.Contains(out, secretPassword) {
			t.Errorf("the password was printed:\n%s", out)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"serve --source with another scheme", []string{"serve", "--issuer", "a", "--jwks-file", "/j", "--source", "http://u:" + secretPassword + "@redis.test:6379"}},
		{"serve --source unparsable", []string{"serve", "--issuer", "a", "--jwks-file", "/j", "--source", "redis://u:" + secretPassword + "%zz@redis.test:6379"}},
		{"serve --jwks-url over plain http", []string{"serve", "--issuer", "a", "--jwks-url", "http://u:" + secretPassword + "@idp.test/jwks"}},
		{"serve --jwks-url unparsable", []string{"serve", "--issuer", "a", "--jwks-url", "https://u:" + secretPassword + "%zz@idp.test/jwks"}},
		{"revoke --redis with another scheme", []string{"revoke", "--subject", "alice", "--redis", "http://u:" + secretPassword + "@redis.test:6379"}},
		{"publish --redis unparsable", []string{"publish", "--redis", "redis://u:" + secretPassword + "%zz@redis.test:6379"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			err := run(context.Background(), tc.args, stdout, stderr)
			if err == nil {
				t.Fatal("accepted")
			}
			if out := stdout.String() + stderr.String() + err.Error(); strings.Contains(out, secretPassword) {
				t.Errorf("the password was printed:\n%s", out)
			}
		})
	}
}

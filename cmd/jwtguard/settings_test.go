package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestBadSettingsRefusedAtStart: every bad setting stops serve before any
// listener is opened, with an error naming the setting (no panic later,
// no silent default).
func TestBadSettingsRefusedAtStart(t *testing.T) {
	jwks := writeTestFile(t, "jwks.json", `{"keys":[]}`)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"snapshot interval zero", []string{"--snapshot-interval", "0"}, "snapshot-interval: 0s"},
		{"rebuild interval negative", []string{"--rebuild-interval", "-1s"}, "rebuild-interval: -1s"},
		{"shutdown grace negative", []string{"--shutdown-grace", "-1s"}, "shutdown-grace"},
		{"max staleness with the embedded source", []string{"--max-staleness", "1m"}, "max-staleness: 1m0s applies to a Redis source only"},
		{"max staleness negative", []string{"--max-staleness", "-1m"}, "max-staleness"},
		{"publish interval negative", []string{"--publish-interval", "-1s"}, "publish-interval"},
		{"leeway too large", []string{"--leeway", "1h"}, "leeway: 1h0m0s"},
		{"leeway too large in dev mode", []string{"--dev", "--leeway", "1h"}, "leeway: 1h0m0s"},
		{"leeway negative", []string{"--leeway", "-1s"}, "leeway"},
		{"max token lifetime too short", []string{"--max-token-lifetime", "10s"}, "max-token-lifetime"},
		{"max token bytes too small", []string{"--max-token-bytes", "10"}, "max-token-bytes"},
		{"cache size zero", []string{"--cache-size", "0"}, "cache-size"},
		{"confirm cache size zero", []string{"--confirm-cache-size", "0"}, "confirm-cache-size"},
		{"confirm timeout zero", []string{"--confirm-timeout", "0"}, "confirm-timeout"},
		{"bloom false-positive rate", []string{"--bloom-fp-rate", "2"}, "bloom-fp-rate 2"},
		{"bloom entries zero", []string{"--bloom-entries", "0"}, "bloom-entries 0"},
		{"log level", []string{"--log-level", "loud"}, "log-level"},
		{"log format", []string{"--log-format", "xml"}, "log-format"},
		{"forward-auth prefix", []string{"--forward-auth-prefix", "authz"}, "forward-auth-prefix"},
		{"grpc address", []string{"--grpc-addr", "nohost"}, "grpc-addr"},
		{"http address", []string{"--http-addr", "8181"}, "http-addr"},
		{"admin address open without a token", []string{"--admin-addr", "0.0.0.0:0"}, "admin-addr"},
		{"source", []string{"--source", "embeded"}, "source"},
		{"claim header", []string{"--claim-header", "sub"}, "claim-header"},
		{"claim header authorization", []string{"--claim-header", "sub=authorization"}, "claim-headers[0]"},
		{"token header", []string{"--token-header", "bad header"}, "token-header"},
		{"token header authorization", []string{"--token-header", "Authorization"}, "token-header"},
		{"algorithm", []string{"--algs", "none"}, "algs"},
		{"tls cert without key", []string{"--tls-cert", "/c.pem"}, "tls-cert and tls-key"},
		{"heartbeat interval too short", []string{"--heartbeat-interval", "10ms"}, "heartbeat-interval: 10ms"},
		{"node id with a space", []string{"--node-id", "a b"}, "node-id"},
		{"trusted proxies", []string{"--trusted-proxies", "10.0.0.0/33"}, "trusted-proxies"},
		{"decision log a directory", []string{"--decision-log", "/"}, "decision-log"},
		{"decision log in a missing directory", []string{"--decision-log", "/nonexistent-jwtguard-dir/decisions.jsonl"}, "decision-log"},
		{"decision log allow sample", []string{"--decision-log-allow-sample", "1.5"}, "decision-log-allow-sample"},
		{"decision log deny rate", []string{"--decision-log-deny-rate", "-5"}, "decision-log-deny-rate"},
		{"redis feed retention", []string{"--source", "redis://127.0.0.1:1", "--redis-feed-retention", "0"}, "redis-feed-retention: 0"},
		{"redis prefix without hash tag", []string{"--source", "redis://127.0.0.1:1", "--redis-prefix", "jwtguard:"}, `Prefix "jwtguard:" has no hash tag`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir()}
			if !strings.Contains(strings.Join(tc.args, " "), "--dev") {
				args = append(args, "--issuer", "https://a.test", "--jwks-file", jwks)
			}
			args = append(args, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			err := run(ctx, args, stdout, stderr)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
			if strings.Contains(stderr.String(), "jwtguard listening") {
				t.Errorf("refused only after the listeners were up:\n%s", stderr.String())
			}
		})
	}
}

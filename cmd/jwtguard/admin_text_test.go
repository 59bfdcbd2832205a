package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/sync/admin"
)

// TestListEscapesTerminalSequences stores values and reasons holding
// terminal escape sequences, CR and a bidirectional override: the table
// shows them escaped, never raw.
func TestListEscapesTerminalSequences(t *testing.T) {
	e := newAdminEnv(t)
	const clear, title, bidi = "\x1b[2J", "\x1b]0;pwned\x07", "\u202e"
	if _, stderr, err := e.cli(t, []string{"revoke"}, "--jti", "j"+title+"\rX", "--issuer", "https://a"+bidi, "--reason", "r"+clear, "--actor", "a\tb"); err != nil {
		t.Fatalf("revoke: %v\n%s", err, stderr)
	}
	for _, cmd := range [][]string{{"revocations", "list"}, {"revoke", "--kid", "k" + clear}} {
		stdout, stderr, err := e.cli(t, cmd)
		if err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, stderr)
		}
		if strings.ContainsAny(stdout+stderr, "\x1b\x07\r\t\u202e") {
			t.Errorf("%v printed a raw control character:\n%q", cmd, stdout+stderr)
		}
		if cmd[0] == "revocations" {
			for _, want := range []string{`j\x1b]0;pwned\a\rX`, `https://a\u202e`, `r\x1b[2J`, `a\tb`} {
				if !strings.Contains(stdout, want) {
					t.Errorf("table lacks %s:\n%s", want, stdout)
				}
			}
		}
	}
}

// TestRevokeWarnsOfUnknownIssuer: the CLI shows the server's warning about
// an issuer it does not accept, and still succeeds (the record is stored).
func TestRevokeWarnsOfUnknownIssuer(t *testing.T) {
	e := newAdminEnv(t, func(c *admin.Config) { c.Issuers = []string{"https://idp"} })
	_, stderr, err := e.cli(t, []string{"revoke"}, "--session", "s-1", "--issuer", "https://ipd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, `warning: record 0: issuer "https://ipd" is not configured`) {
		t.Errorf("stderr %q, want the warning", stderr)
	}
	_, stderr, err = e.cli(t, []string{"revoke"}, "--session", "s-2", "--issuer", "https://idp")
	if err != nil || stderr != "" {
		t.Errorf("configured issuer: err %v, stderr %q", err, stderr)
	}
	if n := len(e.stored(t)); n != 2 {
		t.Errorf("%d records stored, want 2", n)
	}
}

// TestShortAdminTokenFromEnvironmentRefused: JWTGUARD_ADMIN_TOKEN needs
// the same 16 characters as --admin-token-file, for serve and the CLI.
func TestShortAdminTokenFromEnvironmentRefused(t *testing.T) {
	t.Setenv("JWTGUARD_ADMIN_TOKEN", "short-token")
	for _, args := range [][]string{
		{"status", "--server", "http://" + freeAddr(t)},
		{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--issuer", "https://a.test", "--jwks-file", writeTestFile(t, "jwks.json", `{"keys":[]}`)},
	} {
		var out, errOut syncBuffer
		err := run(context.Background(), args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "JWTGUARD_ADMIN_TOKEN: token shorter than 16 characters") {
			t.Errorf("%s: err %v, want the short token refused", args[0], err)
		}
	}
}

// TestRevokeFromFileRefusesInvalidUTF8: a line that encoding/json would
// silently alter (invalid UTF-8, an unpaired surrogate) is rejected, not
// stored with U+FFFD in it.
func TestRevokeFromFileRefusesInvalidUTF8(t *testing.T) {
	e := newAdminEnv(t)
	file := writeTestFile(t, "revocations.ndjson", strings.Join([]string{
		`{"kind":"key","value":"k1"}`,
		"{\"kind\":\"key\",\"value\":\"k\xff2\"}",
		`{"kind":"key","value":"k3\udc00"}`,
	}, "\n")+"\n")
	stdout, _, err := e.cli(t, []string{"revoke"}, "--from-file", file)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 records rejected") {
		t.Fatalf("err %v, want 2 of 3 rejected\n%s", err, stdout)
	}
	for _, want := range []string{"line 2: malformed JSON: invalid UTF-8", "line 3: malformed JSON: unpaired UTF-16 surrogate"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if recs := e.stored(t); len(recs) != 1 || recs[0].Value != "k1" {
		t.Errorf("stored %+v, want k1 only", recs)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/bloom"
	"github.com/jwtguard/jwtguard/sync/admin"
	"github.com/jwtguard/jwtguard/sync/embedded"
	"github.com/jwtguard/jwtguard/sync/source"
)

const cliAdminToken = "cli-test-admin-token-0123456789"

// adminEnv is a real admin API (embedded store, real revocations) and the
// flags that point the CLI at it.
type adminEnv struct {
	store *embedded.Store
	rev   *authz.Revocations
	flags []string
}

func newAdminEnv(t *testing.T, mods ...func(*admin.Config)) *adminEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := embedded.Open(filepath.Join(dir, "data"), embedded.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	f, err := bloom.New(bloom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	rev, err := authz.NewRevocations(f, store, authz.DefaultRevocationConfig())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	cfg := admin.Config{Token: cliAdminToken}
	for _, m := range mods {
		m(&cfg)
	}
	srv := httptest.NewServer(admin.NewHandler(store, rev, cfg, admin.WithLogger(quiet)))
	t.Cleanup(srv.Close)
	tokenFile := writeTestFile(t, "admin-token", cliAdminToken+"\n")
	return &adminEnv{store: store, rev: rev, flags: []string{"--server", srv.URL, "--admin-token-file", tokenFile}}
}

func writeTestFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs "jwtguard <cmd...> <env flags> <args...>".
func (e *adminEnv) cli(t *testing.T, cmd []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	full := append(append(append([]string{}, cmd...), e.flags...), args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, full, &out, &errOut)
	return out.String(), errOut.String(), err
}

// stored returns every record in the store, in position order.
func (e *adminEnv) stored(t *testing.T) []authz.Record {
	t.Helper()
	recs, next, err := e.store.List(context.Background(), source.ListQuery{Limit: 1000})
	if err != nil || next != "" {
		t.Fatalf("list store: %v (next %q)", err, next)
	}
	return recs
}

// testJWT builds a compact JWT with the given claims (signature not valid:
// revoke decodes without verifying).
func testJWT(t *testing.T, claims map[string]any) (jwt, signingInput string) {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signingInput = enc(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "k1"}) + "." + enc(claims)
	return signingInput + "." + base64.RawURLEncoding.EncodeToString([]byte("not-a-real-signature")), signingInput
}

func TestRevokeModes(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	withJTI, _ := testJWT(t, map[string]any{"iss": "https://idp", "sub": "alice", "jti": "jti-7", "exp": exp.Unix()})
	noJTI, input := testJWT(t, map[string]any{"iss": "https://idp", "sub": "alice", "exp": exp.Unix()})
	sum := sha256.Sum256([]byte(input))
	hash := authz.TokenHashPrefix + hex.EncodeToString(sum[:])
	// Claim names are case-sensitive: "JTI" is not a jti, as the checker reads it.
	caseJTI, _ := testJWT(t, map[string]any{"iss": "https://idp", "jti": "real", "JTI": "fake", "exp": exp.Unix()})
	onlyUpper, upperInput := testJWT(t, map[string]any{"iss": "https://idp", "JTI": "fake", "exp": exp.Unix()})
	upperSum := sha256.Sum256([]byte(upperInput))
	tokenFile := writeTestFile(t, "token.jwt", withJTI+"\n")
	opaque := "2YotnFZFEjr1zCsicMWpAA"
	opaqueSum := sha256.Sum256([]byte(opaque))
	before := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name       string
		args       []string
		want       authz.Record // Kind, Issuer, Value, Before
		wantExpiry time.Time    // zero: not checked
		beforeNow  bool         // Before is the server's default: now + leeway
	}{
		{"token with jti", []string{"--token", withJTI}, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "jti-7"}, exp.Add(30 * time.Second), false},
		{"token without jti", []string{"--token", noJTI}, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: hash}, exp.Add(30 * time.Second), false},
		{"token with jti and JTI", []string{"--token", caseJTI}, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "real"}, exp.Add(30 * time.Second), false},
		{"token with JTI only", []string{"--token", onlyUpper}, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: authz.TokenHashPrefix + hex.EncodeToString(upperSum[:])}, exp.Add(30 * time.Second), false},
		{"token from file", []string{"--token-file", tokenFile}, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "jti-7"}, exp.Add(30 * time.Second), false},
		// An opaque token: the sha256 of the whole token, as the checker names it.
		{"opaque token", []string{"--token", opaque, "--issuer", "https://as"}, authz.Record{Kind: authz.KindToken, Issuer: "https://as", Value: authz.TokenHashPrefix + hex.EncodeToString(opaqueSum[:])}, time.Time{}, false},
		{"jti", []string{"--jti", "j-1", "--issuer", "https://idp"}, authz.Record{Kind: authz.KindToken, Issuer: "https://idp", Value: "j-1"}, time.Time{}, false},
		{"subject now", []string{"--subject", "bob"}, authz.Record{Kind: authz.KindSubject, Value: "bob"}, time.Time{}, true},
		{"subject before", []string{"--subject", "bob", "--before", "2030-01-02T03:04:05Z", "--issuer", "https://idp"}, authz.Record{Kind: authz.KindSubject, Issuer: "https://idp", Value: "bob", Before: before}, time.Time{}, false},
		{"session", []string{"--session", "sid-9", "--issuer", "https://idp"}, authz.Record{Kind: authz.KindSession, Issuer: "https://idp", Value: "sid-9"}, time.Time{}, true},
		{"session before", []string{"--session", "sid-9", "--issuer", "https://idp", "--before", "2030-01-02T03:04:05Z"}, authz.Record{Kind: authz.KindSession, Issuer: "https://idp", Value: "sid-9", Before: before}, time.Time{}, false},
		{"key before", []string{"--kid", "k3", "--before", "2030-01-02T03:04:05Z"}, authz.Record{Kind: authz.KindKey, Value: "k3", Before: before}, time.Time{}, false},
		{"key", []string{"--kid", "k1"}, authz.Record{Kind: authz.KindKey, Value: "k1"}, time.Time{}, false},
		{"key of one issuer", []string{"--kid", "k2", "--issuer", "https://idp"}, authz.Record{Kind: authz.KindKey, Issuer: "https://idp", Value: "k2"}, time.Time{}, false},
		{"issuer-before", []string{"--issuer-before", "2030-01-02T03:04:05Z", "--issuer", "https://idp"}, authz.Record{Kind: authz.KindIssuerBefore, Issuer: "https://idp", Before: before}, time.Time{}, false},
	}
	e := newAdminEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now().Truncate(time.Second)
			args := append([]string{"--reason", "test " + tc.name, "--actor", "tester", "-o", "json"}, tc.args...)
			stdout, stderr, err := e.cli(t, []string{"revoke"}, args...)
			if err != nil {
				t.Fatalf("revoke: %v\nstderr: %s", err, stderr)
			}
			for _, jwt := range []string{withJTI, noJTI, opaque} {
				if strings.Contains(stdout+stderr, jwt) {
					t.Fatal("the output holds a whole JWT")
				}
			}
			var out []authz.Record
			if err := json.Unmarshal([]byte(stdout), &out); err != nil || len(out) != 1 {
				t.Fatalf("output %q: %v", stdout, err)
			}
			got, err := e.store.Get(context.Background(), out[0].ID)
			if err != nil {
				t.Fatalf("printed record not in the store: %v", err)
			}
			if got.Kind != tc.want.Kind || got.Issuer != tc.want.Issuer || got.Value != tc.want.Value {
				t.Errorf("stored %s/%s/%s, want %s/%s/%s", got.Kind, got.Issuer, got.Value, tc.want.Kind, tc.want.Issuer, tc.want.Value)
			}
			switch {
			case tc.beforeNow:
				leeway := authz.DefaultConfig().Leeway
				if got.Before.Before(start.Add(leeway)) || got.Before.After(time.Now().Add(leeway)) {
					t.Errorf("before %s, want now + leeway (%s)", got.Before, start.Add(leeway))
				}
			case !got.Before.Equal(tc.want.Before):
				t.Errorf("before %s, want %s", got.Before, tc.want.Before)
			}
			if !tc.wantExpiry.IsZero() && !got.ExpiresAt.Equal(tc.wantExpiry) {
				t.Errorf("expires_at %s, want %s", got.ExpiresAt, tc.wantExpiry)
			}
			if got.Actor != "tester" || got.Reason != "test "+tc.name {
				t.Errorf("actor %q reason %q", got.Actor, got.Reason)
			}
			if !e.rev.Filter().MayContain(got.LookupKey().FilterKey()) {
				t.Error("the server does not enforce the revocation")
			}
		})
	}
}

func TestRevokeUsageErrors(t *testing.T) {
	e := newAdminEnv(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"nothing to revoke", nil, "say what to revoke"},
		{"two modes", []string{"--jti", "j", "--kid", "k", "--issuer", "i"}, "exclusive"},
		{"jti without issuer", []string{"--jti", "j"}, "--jti needs --issuer"},
		{"session without issuer", []string{"--session", "s"}, "--session needs --issuer"},
		{"issuer-before without issuer", []string{"--issuer-before", "2030-01-02T03:04:05Z"}, "needs --issuer"},
		{"bad time", []string{"--subject", "bob", "--before", "yesterday"}, "RFC 3339"},
		{"before with jti", []string{"--jti", "j", "--issuer", "i", "--before", "2030-01-02T03:04:05Z"}, "--before applies to --subject"},
		{"opaque token without issuer", []string{"--token", "abc"}, "needs --issuer"},
		{"opaque token with odd characters", []string{"--token", "a\"c", "--issuer", "i"}, "characters"},
		{"JWT with issuer", []string{"--token", "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJpIiwiZXhwIjo0MDAwMDAwMDAwfQ.c2ln", "--issuer", "i"}, "does not apply"},
		{"JWT without iss", []string{"--token", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjo0MDAwMDAwMDAwfQ.c2ln"}, "no iss"},
		{"expired token", []string{"--token", "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJpIiwiZXhwIjoxMDAwfQ.c2ln"}, "400 bad request"},
		{"bad output", []string{"--kid", "k", "-o", "yaml"}, "want table or json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.cli(t, []string{"revoke"}, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
			}
			if n := len(e.stored(t)); n != 0 {
				t.Fatalf("%d records stored", n)
			}
		})
	}
}

func TestRevokeAuthFailure(t *testing.T) {
	e := newAdminEnv(t)
	e.flags[3] = writeTestFile(t, "wrong-token", "wrong-token-but-long-enough\n")
	_, _, err := e.cli(t, []string{"revoke"}, "--kid", "k")
	if err == nil || !strings.Contains(err.Error(), "401 unauthorized") || !strings.Contains(err.Error(), "admin token") {
		t.Fatalf("err %v, want a clear 401", err)
	}
	if n := len(e.stored(t)); n != 0 {
		t.Fatalf("%d records stored", n)
	}
}

func TestRevokeFromFile(t *testing.T) {
	e := newAdminEnv(t)
	file := writeTestFile(t, "revocations.ndjson", strings.Join([]string{
		`# revocations after the incident`,
		`{"kind":"token","issuer":"https://idp","value":"jti-1"}`,
		`{"kind":"token","issuer":"https://idp",`,
		`{"kind":"subject","value":"bob","before":"2030-01-01T00:00:00Z","reason":"own reason"}`,
		`{"kind":"session","value":"no-issuer"}`,
		``,
		`{"kind":"token","issuer":"https://idp","value":"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"}`,
		`{"kind":"key","value":"k1"}`,
	}, "\n")+"\n")
	stdout, stderr, err := e.cli(t, []string{"revoke"}, "--from-file", file, "--reason", "incident 42", "--actor", "oncall")
	if err == nil || !strings.Contains(err.Error(), "3 of 6 records rejected") {
		t.Fatalf("err %v, want 3 of 6 rejected", err)
	}
	wantLines := []string{
		"accepted 3, rejected 3",
		"  line 3: malformed JSON",
		"  line 5: invalid revocation record: kind session needs issuer and value",
		"  line 7: invalid revocation record: value looks like a whole JWT",
	}
	for _, want := range wantLines {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "100%") {
		t.Errorf("no progress on stderr: %q", stderr)
	}
	got := e.stored(t)
	var values []string
	for _, r := range got {
		values = append(values, r.Value)
		if r.Actor != "oncall" {
			t.Errorf("%s: actor %q, want the flag's", r.Value, r.Actor)
		}
	}
	if strings.Join(values, ",") != "jti-1,bob,k1" {
		t.Fatalf("stored %v, want jti-1, bob, k1", values)
	}
	if got[0].Reason != "incident 42" || got[1].Reason != "own reason" {
		t.Errorf("reasons %q, %q", got[0].Reason, got[1].Reason)
	}
}

func TestRevokeFromFileAllGood(t *testing.T) {
	defer func(n int) { fileBatch = n }(fileBatch)
	fileBatch = 500
	e := newAdminEnv(t)
	var b strings.Builder
	const n = 1203 // three batches, sent at once
	for i := range n {
		b.WriteString(`{"kind":"session","issuer":"https://idp","value":"s-` + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + `"}` + "\n")
	}
	file := writeTestFile(t, "many.ndjson", b.String())
	stdout, stderr, err := e.cli(t, []string{"revoke"}, "--from-file", file, "-o", "json")
	if err != nil {
		t.Fatalf("revoke: %v\n%s", err, stderr)
	}
	var out struct {
		Accepted []authz.Record `json:"accepted"`
		Rejected []rejection    `json:"rejected"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Accepted) != n || len(out.Rejected) != 0 {
		t.Fatalf("accepted %d rejected %d, want %d, 0", len(out.Accepted), len(out.Rejected), n)
	}
	st, err := e.store.Stats(context.Background())
	if err != nil || st.Records != n {
		t.Fatalf("store holds %d records (%v), want %d", st.Records, err, n)
	}
	if got := strings.Count(stderr, "records sent"); got < 3 || got > 10 {
		t.Errorf("%d progress lines, want one per tenth reached:\n%s", got, stderr)
	}
}

func TestListAndStatusOutput(t *testing.T) {
	e := newAdminEnv(t)
	for _, args := range [][]string{
		{"--jti", "j-1", "--issuer", "https://a", "--reason", "stolen laptop"},
		{"--jti", "j-2", "--issuer", "https://b"},
		{"--kid", "k-1"},
		{"--jti", "j-3", "--issuer", "https://a"},
		{"--session", "s-1", "--issuer", "https://a"},
	} {
		if _, stderr, err := e.cli(t, []string{"revoke"}, args...); err != nil {
			t.Fatalf("revoke %v: %v\n%s", args, err, stderr)
		}
	}
	t.Run("table", func(t *testing.T) {
		stdout, _, err := e.cli(t, []string{"revocations", "list"}, "--issuer", "https://a", "--kind", "token")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 3 {
			t.Fatalf("want a header and 2 rows:\n%s", stdout)
		}
		if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID KIND ISSUER VALUE BEFORE EXPIRES ACTOR REASON" {
			t.Errorf("header %q", lines[0])
		}
		if !strings.Contains(lines[1], "j-1") || !strings.Contains(lines[1], "stolen laptop") || !strings.Contains(lines[2], "j-3") {
			t.Errorf("rows:\n%s", stdout)
		}
	})
	t.Run("json all pages", func(t *testing.T) {
		stdout, stderr, err := e.cli(t, []string{"revocations", "list"}, "--limit", "2", "--all", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var recs []authz.Record
		if err := json.Unmarshal([]byte(stdout), &recs); err != nil {
			t.Fatal(err)
		}
		if len(recs) != 5 || recs[0].Value != "j-1" || recs[4].Value != "s-1" {
			t.Fatalf("%d records: %+v", len(recs), recs)
		}
		if stderr != "" {
			t.Errorf("stderr %q", stderr)
		}
	})
	t.Run("first page says there is more", func(t *testing.T) {
		stdout, stderr, err := e.cli(t, []string{"revocations", "list"}, "--limit", "2")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(stdout, "\n"); n != 3 || !strings.Contains(stderr, "--cursor ") {
			t.Errorf("stdout %q stderr %q", stdout, stderr)
		}
	})
	t.Run("get", func(t *testing.T) {
		id := e.stored(t)[2].ID
		stdout, _, err := e.cli(t, []string{"revocations", "get"}, id)
		if err != nil || !strings.Contains(stdout, id) || !strings.Contains(stdout, "k-1") {
			t.Fatalf("err %v stdout %q", err, stdout)
		}
		_, _, err = e.cli(t, []string{"revocations", "get"}, "0123456789abcdef0123456789abcdef")
		if err == nil || !strings.Contains(err.Error(), "404 not found") {
			t.Fatalf("err %v, want 404", err)
		}
	})
	t.Run("status table", func(t *testing.T) {
		stdout, _, err := e.cli(t, []string{"status"})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"records", "by_kind.token", "source_position", "filter.entries", "filter.estimated_fp_rate", "confirm.confirm_size"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("status lacks %s:\n%s", want, stdout)
			}
		}
		fields := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				fields[f[0]] = f[1]
			}
		}
		if fields["records"] != "5" || fields["by_kind.token"] != "3" || fields["filter.entries"] != "5" {
			t.Errorf("status values %v", fields)
		}
	})
	t.Run("status json", func(t *testing.T) {
		stdout, _, err := e.cli(t, []string{"status"}, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal([]byte(stdout), &st); err != nil {
			t.Fatal(err)
		}
		if st["records"] != 5.0 || st["source_position"] != 5.0 {
			t.Errorf("status %v", st)
		}
	})
}

// TestRevokeFromFileStopped: a line over the import's bound stops the
// import; the command names the line and says what was stored (nothing of
// the chunk being read), and the store holds exactly that.
func TestRevokeFromFileStopped(t *testing.T) {
	e := newAdminEnv(t)
	file := writeTestFile(t, "stopped.ndjson", strings.Join([]string{
		`{"kind":"token","issuer":"https://idp","value":"jti-1"}`,
		`{"kind":"token","issuer":"https://idp","value":"jti-2"}`,
		`{"kind":"token","issuer":"https://idp","value":"` + strings.Repeat("x", admin.MaxImportLine) + `"}`,
		`{"kind":"token","issuer":"https://idp","value":"jti-4"}`,
	}, "\n")+"\n")
	stdout, _, err := e.cli(t, []string{"revoke"}, "--from-file", file)
	if err == nil || !strings.Contains(err.Error(), "stopped at line 3 after 0 stored") {
		t.Fatalf("err %v, want the import stopped at line 3 with nothing stored", err)
	}
	if !strings.Contains(stdout, "accepted 0, rejected 0") || !strings.Contains(stdout, "stopped at line 3: line 3 is longer than") {
		t.Fatalf("summary does not say where the import stopped:\n%s", stdout)
	}
	if n := len(e.stored(t)); n != 0 {
		t.Fatalf("%d records stored, want none (the chunk being read when the import stopped)", n)
	}
}

package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jwtguard/jwtguard/authz"
)

// TestStoredValueIsWhatWasSent: escapes that are valid JSON, a surrogate
// pair included, and an escaped backslash before a "u", are stored exactly
// as decoded.
func TestStoredValueIsWhatWasSent(t *testing.T) {
	e := newEnv(t, Config{Token: testToken})
	for _, tc := range []struct{ raw, want string }{
		{`"smile-\ud83d\ude00"`, "smile-\U0001F600"},
		{`"caf\u00e9"`, "café"},
		{`"back\\ud83d"`, `back\ud83d`},
		{`"tab\there"`, "tab\there"},
		{`"a` + "\u00e9" + `b"`, "a\u00e9b"},
	} {
		status, _, body := e.do(t, http.MethodPost, pathRevocations, testToken, `{"kind":"key","value":`+tc.raw+`}`)
		if status != http.StatusCreated {
			t.Fatalf("%s: status %d: %s", tc.raw, status, body)
		}
		var out revocationsBody
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		if got := out.Revocations[0].Value; got != tc.want {
			t.Errorf("%s: stored %q, want %q", tc.raw, got, tc.want)
		}
	}
}

// TestWarningForUnknownIssuer: a revocation of an issuer the server does
// not accept is stored, and the answer says so.
func TestWarningForUnknownIssuer(t *testing.T) {
	e := newEnv(t, Config{Token: testToken, Issuers: []string{"https://idp.test"}})
	stored, warnings, err := e.client.RevokeWithWarnings(context.Background(), []authz.Record{
		{Kind: authz.KindSession, Issuer: "https://idp.test", Value: "s-1"},
		{Kind: authz.KindSession, Issuer: "https://idp.tset", Value: "s-2"},
		{Kind: authz.KindKey, Value: "k-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 3 {
		t.Fatalf("%d records stored, want 3", len(stored))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "record 1") || !strings.Contains(warnings[0], `"https://idp.tset" is not configured`) {
		t.Errorf("warnings %q, want one about record 1", warnings)
	}
	_, warnings, err = e.client.RevokeWithWarnings(context.Background(), []authz.Record{{Kind: authz.KindSession, Issuer: "https://idp.test", Value: "s-3"}})
	if err != nil || len(warnings) != 0 {
		t.Errorf("configured issuer: warnings %q, err %v", warnings, err)
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestCLIErrors: a mistake gets one error line with a hint, never the
// whole usage (which -h prints).
func TestCLIErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // in the error
	}{
		{"mistyped command", []string{"revok"}, []string{`unknown command "revok"`, `did you mean "revoke"?`}},
		{"mistyped command, far", []string{"frobnicate"}, []string{`unknown command "frobnicate"`, "jwtguard help"}},
		{"prefix", []string{"revocation"}, []string{`did you mean "revocations"?`}},
		{"flag before the command", []string{"--issuer", "x"}, []string{"flags go after a command"}},
		{"mistyped serve flag", []string{"serve", "--isuer", "x"}, []string{"flag provided but not defined: -isuer", "jwtguard serve -h"}},
		{"mistyped revoke flag", []string{"revoke", "--jit", "x"}, []string{"-jit", "jwtguard revoke -h"}},
		{"bad value", []string{"status", "--timeout", "soon"}, []string{"invalid value", "jwtguard status -h"}},
		{"serve without issuer", []string{"serve", "--data-dir", "unused"}, []string{"--issuer", "--config", "--dev"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errOut)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Count(err.Error(), "\n") > 0 || errOut.Len() > 0 {
				t.Errorf("want one error line and nothing else printed; got error %q and stderr:\n%s", err, errOut.String())
			}
		})
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-h"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "-issuer") {
		t.Errorf("serve -h: %v, usage:\n%s", err, errOut.String())
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8182":         "http://127.0.0.1:8182",
		"http://127.0.0.1:8182":  "http://127.0.0.1:8182",
		"https://admin.test:443": "https://admin.test:443",
		"localhost:8182":         "http://localhost:8182",
	} {
		if got := serverURL(in); got != want {
			t.Errorf("serverURL(%q) = %q, want %q", in, got, want)
		}
	}
}

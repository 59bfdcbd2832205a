package node

import (
	"strings"
	"testing"
)

// hmac-kid reaches the issuer from a flag, a variable and the file, and is
// refused without an HMAC secret.
func TestConfigHMACKeyID(t *testing.T) {
	const file = "issuers:\n  - issuer: legacy\n    hmac-secret-file: /secret\n    hmac-kid: from-file\n    algs: [HS256]\n"
	hmacFlags := []string{"--issuer", "legacy", "--hmac-secret-file", "/secret", "--algs", "HS256"}
	tests := []struct {
		name, file string
		env        map[string]string
		args       []string
		want       string // the kid, or the error's words
		wantErr    bool
	}{
		{"file", file, nil, nil, "from-file", false},
		{"flag", "", nil, append(hmacFlags, "--hmac-kid", "from-flag"), "from-flag", false},
		{"variable", "", map[string]string{"JWTGUARD_HMAC_KID": "from-env"}, hmacFlags, "from-env", false},
		{"unset", "", nil, hmacFlags, "", false},
		{"without secret", "", nil, []string{"--issuer", "a", "--jwks-file", "/j", "--hmac-kid", "k"}, "hmac-kid is set without hmac-secret-file", true},
		{"without issuer", "", nil, []string{"--hmac-kid", "k"}, "need --issuer", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadFor(t, tc.file, tc.env, tc.args...)
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Authz.Issuers[0].HMACKeyID; got != tc.want {
				t.Errorf("hmac-kid %q, want %q", got, tc.want)
			}
		})
	}
}

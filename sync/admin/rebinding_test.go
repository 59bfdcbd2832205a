package admin

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestNoTokenRefusesBrowsersAndForeignHosts is the DNS-rebinding attack: a
// web page whose name now resolves to 127.0.0.1 calls the token-less admin
// API. Its Host is its own name and the browser adds Origin (and
// Sec-Fetch-Site); each is refused with 403, and nothing is stored.
func TestNoTokenRefusesBrowsersAndForeignHosts(t *testing.T) {
	e := newEnv(t, Config{Addr: "127.0.0.1:8182"})
	withToken := newEnv(t, Config{Token: testToken})
	const body = `{"kind":"key","value":"k1"}`
	tests := []struct {
		name    string
		env     *env
		host    string
		headers map[string]string
		want    int
	}{
		{"loopback IPv4 with port", e, "127.0.0.1:8182", nil, http.StatusCreated},
		{"loopback IPv4 without port", e, "127.0.0.1", nil, http.StatusCreated},
		{"loopback IPv6", e, "[::1]:8182", nil, http.StatusCreated},
		{"localhost", e, "localhost:8182", nil, http.StatusCreated},
		{"localhost upper case", e, "LOCALHOST", nil, http.StatusCreated},
		{"same-origin fetch from curl-like tools", e, "127.0.0.1:8182", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusCreated},
		{"rebound name", e, "attacker.example:8182", nil, http.StatusForbidden},
		{"rebound name without port", e, "attacker.example", nil, http.StatusForbidden},
		{"localhost as a subdomain", e, "localhost.attacker.example", nil, http.StatusForbidden},
		{"loopback Host but an Origin", e, "127.0.0.1:8182", map[string]string{"Origin": "http://attacker.example"}, http.StatusForbidden},
		{"null Origin", e, "127.0.0.1:8182", map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"cross-site fetch", e, "127.0.0.1:8182", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site fetch", e, "localhost:8182", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"with a token any Host is fine", withToken, "jwtguard-admin.internal:8182", map[string]string{"Authorization": "Bearer " + testToken}, http.StatusCreated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				before := tc.env.state(t)
				path := pathRevocations
				req, err := http.NewRequest(method, tc.env.srv.URL+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Host = tc.host
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				resp, err := tc.env.srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				want := tc.want
				if method == http.MethodGet && want == http.StatusCreated {
					want = http.StatusOK
				}
				if resp.StatusCode != want {
					t.Fatalf("%s: status %d, want %d", method, resp.StatusCode, want)
				}
				if want == http.StatusForbidden && !reflect.DeepEqual(tc.env.state(t), before) {
					t.Errorf("%s: a refused request changed the state", method)
				}
			}
		})
	}
}

package envoy_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtguard/jwtguard/authz"
	"github.com/jwtguard/jwtguard/envoy"
)

// TestRequestHeaderForms sends the same request headers in each form an
// adapter receives them: Envoy's headers map (lower-case names, repeated
// headers comma-joined, cookies joined by "; "), Envoy's header_map
// (repeated entries, with value or raw_value, names in any case), and
// forward-auth's repeated HTTP headers. Each form gets the same decision,
// so a second credential can never hide in one of them.
func TestRequestHeaderForms(t *testing.T) {
	e := newEnv(t)
	good := e.token(t, nil)
	other := e.token(t, func(c map[string]any) { c["sub"] = "admin"; c["jti"] = "jti-2" })
	a := envoy.NewAuthorization(e.checker)
	fa := httptest.NewServer(a)
	defer fa.Close()

	tests := []struct {
		name  string
		pairs [][2]string // request headers in order, repeats allowed
		want  authz.Reason
	}{
		{"Authorization", [][2]string{{"authorization", "Bearer " + good}}, authz.ReasonOK},
		{"Authorization named in upper case", [][2]string{{"Authorization", "Bearer " + good}}, authz.ReasonOK},
		{"token header", [][2]string{{"x-access-token", good}}, authz.ReasonOK},
		{"cookie among others", [][2]string{{"cookie", "theme=dark; session=" + good + "; lang=en"}}, authz.ReasonOK},
		{"two cookie headers, one with the session", [][2]string{{"cookie", "theme=dark"}, {"cookie", "session=" + good}}, authz.ReasonOK},
		{"no credential", [][2]string{{"x-request-id", "r-1"}}, authz.ReasonMissingToken},
		{"two Authorization headers", [][2]string{{"authorization", "Bearer " + good}, {"authorization", "Bearer " + other}}, authz.ReasonMultipleTokens},
		{"Authorization twice with the same token", [][2]string{{"authorization", "Bearer " + good}, {"authorization", "Bearer " + good}}, authz.ReasonMultipleTokens},
		{"Authorization twice, names in two cases", [][2]string{{"Authorization", "Bearer " + good}, {"authorization", "Bearer " + other}}, authz.ReasonMultipleTokens},
		{"cookie and Authorization", [][2]string{{"cookie", "session=" + good}, {"authorization", "Bearer " + other}}, authz.ReasonMultipleTokens},
		{"token header and Authorization", [][2]string{{"x-access-token", good}, {"authorization", "Bearer " + other}}, authz.ReasonMultipleTokens},
		{"cookie set twice", [][2]string{{"cookie", "session=" + good}, {"cookie", "session=" + other}}, authz.ReasonMultipleTokens},
		{"one value with two tokens", [][2]string{{"authorization", "Bearer " + good + ",Bearer " + other}}, authz.ReasonMultipleTokens},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Envoy's headers map: repeats merged into one value.
			joined := map[string]string{}
			var values, raws []*corev3.HeaderValue
			for _, p := range tc.pairs {
				k := strings.ToLower(p[0])
				sep := ","
				if k == "cookie" {
					sep = "; "
				}
				if old, ok := joined[k]; ok {
					joined[k] = old + sep + p[1]
				} else {
					joined[k] = p[1]
				}
				values = append(values, &corev3.HeaderValue{Key: p[0], Value: p[1]})
				raws = append(raws, &corev3.HeaderValue{Key: p[0], RawValue: []byte(p[1])})
			}
			forms := map[string]outcome{
				"headers, over gRPC":        outcomeOf(t, e.check(t, joined)),
				"headers":                   outcomeOf(t, checkWith(t, a, withHeaders(joined))),
				"header_map with value":     outcomeOf(t, checkWith(t, a, &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: values}})),
				"header_map with raw_value": outcomeOf(t, checkWith(t, a, &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: raws}})),
			}
			for form, o := range forms {
				switch {
				case tc.want == authz.ReasonOK && (!o.allowed || o.upstream["x-jwt-sub"] != "alice"):
					t.Errorf("%s: %+v, want allowed for alice", form, o)
				case tc.want != authz.ReasonOK && (o.allowed || o.reason != string(tc.want)):
					t.Errorf("%s: %+v, want %s", form, o, tc.want)
				}
			}

			// Forward-auth: repeated HTTP headers.
			req, err := http.NewRequest(http.MethodGet, fa.URL+"/authz/", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.pairs {
				req.Header.Add(p[0], p[1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			wantStatus := map[authz.Reason]int{authz.ReasonOK: http.StatusOK, authz.ReasonMissingToken: http.StatusUnauthorized, authz.ReasonMultipleTokens: http.StatusBadRequest}[tc.want]
			if res.StatusCode != wantStatus || (tc.want == authz.ReasonOK && res.Header.Get("X-Jwt-Sub") != "alice") {
				t.Errorf("forward-auth: status %d, X-Jwt-Sub %q; want %d", res.StatusCode, res.Header.Get("X-Jwt-Sub"), wantStatus)
			}
		})
	}
}
